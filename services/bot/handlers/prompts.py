"""Free text → Selector.StreamPrompt, streamed into the chat as it arrives; the catch-alls."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import aclosing

from aiogram import Bot, F, Router
from aiogram.types import Message
from aiogram.utils.chat_action import ChatActionSender

from aiselector.v1 import selector_pb2
from services.bot import render
from services.bot.formatting import escape
from services.bot.limiter import UserRateLimiter
from services.bot.metrics import PROMPTS
from services.bot.pins import ChatPins
from services.bot.selector_client import ModelNotFound, SelectorClient, SelectorFailure
from services.bot.streaming import LiveAnswer
from services.bot.texts import Texts

log = logging.getLogger(__name__)


async def on_prompt(
    message: Message,
    bot: Bot,
    selector: SelectorClient,
    pins: ChatPins,
    limiter: UserRateLimiter,
    typing_interval: float,
    edit_interval: float,
    texts: Texts,
) -> None:
    """Asks the Selector (with the chat's pinned model, if any) and streams the answer.

    "typing…" is shown until the first text; a failure before it gets the same message as a
    failed ProcessPrompt (the central error handler), one after it is told in the answer.
    """
    user_id = message.from_user.id if message.from_user else message.chat.id
    wait = limiter.acquire(user_id)
    if wait is not None:
        PROMPTS.labels(result="user_limited").inc()
        await message.answer(render.user_limited(wait, limiter.limit, texts))
        return
    pinned = pins.get(message.chat.id)
    events = selector.stream_prompt(message.text or "", user_id=str(user_id), model_name=pinned)
    try:
        async with aclosing(events), LiveAnswer(bot, message.chat.id, edit_interval) as live:
            async with ChatActionSender.typing(
                bot=bot, chat_id=message.chat.id, interval=typing_interval
            ):
                event = await _first_text(events)
            await _stream_answer(event, events, live, texts)
    except ModelNotFound:
        if not pinned:
            raise
        pins.unpin(message.chat.id)
        PROMPTS.labels(result="pinned_model_removed").inc()
        await message.answer(texts.pinned_model_removed.format(model=escape(pinned)))


async def _first_text(
    events: AsyncIterator[selector_pb2.StreamPromptResponse],
) -> selector_pb2.StreamPromptResponse:
    """The first event with something to show: a delta with text, or the result.

    Failovers before it are logged, not shown: the footer says after how many attempts the
    answer came.
    """
    while True:
        event = await anext(events)
        if event.HasField("failover"):
            log.info(
                "selector failed over",
                extra={
                    "failed_model": event.failover.failed_attempt.model,
                    "next_model": event.failover.next_model,
                },
            )
        elif event.HasField("result") or event.delta.text:
            return event


async def _stream_answer(
    event: selector_pb2.StreamPromptResponse,
    events: AsyncIterator[selector_pb2.StreamPromptResponse],
    live: LiveAnswer,
    texts: Texts,
) -> None:
    """Shows the deltas as they come, then the whole answer with its footer; or, when the stream
    fails, the text that came and that the answer was cut off."""
    try:
        while not event.HasField("result"):
            live.append(event.delta.text)
            event = await anext(events)
    except SelectorFailure as failure:
        PROMPTS.labels(result="cut_off").inc()
        log.info(
            "answer cut off",
            extra={"failure": type(failure).__name__, "received_chars": len(live.text)},
        )
        await live.finish(render.cut_off(live.text, failure, texts))
        return
    reply = event.result
    PROMPTS.labels(result="answered").inc()
    log.info(
        "prompt answered",
        extra={
            "model": reply.selected_model,
            "attempts": reply.attempts,
            "selector_request_id": reply.request_id,
        },
    )
    await live.finish(render.answer(reply, texts))


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
