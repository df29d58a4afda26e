"""/stats: models ranked by the score the Selector routes by, with their state; for admins also
today's usage per client key."""

from __future__ import annotations

from collections.abc import Collection

from aiogram import Router
from aiogram.filters import Command
from aiogram.types import Message

from services.bot import render
from services.bot.selector_client import SelectorClient, SelectorFailure
from services.bot.texts import Texts


async def on_stats(
    message: Message, selector: SelectorClient, texts: Texts, admin_ids: Collection[int]
) -> None:
    """Sends the ranking (split when long); to an admin also today's usage per client key (or
    why it cannot be read)."""
    for part in render.stats(await selector.model_stats(), texts):
        await message.answer(part)
    user = message.from_user
    if user is None or user.id not in admin_ids:
        return
    try:
        usage = await selector.client_key_usage()
    except SelectorFailure:
        await message.answer(texts.keys_usage_unavailable)
        return
    for part in render.key_usage(usage, texts):
        await message.answer(part)


def build_router() -> Router:
    """The stats router."""
    router = Router(name="stats")
    router.message.register(on_stats, Command("stats"))
    return router
