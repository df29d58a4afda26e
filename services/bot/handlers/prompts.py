"""Free text → Selector.ProcessPrompt with "typing…" until the answer arrives; the catch-alls."""

from __future__ import annotations

import logging

from aiogram import Bot, F, Router
from aiogram.types import Message
from aiogram.utils.chat_action import ChatActionSender

from services.bot import render
from services.bot.formatting import escape
from services.bot.limiter import UserRateLimiter
from services.bot.metrics import PROMPTS
from services.bot.pins import ChatPins
from services.bot.selector_client import ModelNotFound, SelectorClient
from services.bot.texts import Texts

log = logging.getLogger(__name__)


async def on_prompt(
    message: Message,
    bot: Bot,
    selector: SelectorClient,
    pins: ChatPins,
    limiter: UserRateLimiter,
    typing_interval: float,
    texts: Texts,
) -> None:
    """Asks the Selector (with the chat's pinned model, if any) and sends the answer."""
    user_id = message.from_user.id if message.from_user else message.chat.id
    wait = limiter.acquire(user_id)
    if wait is not None:
        PROMPTS.labels(result="user_limited").inc()
        await message.answer(render.user_limited(wait, limiter.limit, texts))
        return
    pinned = pins.get(message.chat.id)
    try:
        async with ChatActionSender.typing(
            bot=bot, chat_id=message.chat.id, interval=typing_interval
        ):
            reply = await selector.process_prompt(
                message.text or "", user_id=str(user_id), model_name=pinned
            )
    except ModelNotFound:
        if not pinned:
            raise
        pins.unpin(message.chat.id)
        PROMPTS.labels(result="pinned_model_removed").inc()
        await message.answer(texts.pinned_model_removed.format(model=escape(pinned)))
        return
    PROMPTS.labels(result="answered").inc()
    log.info(
        "prompt answered",
        extra={
            "model": reply.selected_model,
            "attempts": reply.attempts,
            "selector_request_id": reply.request_id,
        },
    )
    for part in render.answer(reply, texts):
        await message.answer(part)


async def on_unknown_command(message: Message, texts: Texts) -> None:
    """A `/word` no router knows."""
    await message.answer(texts.unknown_command)


async def on_other(message: Message, texts: Texts) -> None:
    """Stickers, photos, voice…: only text is understood."""
    await message.answer(texts.non_text)


def build_router() -> Router:
    """The prompts router; it must come after every command router."""
    router = Router(name="prompts")
    router.message.register(on_unknown_command, F.text.startswith("/"))
    router.message.register(on_prompt, F.text)
    router.message.register(on_other)
    return router
