"""SmartPost staff gateway: the German web UI for property-management staff over the services' HTTP APIs."""
