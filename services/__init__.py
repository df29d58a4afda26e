"""Free AI Selector services."""
