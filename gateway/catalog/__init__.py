"""The entity catalog: every entity the F&O store publishes, and which ones are visible."""
