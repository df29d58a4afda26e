"""The one central error handler: a friendly message for every failure a handler raises."""

from __future__ import annotations

import logging

from aiogram import Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import ExceptionTypeFilter
from aiogram.types import ErrorEvent, User

from services.bot import render
from services.bot.metrics import PROMPTS
from services.bot.selector_client import SelectorFailure
from services.bot.texts import Texts, texts_for

log = logging.getLogger(__name__)


def _texts(event: ErrorEvent, texts: Texts | None) -> Texts:
    if texts is not None:
        return texts
    origin = event.update.message or event.update.callback_query
    user: User | None = origin.from_user if origin else None
    return texts_for(user.language_code if user else None)


async def _tell(event: ErrorEvent, text: str) -> None:
    """Sends `text` where the failed update came from; a failure to send is only logged."""
    try:
        if event.update.message:
            await event.update.message.answer(text)
        elif event.update.callback_query:
            query = event.update.callback_query
            await query.answer()
            if query.message:
                await query.message.answer(text)
    except TelegramAPIError:
        log.warning("could not send the failure message", exc_info=True)


async def on_selector_failure(event: ErrorEvent, texts: Texts | None = None) -> None:
    """A Selector call failed: say what happened and when to try again."""
    error = event.exception
    assert isinstance(error, SelectorFailure)
    message = event.update.message
    prompt_length = len(message.text or "") if message else 0
    if message and message.text and not message.text.startswith("/"):
        PROMPTS.labels(result=type(error).__name__).inc()
    await _tell(event, render.failure(error, _texts(event, texts), prompt_length=prompt_length))


async def on_unexpected(event: ErrorEvent, texts: Texts | None = None) -> None:
    """Anything else: log it with its traceback, tell the user something went wrong."""
    log.error(
        "unexpected error while handling an update",
        exc_info=(type(event.exception), event.exception, event.exception.__traceback__),
        extra={"update_id": event.update.update_id},
    )
    await _tell(event, _texts(event, texts).failure_internal)


def build_router() -> Router:
    """The errors router."""
    router = Router(name="errors")
    router.errors.register(on_selector_failure, ExceptionTypeFilter(SelectorFailure))
    router.errors.register(on_unexpected)
    return router
