"""The providers' recorded replies (`tests/fixtures/providers/`), used as templates for profiles.

The files are the one source of what each provider says (each names its public source): when a
maintainer re-records a reply, the simulator says the new words. They are read on first use, so
importing the simulator needs no fixture (the service images do not ship `tests/`).
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from services.simulator.environ import ROOT
from services.simulator.script import SIMULATED_PREFIX

FIXTURES = ROOT / "tests" / "fixtures" / "providers"
# Human-readable fields of error bodies that get the `[simulated]` prefix.
_TEXT_KEYS = frozenset({"message", "detail"})


@cache
def recorded(name: str) -> dict[str, Any]:
    """The fixture `provider/case` (e.g. `groq/429_tpm`) as a dict."""
    path = FIXTURES / f"{name}.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise RuntimeError(f"recorded reply {path} is missing (the simulator reads them)") from exc


def template(name: str, replace: dict[str, str] | None = None) -> tuple[int, Any]:
    """The recorded status and a copy of the recorded body with every string value rewritten by
    `replace` (recorded text → ours) and its messages marked `[simulated]`."""
    fixture = recorded(name)
    return fixture["status"], mark(_rewrite(fixture["body"], replace or {}))


def mark(body: Any) -> Any:
    """`body` with `[simulated]` before each message (and HuggingFace's bare string error)."""
    if isinstance(body, dict):
        return {
            key: _prefixed(value)
            if (key in _TEXT_KEYS or key == "error") and isinstance(value, str)
            else mark(value)
            for key, value in body.items()
        }
    if isinstance(body, list):
        return [mark(item) for item in body]
    return body


def _prefixed(text: str) -> str:
    return text if text.startswith(SIMULATED_PREFIX) else f"{SIMULATED_PREFIX} {text}"


def _rewrite(value: Any, replace: dict[str, str]) -> Any:
    if isinstance(value, str):
        for old, new in replace.items():
            value = value.replace(old, new)
        return value
    if isinstance(value, dict):
        return {key: _rewrite(item, replace) for key, item in value.items()}
    if isinstance(value, list):
        return [_rewrite(item, replace) for item in value]
    return value
