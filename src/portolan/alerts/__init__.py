"""Alert rules and notification channels."""
