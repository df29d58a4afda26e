"""`python -m services.bot`: wiring only — settings, gRPC channel, bot, dispatcher, polling."""

from __future__ import annotations

import asyncio
import logging
import sys

from services.bot.config import BotSettings
from services.common import logging as json_logging
from services.common import secrets
from services.common.metrics import serve_metrics

log = logging.getLogger("services.bot")


async def run(settings: BotSettings) -> None:
    """Polls Telegram until SIGINT/SIGTERM, then closes the session and the channel."""
    # Imported here: aiogram takes seconds to import, and an unconfigured bot exits without it.
    from services.bot.app import build_bot, build_dispatcher
    from services.bot.selector_client import SelectorClient
    from services.common.channels import open_channel

    async with open_channel(settings.selector_address) as channel:
        selector = SelectorClient(
            channel,
            prompt_timeout_seconds=settings.prompt_timeout_seconds,
            admin_token=(
                settings.admin_api_token.get_secret_value() if settings.admin_api_token else ""
            ),
            client_key=(
                settings.selector_api_key.get_secret_value() if settings.selector_api_key else ""
            ),
        )
        bot = build_bot(settings.token, api_base_url=settings.telegram_api_base_url or None)
        dispatcher = build_dispatcher(
            selector,
            admin_ids=settings.bot_admin_ids,
            prompts_per_minute=settings.bot_prompts_per_minute,
            edit_interval=settings.bot_edit_interval_seconds,
        )
        await dispatcher.start_polling(bot, allowed_updates=dispatcher.resolve_used_update_types())


def main() -> int:
    """Exits 0 at once, saying so, when no token is set (`make run` then skips the bot)."""
    settings = BotSettings()
    if not settings.token:
        print("Telegram bot is not configured (TELEGRAM_BOT_TOKEN is not set); not starting.")
        return 0
    json_logging.configure("bot", settings.log_level)
    secrets.register_from_environment()
    secrets.register(settings.token)
    serve_metrics(settings.metrics_port, settings.metrics_host)
    log.info(
        "starting bot",
        extra={
            "selector_address": settings.selector_address,
            "admins": len(settings.bot_admin_ids),
            "prompts_per_minute": settings.bot_prompts_per_minute,
        },
    )
    asyncio.run(run(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
