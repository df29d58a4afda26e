"""Outer update middleware: the user's texts and a request id for every update."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import TelegramObject, User

from services.bot.texts import texts_for
from services.common.logging import request_id_var


class ContextMiddleware(BaseMiddleware):
    """Puts `texts` (by the user's language) into handler data and binds a request id.

    The request id reaches the bot's logs and, as `x-request-id`, the Selector, so one Telegram
    message can be followed across processes.
    """

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        user: User | None = data.get("event_from_user")
        data["texts"] = texts_for(user.language_code if user else None)
        token = request_id_var.set(uuid.uuid4().hex)
        try:
            return await handler(event, data)
        finally:
            request_id_var.reset(token)
