"""SmartPost print dispatch: paper letters for released serial letters."""
