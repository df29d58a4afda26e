"""Bot settings from environment variables (names in docs/team-interfaces.md)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode

from services.common.settings import ServiceSettings

# How much longer than the Selector's deadline the bot waits, so that the Selector gives up first
# and its own, more precise error reaches the user.
TIMEOUT_MARGIN_SECONDS = 15.0
# Telegram refuses edits of one message more often than about once a second (429 `retry_after`).
EDIT_INTERVAL_SECONDS = 1.0


class BotSettings(ServiceSettings):
    """Everything `python -m services.bot` reads from the environment."""

    # Bot token from @BotFather; unset means the bot is not configured and does not start.
    telegram_bot_token: SecretStr | None = None
    # gRPC address of the Selector.
    selector_address: str = "127.0.0.1:50051"
    # Telegram user ids allowed to run /test, comma separated (e.g. `12345,67890`).
    bot_admin_ids: Annotated[frozenset[int], NoDecode] = frozenset()
    # Base URL of a self-hosted or test Bot API server; unset means api.telegram.org.
    telegram_api_base_url: str | None = None
    # Prompts one Telegram user may send per minute; 0 turns the limit off.
    bot_prompts_per_minute: int = Field(default=5, ge=0)
    # Bearer token for the Selector's admin RPCs (TestProviders, client key usage); also sent on
    # prompts and stats when no SELECTOR_API_KEY is set.
    admin_api_token: SecretStr | None = None
    # The bot's own client key for prompts and stats (its usage is counted apart); optional.
    selector_api_key: SecretStr | None = None
    # The Selector's default request deadline; the bot waits this plus a margin.
    request_deadline_seconds: float = Field(default=60.0, gt=0)
    # Least time between two edits of a streamed answer's message; below 1 s Telegram refuses.
    bot_edit_interval_seconds: float = Field(
        default=EDIT_INTERVAL_SECONDS, ge=EDIT_INTERVAL_SECONDS
    )
    # Port of the bot's Prometheus metrics endpoint; 0 disables it.
    metrics_port: int = Field(default=0, validation_alias="BOT_METRICS_PORT")

    @field_validator("bot_admin_ids", mode="before")
    @classmethod
    def _split_ids(cls, value: object) -> object:
        """Accepts `1,2 3` as well as a list."""
        if isinstance(value, str):
            return frozenset(int(part) for part in value.replace(",", " ").split())
        return value

    @property
    def prompt_timeout_seconds(self) -> float:
        """The gRPC timeout of a prompt: longer than the Selector's own deadline."""
        return self.request_deadline_seconds + TIMEOUT_MARGIN_SECONDS

    @property
    def token(self) -> str:
        """The bot token, or an empty string when none is set."""
        return self.telegram_bot_token.get_secret_value() if self.telegram_bot_token else ""
