"""SmartPost shared library: contracts, topic registry, settings, logging, messaging and storage."""
