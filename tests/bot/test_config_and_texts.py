"""Settings from the environment, and the language and plural rules of the texts."""

from __future__ import annotations

import string

import pytest
from pydantic import ValidationError

from services.bot.config import BotSettings
from services.bot.texts import EN, RU, language_of


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123:secret-token")
    monkeypatch.setenv("BOT_ADMIN_IDS", "12, 34 56")
    monkeypatch.setenv("BOT_PROMPTS_PER_MINUTE", "7")
    monkeypatch.setenv("REQUEST_DEADLINE_SECONDS", "30")
    monkeypatch.setenv("BOT_METRICS_PORT", "9104")
    monkeypatch.setenv("BOT_EDIT_INTERVAL_SECONDS", "3")
    settings = BotSettings(_env_file=None)
    assert settings.token == "123:secret-token"
    assert "secret-token" not in repr(settings)
    assert settings.bot_admin_ids == {12, 34, 56}
    assert settings.bot_prompts_per_minute == 7
    assert settings.prompt_timeout_seconds == 45
    assert settings.metrics_port == 9104
    assert settings.bot_edit_interval_seconds == 3


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "TELEGRAM_BOT_TOKEN",
        "BOT_ADMIN_IDS",
        "REQUEST_DEADLINE_SECONDS",
        "BOT_EDIT_INTERVAL_SECONDS",
    ):
        monkeypatch.delenv(name, raising=False)
    settings = BotSettings(_env_file=None)
    assert settings.token == ""
    assert settings.bot_admin_ids == frozenset()
    assert settings.selector_address == "127.0.0.1:50051"
    assert settings.prompt_timeout_seconds == 75
    assert settings.bot_edit_interval_seconds == 1


def test_edits_cannot_be_set_more_often_than_telegram_allows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BOT_EDIT_INTERVAL_SECONDS", "0.5")
    with pytest.raises(ValidationError, match="bot_edit_interval_seconds"):
        BotSettings(_env_file=None)


@pytest.mark.parametrize(
    ("code", "language"),
    [(None, "ru"), ("", "ru"), ("ru", "ru"), ("en", "en"), ("en-US", "en"), ("de", "ru")],
)
def test_language_of(code: str | None, language: str) -> None:
    assert language_of(code) == language


@pytest.mark.parametrize(
    ("seconds", "ru", "en"),
    [
        (0.2, "1 секунду", "1 second"),
        (2, "2 секунды", "2 seconds"),
        (5, "5 секунд", "5 seconds"),
        (11, "11 секунд", "11 seconds"),
        (21, "21 секунду", "21 seconds"),
        (59.5, "1 минуту", "1 minute"),
        (125, "3 минуты", "3 minutes"),
        (3600, "1 час", "1 hour"),
        (5 * 3600, "5 часов", "5 hours"),
    ],
)
def test_durations(seconds: float, ru: str, en: str) -> None:
    assert (RU.duration(seconds), EN.duration(seconds)) == (ru, en)


def test_every_text_is_present_in_both_languages() -> None:
    for name, value in vars(RU).items():
        other = getattr(EN, name)
        assert bool(value) == bool(other), name
        if isinstance(value, str):
            assert sorted(_fields(value)) == sorted(_fields(other)), name


def _fields(template: str) -> list[str]:
    return [f for _, f, _, _ in string.Formatter().parse(template) if f]
