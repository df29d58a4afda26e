"""The environment every child of `make run` gets: `.env` merged, keys found, the admin token."""

from __future__ import annotations

import secrets as random_secrets
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from dotenv import dotenv_values

from services.common.keys import split_keys
from services.simulator.environ import Provider
from services.stack.private import write_private


def read_dotenv(path: Path) -> dict[str, str]:
    """The variables of a `.env` file; empty when there is none."""
    if not path.is_file():
        return {}
    return {k: v for k, v in dotenv_values(path).items() if v is not None}


def merge(real: Mapping[str, str], dotenv: Mapping[str, str]) -> dict[str, str]:
    """`.env` values under the real environment: a variable set in the shell always wins."""
    return {**dotenv, **real}


def configured_keys(env: Mapping[str, str], providers: tuple[Provider, ...]) -> list[str]:
    """Names of the provider key variables that hold at least one key (a variable may list
    several, separated by commas)."""
    return [
        p.api_key_env for p in providers if p.api_key_env and split_keys(env.get(p.api_key_env, ""))
    ]


@dataclass(frozen=True)
class AdminToken:
    """The admin token children get, and the shell expression a user pastes into a curl."""

    value: str
    shell_expression: str


def admin_token(env: Mapping[str, str], token_file: Path) -> AdminToken:
    """The configured ADMIN_API_TOKEN (from the environment or `.env`), or a new random one.

    Either way it is written to `token_file` (mode 0600) and the curl reads it from there, so the
    printed command works whether the token came from the shell, `.env` or nowhere; the token
    itself is never printed.
    """
    token = env.get("ADMIN_API_TOKEN", "") or random_secrets.token_urlsafe(32)
    token_file.parent.mkdir(parents=True, exist_ok=True)
    write_private(token_file, token + "\n")
    return AdminToken(token, f"$(cat {shlex.quote(str(token_file))})")
