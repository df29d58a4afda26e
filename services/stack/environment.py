"""The environment every child of `make run` gets: `.env` merged, demo mode, the admin token."""

from __future__ import annotations

import re
import secrets as random_secrets
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml
from dotenv import dotenv_values

SIMULATED = "simulated"
_PLACEHOLDER = re.compile(r"\{([A-Z][A-Z0-9_]*)\}")


@dataclass(frozen=True)
class Provider:
    """What the stack needs to know of a catalog provider to point it at the simulator."""

    name: str
    api_format: str
    api_key_env: str
    base_url_env: str
    endpoint_variables: tuple[str, ...] = ()

    def simulator_base_url(self, simulator_url: str) -> str:
        """This provider's base URL on the simulator (docs/team-interfaces.md)."""
        version = "v1beta" if self.api_format == "gemini" else "v1"
        return f"{simulator_url}/{self.name}/{version}"


def read_providers(catalog_path: Path) -> tuple[Provider, ...]:
    """The providers of the catalog file."""
    catalog = yaml.safe_load(catalog_path.read_text(encoding="utf-8")) or {}
    return tuple(
        Provider(
            name=entry["name"],
            api_format=entry.get("api_format", "openai"),
            api_key_env=entry.get("api_key_env") or "",
            base_url_env=entry.get("base_url_env") or "",
            endpoint_variables=tuple(_PLACEHOLDER.findall(entry.get("api_endpoint", ""))),
        )
        for entry in catalog.get("providers", [])
    )


def read_dotenv(path: Path) -> dict[str, str]:
    """The variables of a `.env` file; empty when there is none."""
    if not path.is_file():
        return {}
    return {k: v for k, v in dotenv_values(path).items() if v is not None}


def merge(real: Mapping[str, str], dotenv: Mapping[str, str]) -> dict[str, str]:
    """`.env` values under the real environment: a variable set in the shell always wins."""
    return {**dotenv, **real}


def configured_keys(env: Mapping[str, str], providers: tuple[Provider, ...]) -> list[str]:
    """Names of the provider key variables that hold a value."""
    return [p.api_key_env for p in providers if p.api_key_env and env.get(p.api_key_env, "")]


def demo_overrides(providers: tuple[Provider, ...], simulator_url: str) -> dict[str, str]:
    """Every provider pointed at the simulator, with placeholder credentials."""
    overrides: dict[str, str] = {}
    for provider in providers:
        if provider.base_url_env:
            overrides[provider.base_url_env] = provider.simulator_base_url(simulator_url)
        if provider.api_key_env:
            overrides[provider.api_key_env] = SIMULATED
        for variable in provider.endpoint_variables:
            overrides[variable] = SIMULATED
    return overrides


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
    token_file.touch(mode=0o600, exist_ok=True)
    token_file.chmod(0o600)
    token_file.write_text(token + "\n", encoding="utf-8")
    return AdminToken(token, f"$(cat {shlex.quote(str(token_file))})")
