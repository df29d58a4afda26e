"""Selector service: answers prompts with the best free model available now."""
