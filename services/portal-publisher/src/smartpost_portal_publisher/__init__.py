"""SmartPost portal publisher: released letters into recipients' portal inboxes, and the portal API."""
