"""Admin bearer-token check for admin RPCs."""

from __future__ import annotations

import hmac

from aiselector.v1 import common_pb2
from services.common import errors


def check_admin(authorization: str, configured_token: str | None) -> None:
    """Raises unless `authorization` is `Bearer <configured_token>`."""
    if not configured_token:
        raise errors.PermissionDenied(
            "admin methods are disabled: set ADMIN_API_TOKEN on the selector to enable them",
            reason=common_pb2.ERROR_REASON_ADMIN_DISABLED,
        )
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise errors.Unauthenticated(
            "admin method: send the header 'authorization: Bearer <ADMIN_API_TOKEN>'"
        )
    if not hmac.compare_digest(token.strip().encode(), configured_token.encode()):
        raise errors.PermissionDenied("admin method: the bearer token is not valid")
