"""/stats: models ranked by the score the Selector routes by, with their state."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command
from aiogram.types import Message

from services.bot import render
from services.bot.selector_client import SelectorClient
from services.bot.texts import Texts


async def on_stats(message: Message, selector: SelectorClient, texts: Texts) -> None:
    """Sends the ranking (split when long)."""
    for part in render.stats(await selector.model_stats(), texts):
        await message.answer(part)


def build_router() -> Router:
    """The stats router."""
    router = Router(name="stats")
    router.message.register(on_stats, Command("stats"))
    return router
