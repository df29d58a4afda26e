"""/start (what the bot does, with the models ready now) and /help."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command, CommandStart
from aiogram.types import Message

from services.bot import render
from services.bot.limiter import UserRateLimiter
from services.bot.selector_client import SelectorClient, SelectorFailure
from services.bot.texts import Texts


async def on_start(message: Message, selector: SelectorClient, texts: Texts) -> None:
    """Welcome; the model list is left out (with a note) when the Selector cannot give it."""
    try:
        models = render.ready_models(await selector.model_stats(), texts)
    except SelectorFailure:
        models = texts.start_models_unavailable
    await message.answer(f"{texts.start}\n\n{models}")


async def on_help(message: Message, limiter: UserRateLimiter, texts: Texts) -> None:
    """The command list and the per-user limit."""
    await message.answer(texts.help.format(limit=limiter.limit))


def build_router() -> Router:
    """The start/help router."""
    router = Router(name="start")
    router.message.register(on_start, CommandStart())
    router.message.register(on_help, Command("help"))
    return router
