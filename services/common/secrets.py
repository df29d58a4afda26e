"""Keeps secret values (API keys, tokens) out of every string that leaves a process."""

from __future__ import annotations

import os
import re

from services.common.keys import split_keys

_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD)$")
_MIN_SECRET_LEN = 6
_secrets: set[str] = set()
_pattern: re.Pattern[str] | None = None

REDACTED = "[REDACTED]"


def register(value: str | None) -> None:
    """Remembers a secret value so that `redact` removes it wherever it appears."""
    global _pattern
    if not value or len(value) < _MIN_SECRET_LEN or value in _secrets:
        return
    _secrets.add(value)
    ordered = sorted(_secrets, key=len, reverse=True)
    _pattern = re.compile("|".join(re.escape(s) for s in ordered))


def register_from_environment(environ: dict[str, str] | None = None) -> None:
    """Registers every environment variable whose name ends in KEY, TOKEN, SECRET or PASSWORD,
    and each item of one that lists several keys (`key1,key2`)."""
    for name, value in (os.environ if environ is None else environ).items():
        if _SECRET_NAME.search(name.upper()):
            register(value)
            for _, key in split_keys(value):
                register(key)


def redact(text: str) -> str:
    """Returns `text` with every registered secret replaced by `[REDACTED]`."""
    if _pattern is None or not text:
        return text
    return _pattern.sub(REDACTED, text)
