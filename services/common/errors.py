"""Domain errors and their one mapping to `google.rpc.Status`.

    ServiceError                 (INTERNAL, generic message)
    ├── InvalidArgument          INVALID_ARGUMENT  + BadRequest field violations
    ├── NotFound                 NOT_FOUND
    ├── AlreadyExists            ALREADY_EXISTS
    ├── Unauthenticated          UNAUTHENTICATED
    ├── PermissionDenied         PERMISSION_DENIED
    ├── ResourceExhausted        RESOURCE_EXHAUSTED + RetryInfo + `retry-after` trailer
    ├── Unavailable              UNAVAILABLE        + RetryInfo + `retry-after` trailer
    └── DeadlineExceeded         DEADLINE_EXCEEDED

Every status carries an `ErrorInfo` whose reason is an `aiselector.v1.ErrorReason` name. A status
is bounded whatever an error echoes (message, field violations, metadata: a few KiB in all), so
its trailers can never grow large enough to hurt the connection they travel on.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from aiselector.v1 import common_pb2
from services.common import secrets

DOMAIN = "aiselector.v1"
# Bounds of a status, in UTF-8 bytes and counts: with them a status serialises to under 8 KiB,
# and its trailers (grpc-message, grpc-status-details-bin) stay far below Envoy's header limits.
MESSAGE_MAX_BYTES = 1024
NAME_MAX_BYTES = 64
DETAIL_MAX_BYTES = 256
MAX_VIOLATIONS = 10
MAX_METADATA = 4
# A client's value quoted in an error is cut to this many characters.
ECHO_MAX_CHARS = 64
ELLIPSIS = "…"


def clip(text: str, max_bytes: int) -> str:
    """`text` cut to at most `max_bytes` of UTF-8, ending in an ellipsis when cut."""
    encoded = text.encode()
    if len(encoded) <= max_bytes:
        return text
    budget = max_bytes - len(ELLIPSIS.encode())
    return encoded[:budget].decode(errors="ignore") + ELLIPSIS


def echo(value: str) -> str:
    """A client's value quoted for an error message: its first ECHO_MAX_CHARS characters."""
    if len(value) <= ECHO_MAX_CHARS:
        return repr(value)
    return f"{value[:ECHO_MAX_CHARS]!r}{ELLIPSIS} ({len(value)} characters)"


class ServiceError(Exception):
    """An error a client is meant to see; subclasses set the gRPC code."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL
    default_reason: int = common_pb2.ERROR_REASON_INTERNAL

    def __init__(
        self,
        message: str,
        *,
        reason: int | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = self.default_reason if reason is None else reason
        self.metadata = dict(metadata or {})

    def details(self) -> list[any_pb2.Any]:
        """Detail messages beyond ErrorInfo."""
        return []

    def trailers(self) -> tuple[tuple[str, str], ...]:
        """Trailing metadata sent with the status."""
        return ()


class InvalidArgument(ServiceError):
    """Input failed validation; `violations` is a list of (field, description)."""

    code = grpc.StatusCode.INVALID_ARGUMENT
    default_reason = common_pb2.ERROR_REASON_INVALID_ARGUMENT

    def __init__(self, violations: Sequence[tuple[str, str]], **kwargs: object) -> None:
        self.violations = list(violations)
        message = "; ".join(f"{field}: {desc}" for field, desc in self.violations)
        super().__init__(message or "invalid argument", **kwargs)  # type: ignore[arg-type]

    def details(self) -> list[any_pb2.Any]:
        bad = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(
                    field=clip(f, NAME_MAX_BYTES),
                    description=clip(secrets.redact(d), DETAIL_MAX_BYTES),
                )
                for f, d in self.violations[:MAX_VIOLATIONS]
            ]
        )
        return [_pack(bad)]


class NotFound(ServiceError):
    """The named thing does not exist."""

    code = grpc.StatusCode.NOT_FOUND
    default_reason = common_pb2.ERROR_REASON_MODEL_NOT_FOUND


class AlreadyExists(ServiceError):
    """The thing to create exists already."""

    code = grpc.StatusCode.ALREADY_EXISTS
    default_reason = common_pb2.ERROR_REASON_MODEL_ALREADY_EXISTS


class Unauthenticated(ServiceError):
    """No credential was presented."""

    code = grpc.StatusCode.UNAUTHENTICATED
    default_reason = common_pb2.ERROR_REASON_UNAUTHENTICATED


class PermissionDenied(ServiceError):
    """The credential does not allow this call."""

    code = grpc.StatusCode.PERMISSION_DENIED
    default_reason = common_pb2.ERROR_REASON_PERMISSION_DENIED


class DeadlineExceeded(ServiceError):
    """The request's deadline was spent."""

    code = grpc.StatusCode.DEADLINE_EXCEEDED
    default_reason = common_pb2.ERROR_REASON_DEADLINE_EXCEEDED


class _RetryableError(ServiceError):
    """An error after which the client may retry in `retry_after_seconds`."""

    def __init__(self, message: str, *, retry_after_seconds: float, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.retry_after_seconds = max(0.0, retry_after_seconds)

    def details(self) -> list[any_pb2.Any]:
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(int(self.retry_after_seconds * 1e9))
        return [_pack(error_details_pb2.RetryInfo(retry_delay=delay))]

    def trailers(self) -> tuple[tuple[str, str], ...]:
        return (("retry-after", str(max(1, math.ceil(self.retry_after_seconds)))),)


class ResourceExhausted(_RetryableError):
    """Every eligible model is rate limited or out of budget."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    default_reason = common_pb2.ERROR_REASON_ALL_RATE_LIMITED


class Unavailable(_RetryableError):
    """Nothing can answer now."""

    code = grpc.StatusCode.UNAVAILABLE
    default_reason = common_pb2.ERROR_REASON_SERVICE_UNAVAILABLE


def _pack(message: object) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)  # type: ignore[arg-type]
    return packed


def reason_name(reason: int) -> str:
    """The ErrorInfo.reason string of an ErrorReason value."""
    return common_pb2.ErrorReason.Name(reason)  # type: ignore[arg-type]


def to_status(error: ServiceError) -> status_pb2.Status:
    """The `google.rpc.Status` a client receives for `error`: secrets removed, size bounded."""
    metadata = list(error.metadata.items())[:MAX_METADATA]
    info = error_details_pb2.ErrorInfo(
        reason=reason_name(error.reason),
        domain=DOMAIN,
        metadata={
            clip(k, NAME_MAX_BYTES): clip(secrets.redact(v), DETAIL_MAX_BYTES) for k, v in metadata
        },
    )
    return status_pb2.Status(
        code=error.code.value[0],
        message=clip(secrets.redact(error.message), MESSAGE_MAX_BYTES),
        details=[_pack(info), *error.details()],
    )


def internal_status() -> status_pb2.Status:
    """The status for an unexpected exception: generic, with no trace of the exception."""
    info = error_details_pb2.ErrorInfo(
        reason=reason_name(common_pb2.ERROR_REASON_INTERNAL), domain=DOMAIN
    )
    return status_pb2.Status(
        code=code_pb2.INTERNAL,
        message="internal error; see the service logs for this request id",
        details=[_pack(info)],
    )
