"""Builds the Bot and the Dispatcher with the bot's dependencies injected."""

from __future__ import annotations

import logging
from collections.abc import Collection

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.session.base import BaseSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.exceptions import TelegramAPIError
from aiogram.types import BotCommand

from services.bot.config import EDIT_INTERVAL_SECONDS
from services.bot.handlers import get_routers
from services.bot.limiter import UserRateLimiter
from services.bot.middlewares import ContextMiddleware
from services.bot.pins import ChatPins
from services.bot.selector_client import SelectorClient
from services.bot.texts import EN, RU

log = logging.getLogger(__name__)

# Telegram shows "typing…" for about 5 s; renewing a little earlier keeps it on without gaps.
TYPING_INTERVAL_SECONDS = 4.0


def build_bot(
    token: str, *, api_base_url: str | None = None, session: BaseSession | None = None
) -> Bot:
    """A Bot sending HTML; `api_base_url` points it at a self-hosted or test Bot API server."""
    if session is None:
        session = (
            AiohttpSession(api=TelegramAPIServer.from_base(api_base_url))
            if api_base_url
            else AiohttpSession()
        )
    return Bot(
        token,
        session=session,
        default=DefaultBotProperties(parse_mode=ParseMode.HTML, link_preview_is_disabled=True),
    )


def build_dispatcher(
    selector: SelectorClient,
    *,
    admin_ids: Collection[int] = (),
    prompts_per_minute: int = 5,
    limiter: UserRateLimiter | None = None,
    pins: ChatPins | None = None,
    typing_interval: float = TYPING_INTERVAL_SECONDS,
    edit_interval: float = EDIT_INTERVAL_SECONDS,
) -> Dispatcher:
    """A Dispatcher with every router; handlers receive these dependencies as keyword arguments."""
    dispatcher = Dispatcher(
        selector=selector,
        admin_ids=frozenset(admin_ids),
        limiter=limiter or UserRateLimiter(prompts_per_minute),
        pins=pins or ChatPins(),
        typing_interval=typing_interval,
        edit_interval=edit_interval,
    )
    dispatcher.update.outer_middleware(ContextMiddleware())
    dispatcher.include_routers(*get_routers())
    dispatcher.startup.register(on_startup)
    return dispatcher


async def on_startup(bot: Bot) -> None:
    """Long polling needs no webhook; the command menu is set in Russian (default) and English."""
    await bot.delete_webhook(drop_pending_updates=False)
    try:
        for texts, language in ((RU, None), (EN, "en")):
            commands = [BotCommand(command=c, description=d) for c, d in texts.commands]
            await bot.set_my_commands(commands, language_code=language)
    except TelegramAPIError:
        log.warning("could not set the command menu", exc_info=True)
    me = await bot.me()
    log.info("bot started", extra={"username": me.username, "bot_id": me.id})
