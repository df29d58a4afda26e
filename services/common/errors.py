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

Every status carries an `ErrorInfo` whose reason is an `aiselector.v1.ErrorReason` name.
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
                error_details_pb2.BadRequest.FieldViolation(field=f, description=d)
                for f, d in self.violations
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
    """The `google.rpc.Status` a client receives for `error`, secrets removed."""
    info = error_details_pb2.ErrorInfo(
        reason=reason_name(error.reason),
        domain=DOMAIN,
        metadata={k: secrets.redact(v) for k, v in error.metadata.items()},
    )
    return status_pb2.Status(
        code=error.code.value[0],
        message=secrets.redact(error.message),
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
