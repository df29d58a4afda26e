"""/test: probes every provider through the Selector; only for users in BOT_ADMIN_IDS."""

from __future__ import annotations

import logging
from collections.abc import Collection

from aiogram import Bot, Router
from aiogram.filters import Command
from aiogram.types import Message
from aiogram.utils.chat_action import ChatActionSender

from services.bot import render
from services.bot.selector_client import SelectorClient
from services.bot.texts import Texts

log = logging.getLogger(__name__)


async def on_test(
    message: Message,
    bot: Bot,
    selector: SelectorClient,
    admin_ids: Collection[int],
    typing_interval: float,
    texts: Texts,
) -> None:
    """Admins get the probe results; everyone else a polite refusal."""
    user = message.from_user
    if user is None or user.id not in admin_ids:
        log.info("refused /test", extra={"user_id": user.id if user else None})
        await message.answer(texts.test_not_admin)
        return
    await message.answer(texts.test_started)
    async with ChatActionSender.typing(bot=bot, chat_id=message.chat.id, interval=typing_interval):
        results = await selector.test_providers()
    for part in render.test_results(results, texts):
        await message.answer(part)


def build_router() -> Router:
    """The admin router."""
    router = Router(name="admin")
    router.message.register(on_test, Command("test"))
    return router
