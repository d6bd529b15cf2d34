"""SmartPost letters service: owner of the serial letter (Serienbrief) life cycle."""
