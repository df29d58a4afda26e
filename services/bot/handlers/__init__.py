"""The bot's routers, one per feature; `get_routers()` gives fresh ones in the order they match."""

from __future__ import annotations

from aiogram import Router

from services.bot.handlers import admin, errors, models, prompts, start, stats


def get_routers() -> list[Router]:
    """New routers (a router can join only one dispatcher); free text comes last."""
    return [
        errors.build_router(),
        start.build_router(),
        stats.build_router(),
        admin.build_router(),
        models.build_router(),
        prompts.build_router(),
    ]
