"""Prometheus metrics of the bot."""

from __future__ import annotations

from prometheus_client import Counter

PROMPTS = Counter(
    "bot_prompts_total",
    "Prompts received from Telegram users, by how they ended.",
    ["result"],
)
