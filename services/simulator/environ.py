"""Environment that points the catalog's providers at a running simulator (demo runs, tests)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CATALOG = ROOT / "catalog.yaml"
# Value given to every credential variable: the simulator accepts any key.
SIMULATED = "simulated"
_PLACEHOLDER = re.compile(r"\{([A-Z][A-Z0-9_]*)\}")


def base_url(simulator_url: str, provider: str, *, gemini: bool) -> str:
    """`provider`'s base URL on the simulator: `…/P/v1`, or `…/P/v1beta` for the Gemini format."""
    return f"{simulator_url}/{provider}/{'v1beta' if gemini else 'v1'}"


@dataclass(frozen=True)
class Provider:
    """What is needed of a catalog provider to point it at the simulator."""

    name: str
    api_format: str
    api_key_env: str
    base_url_env: str
    endpoint_variables: tuple[str, ...] = ()


def read_providers(catalog_path: Path = CATALOG) -> tuple[Provider, ...]:
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


def catalog_path() -> Path:
    """The catalog the stack reads: `$CATALOG_PATH` (relative to the repository) or the default."""
    configured = os.environ.get("CATALOG_PATH")
    return ROOT / configured if configured else CATALOG


def catalog_models(path: Path | None = None) -> dict[str, list[dict[str, Any]]]:
    """The models of the catalog per provider, as scenario model declarations (all free)."""
    catalog = yaml.safe_load((path or catalog_path()).read_text(encoding="utf-8")) or {}
    declared: dict[str, list[dict[str, Any]]] = {}
    for model in catalog.get("models", []):
        limits = model.get("limits") or {}
        declared.setdefault(model["provider"], []).append(
            {
                "id": str(model["provider_model_id"]),
                "context": limits.get("context"),
                "max_output": limits.get("max_output"),
            }
        )
    return declared


def demo_overrides(providers: tuple[Provider, ...], simulator_url: str) -> dict[str, str]:
    """Every provider pointed at the simulator, with placeholder credentials."""
    overrides: dict[str, str] = {}
    for provider in providers:
        if provider.base_url_env:
            overrides[provider.base_url_env] = base_url(
                simulator_url, provider.name, gemini=provider.api_format == "gemini"
            )
        if provider.api_key_env:
            overrides[provider.api_key_env] = SIMULATED
        for variable in provider.endpoint_variables:
            overrides[variable] = SIMULATED
    return overrides
