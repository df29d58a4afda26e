"""Opaque page tokens: URL-safe base64 of a JSON keyset cursor, bound to the listing's filters."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from datetime import datetime
from typing import Any

from services.common import errors
from services.data.history import Cursor


def fingerprint(*filters: object) -> str:
    """A short digest of a listing's filters, so a token cannot be reused with other filters."""
    return hashlib.sha256(repr(filters).encode()).hexdigest()[:12]


def _encode(payload: dict[str, Any]) -> str:
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(token: str, filters: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        payload = json.loads(raw)
    except (binascii.Error, ValueError) as error:
        raise errors.InvalidArgument([("page_token", "is not a token this API issued")]) from error
    if not isinstance(payload, dict) or payload.get("f") != filters:
        raise errors.InvalidArgument(
            [("page_token", "belongs to a listing with other filters; start again without it")]
        )
    return payload


def model_token(after_id: int, filters: str) -> str:
    """Token for the model page after `after_id`."""
    return _encode({"f": filters, "id": after_id})


def model_cursor(token: str, filters: str) -> int:
    """The id after which the next model page starts (0 for no token)."""
    if not token:
        return 0
    after = _decode(token, filters).get("id")
    if not isinstance(after, int) or isinstance(after, bool) or after < 0:
        raise errors.InvalidArgument([("page_token", "is not a token this API issued")])
    return after


def history_token(cursor: Cursor, filters: str) -> str:
    """Token for the history page after `cursor`."""
    return _encode({"f": filters, "t": cursor.created_at.isoformat(), "id": cursor.id})


def history_cursor(token: str, filters: str) -> Cursor | None:
    """The cursor of the next history page (None for no token)."""
    if not token:
        return None
    payload = _decode(token, filters)
    try:
        return Cursor(datetime.fromisoformat(payload["t"]), int(payload["id"]))
    except (KeyError, TypeError, ValueError) as error:
        raise errors.InvalidArgument([("page_token", "is not a token this API issued")]) from error
