"""Environment that points the catalog's providers at a running simulator (demo runs, tests)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from services.data.catalog_file import ProviderEntry, load_catalog, provider_entries

ROOT = Path(__file__).resolve().parents[2]
CATALOG = ROOT / "catalog.yaml"
# Value given to every credential variable: the simulator accepts any key.
SIMULATED = "simulated"


def base_url(simulator_url: str, provider: str, *, gemini: bool) -> str:
    """`provider`'s base URL on the simulator: `…/P/v1`, or `…/P/v1beta` for the Gemini format."""
    return f"{simulator_url}/{provider}/{'v1beta' if gemini else 'v1'}"


#: A catalog provider, as far as pointing it at the simulator needs (the file's one model).
Provider = ProviderEntry


def read_providers(catalog_path: Path = CATALOG) -> tuple[Provider, ...]:
    """The providers of the catalog file (validated as ModelStore validates it)."""
    return provider_entries(load_catalog(catalog_path))


def catalog_path() -> Path:
    """The catalog the stack reads: `$CATALOG_PATH` (relative to the repository) or the default."""
    configured = os.environ.get("CATALOG_PATH")
    return ROOT / configured if configured else CATALOG


def catalog_models(path: Path | None = None) -> dict[str, list[dict[str, Any]]]:
    """The models of the catalog per provider, as scenario model declarations (all free)."""
    declared: dict[str, list[dict[str, Any]]] = {}
    for spec in load_catalog(path or catalog_path()).models:
        declared.setdefault(spec.provider, []).append(
            {
                "id": spec.provider_model_id,
                "context": spec.context_tokens or None,
                "max_output": spec.max_output_tokens or None,
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
