"""Routing-quality benchmark: the real selection policy against baselines, in virtual time."""
