"""Proto ↔ domain for the ModelStore: request validation (field violations) and reply building."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from google.protobuf import timestamp_pb2

from aiselector.v1 import common_pb2, model_store_pb2
from services.common import errors, outcomes
from services.common.names import LATENCY_BOUNDS_MS
from services.data.attempts import AttemptRecord, Bucket, ModelWindow
from services.data.catalog import (
    ACCOUNT_LIMIT_FIELDS,
    CATALOG_ORIGIN,
    DISCOVERED_ORIGIN,
    LIMIT_FIELDS,
    ModelSpec,
    spec_of,
    validate_spec,
)
from services.data.client_keys import KeyLimits, Usage
from services.data.history import HistoryFilter, PromptCounts, PromptEntry
from services.data.models import Availability, Listing
from services.data.schema import AiModel, ClientKey, PromptHistory

MAX_BATCH = 1000
MAX_ERROR_CHARS = 2000
MAX_TEXT_CHARS = 1_000_000

_API_FORMATS = {common_pb2.API_FORMAT_OPENAI: "openai", common_pb2.API_FORMAT_GEMINI: "gemini"}
_API_FORMAT_VALUES = {name: value for value, name in _API_FORMATS.items()}
_SOURCES = {common_pb2.ATTEMPT_SOURCE_USER: "user", common_pb2.ATTEMPT_SOURCE_PROBE: "probe"}
_ORIGINS = {
    CATALOG_ORIGIN: common_pb2.MODEL_ORIGIN_CATALOG,
    DISCOVERED_ORIGIN: common_pb2.MODEL_ORIGIN_DISCOVERED,
}
# ModelSpec field → its field in `Model.account_limits`.
_ACCOUNT_LIMITS = {name: name.removeprefix("account_") for name in ACCOUNT_LIMIT_FIELDS}
# Fields of `ModelLimits` that mean nothing per account.
_NOT_ACCOUNT_LIMITS = ("context_tokens", "max_output_tokens", "timeout_ms")


outcome_name = outcomes.name
outcome_value = outcomes.value


def _time(moment: datetime | None) -> timestamp_pb2.Timestamp | None:
    if moment is None:
        return None
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment.astimezone(UTC))
    return stamp


def _datetime(stamp: timestamp_pb2.Timestamp) -> datetime:
    return stamp.ToDatetime(tzinfo=UTC)


def _bounded(value: int, field: str, low: int, high: int, problems: list[tuple[str, str]]) -> None:
    if not low <= value <= high:
        problems.append((field, f"must be {low}..{high}"))


def _raise(problems: list[tuple[str, str]]) -> None:
    if problems:
        raise errors.InvalidArgument(problems)


def page_size(value: int, default: int, field: str = "page_size") -> int:
    """The page size asked for (0 → default); InvalidArgument outside 1..1000."""
    if value == 0:
        return default
    _raise([(field, "must be 0..1000")] if not 0 < value <= 1000 else [])
    return value


# ----- models -----


def model_proto(row: AiModel) -> common_pb2.Model:
    """The proto of a stored model, with its availability."""
    return common_pb2.Model(
        id=row.id,
        name=row.name,
        provider=row.provider,
        api_endpoint=row.api_endpoint,
        api_format=_API_FORMAT_VALUES.get(row.api_format, common_pb2.API_FORMAT_UNSPECIFIED),
        provider_model_id=row.provider_model_id,
        api_key_env=row.api_key_env,
        base_url_env=row.base_url_env,
        limits=common_pb2.ModelLimits(**{name: getattr(row, name) for name in LIMIT_FIELDS}),
        account_limits=common_pb2.ModelLimits(
            **{limit: getattr(row, name) for name, limit in _ACCOUNT_LIMITS.items()}
        ),
        tags=row.tags,
        supports_json=row.supports_json,
        reasoning=row.reasoning,
        is_active=row.is_active,
        success_count=row.success_count,
        failure_count=row.failure_count,
        request_count=row.request_count,
        total_response_time_seconds=float(row.total_response_time),
        last_checked=_time(row.last_checked),
        create_time=_time(row.created_at),
        update_time=_time(row.updated_at),
        availability=common_pb2.ModelAvailability(
            model_id=row.id,
            cooldown_until=_time(row.cooldown_until),
            cooldown_reason=row.cooldown_reason,
            cooldown_outcome=outcome_value(row.cooldown_outcome),
            consecutive_failures=row.consecutive_failures,
            circuit_opened_at=_time(row.circuit_opened_at),
        ),
        listing=common_pb2.ModelListing(
            model_id=row.id,
            unlisted_reason=row.unlisted_reason,
            unlisted_since=_time(row.unlisted_since),
        ),
        origin=_ORIGINS.get(row.origin, common_pb2.MODEL_ORIGIN_UNSPECIFIED),
        reasoning_effort=row.reasoning_effort,
    )


def _spec_values(model: common_pb2.Model) -> dict[str, Any]:
    return {
        "name": model.name,
        "provider": model.provider,
        "api_endpoint": model.api_endpoint,
        "api_format": _API_FORMATS.get(model.api_format, ""),
        "provider_model_id": model.provider_model_id,
        "api_key_env": model.api_key_env,
        "base_url_env": model.base_url_env,
        **{name: getattr(model.limits, name) for name in LIMIT_FIELDS},
        "tags": tuple(model.tags),
        "supports_json": model.supports_json,
        "reasoning": model.reasoning,
        "is_active": model.is_active,
        **{name: getattr(model.account_limits, limit) for name, limit in _ACCOUNT_LIMITS.items()},
        "reasoning_effort": model.reasoning_effort if model.HasField("reasoning_effort") else None,
    }


def _account_sizes(model: common_pb2.Model) -> list[tuple[str, str]]:
    """A problem for each size or timeout set in `account_limits` (only budgets are shared)."""
    return [
        (f"model.account_limits.{name}", "must be 0: an account shares budgets, not sizes")
        for name in _NOT_ACCOUNT_LIMITS
        if getattr(model.account_limits, name)
    ]


def model_spec(request: model_store_pb2.CreateModelRequest) -> ModelSpec:
    """The spec to create; InvalidArgument naming each bad `model.*` field."""
    if not request.HasField("model"):
        raise errors.InvalidArgument([("model", "is required")])
    spec = ModelSpec(**_spec_values(request.model))
    problems = [(f"model.{name}", description) for name, description in validate_spec(spec)]
    _raise(problems + _account_sizes(request.model))
    return spec


# update_mask path → the ModelSpec fields it sets.
_MASK_PATHS: dict[str, tuple[str, ...]] = {
    **{
        name: (name,)
        for name in (
            "name",
            "provider",
            "api_endpoint",
            "api_format",
            "provider_model_id",
            "api_key_env",
            "base_url_env",
            "tags",
            "supports_json",
            "reasoning",
            "reasoning_effort",
            "is_active",
        )
    },
    "limits": LIMIT_FIELDS,
    **{f"limits.{name}": (name,) for name in LIMIT_FIELDS},
    "account_limits": ACCOUNT_LIMIT_FIELDS,
    **{f"account_limits.{limit}": (name,) for name, limit in _ACCOUNT_LIMITS.items()},
}


def model_changes(request: model_store_pb2.UpdateModelRequest, current: AiModel) -> dict[str, Any]:
    """Column changes of an update, validated as the whole resulting model."""
    columns: set[str] = set()
    for path in request.update_mask.paths:
        if path not in _MASK_PATHS:
            raise errors.InvalidArgument(
                [("update_mask.paths", f"{path!r} cannot be updated; catalog fields only")]
            )
        columns.update(_MASK_PATHS[path])
    values = _spec_values(request.model)
    changes = {column: values[column] for column in columns}
    merged = ModelSpec(**{**spec_of(current).__dict__, **changes})
    problems = [(f"model.{name}", description) for name, description in validate_spec(merged)]
    if "account_limits" in request.update_mask.paths:
        problems += _account_sizes(request.model)
    _raise(problems)
    if "tags" in changes:
        changes["tags"] = list(changes["tags"])
    return changes


def update_target(request: model_store_pb2.UpdateModelRequest) -> int:
    """The id of the model to update; InvalidArgument when the request is incomplete."""
    problems: list[tuple[str, str]] = []
    if request.model.id <= 0:
        problems.append(("model.id", "must name an existing model (> 0)"))
    if not request.HasField("update_mask") or not request.update_mask.paths:
        problems.append(("update_mask.paths", "must name at least one field"))
    _raise(problems)
    return request.model.id


def get_model_key(request: model_store_pb2.GetModelRequest) -> tuple[int, str]:
    """(id, name) of the model asked for; exactly one is set."""
    which = request.WhichOneof("model")
    if which == "id":
        _raise([("id", "must be > 0")] if request.id <= 0 else [])
        return request.id, ""
    if which == "name":
        _raise([("name", "must be 1..255 characters")] if not 0 < len(request.name) <= 255 else [])
        return 0, request.name
    raise errors.InvalidArgument([("model", "set `id` or `name`")])


# ----- attempts and statistics -----


def _batch(count: int, field: str) -> None:
    _raise([(field, f"must hold 1..{MAX_BATCH} entries")] if not 0 < count <= MAX_BATCH else [])


def attempt_records(request: model_store_pb2.RecordAttemptsRequest) -> list[AttemptRecord]:
    """The attempts of a batch; InvalidArgument naming `attempts[i].field` for each problem."""
    _batch(len(request.attempts), "attempts")
    problems: list[tuple[str, str]] = []
    records: list[AttemptRecord] = []
    for index, attempt in enumerate(request.attempts):
        where = f"attempts[{index}]"
        if not 0 < len(attempt.attempt_id) <= 64:
            problems.append((f"{where}.attempt_id", "must be 1..64 characters"))
        if attempt.model_id <= 0:
            problems.append((f"{where}.model_id", "must be > 0"))
        if not attempt.HasField("start_time"):
            problems.append((f"{where}.start_time", "is required"))
        _bounded(attempt.latency_ms, f"{where}.latency_ms", 0, 86_400_000, problems)
        if attempt.outcome not in common_pb2.Outcome.values() or not attempt.outcome:
            problems.append((f"{where}.outcome", "must be a known outcome, not UNSPECIFIED"))
        _bounded(attempt.http_status, f"{where}.http_status", 0, 599, problems)
        if attempt.source not in _SOURCES:
            problems.append((f"{where}.source", "must be USER or PROBE"))
        if len(attempt.request_id) > 128:
            problems.append((f"{where}.request_id", "must be at most 128 characters"))
        _bounded(attempt.prompt_tokens, f"{where}.prompt_tokens", 0, 10**8, problems)
        _bounded(attempt.completion_tokens, f"{where}.completion_tokens", 0, 10**8, problems)
        if problems:
            continue
        records.append(
            AttemptRecord(
                attempt_id=attempt.attempt_id,
                model_id=attempt.model_id,
                start_time=_datetime(attempt.start_time),
                latency_ms=attempt.latency_ms,
                outcome=outcome_name(attempt.outcome),
                http_status=attempt.http_status,
                source=_SOURCES[attempt.source],
                request_id=attempt.request_id,
                tokens=attempt.prompt_tokens + attempt.completion_tokens,
                error=attempt.error[:MAX_ERROR_CHARS],
            )
        )
    _raise(problems)
    return records


def statistics_window(
    request: model_store_pb2.GetModelStatisticsRequest, now: datetime, max_days: int = 31
) -> tuple[list[int], datetime, datetime]:
    """(model ids, start rounded down to the hour, end) of a statistics request."""
    problems: list[tuple[str, str]] = []
    if any(model_id <= 0 for model_id in request.model_ids):
        problems.append(("model_ids", "every id must be > 0"))
    end = _datetime(request.end_time) if request.HasField("end_time") else now
    if not request.HasField("start_time"):
        problems.append(("start_time", "is required"))
        _raise(problems)
    start = _datetime(request.start_time).replace(minute=0, second=0, microsecond=0)
    if start >= end:
        problems.append(("start_time", "must be before end_time"))
    elif (end - start).total_seconds() > max_days * 86400:
        problems.append(("start_time", f"the window must be at most {max_days} days"))
    _raise(problems)
    return list(request.model_ids), start, end


def prompt_counts_window(
    request: model_store_pb2.GetPromptCountsRequest, now: datetime, max_days: int = 31
) -> tuple[datetime, datetime]:
    """(start rounded down to the minute, end) of a prompt counts request."""
    problems: list[tuple[str, str]] = []
    end = _datetime(request.end_time) if request.HasField("end_time") else now
    if not request.HasField("start_time"):
        problems.append(("start_time", "is required"))
        _raise(problems)
    start = _datetime(request.start_time).replace(second=0, microsecond=0)
    if start >= end:
        problems.append(("start_time", "must be before end_time"))
    elif (end - start).total_seconds() > max_days * 86400:
        problems.append(("start_time", f"the window must be at most {max_days} days"))
    _raise(problems)
    return start, end


def _counts_proto(counts: PromptCounts) -> model_store_pb2.PromptCounts:
    message = model_store_pb2.PromptCounts(
        prompts=counts.prompts, answered=counts.answered, failovers=counts.failovers
    )
    if counts.start is not None:
        message.start_time.CopyFrom(_time(counts.start))
    return message


def prompt_counts_response(
    total: PromptCounts, hours: list[PromptCounts], start: datetime, end: datetime
) -> model_store_pb2.GetPromptCountsResponse:
    """The reply of GetPromptCounts."""
    return model_store_pb2.GetPromptCountsResponse(
        total=_counts_proto(total),
        hours=[_counts_proto(hour) for hour in hours],
        start_time=_time(start),
        end_time=_time(end),
    )


def _bucket_proto(bucket: Bucket) -> model_store_pb2.StatisticsBucket:
    return model_store_pb2.StatisticsBucket(
        start_time=_time(bucket.start_time),
        outcome_counts=[
            model_store_pb2.OutcomeCount(outcome=outcome_value(name), count=count)
            for name, count in bucket.outcome_counts.items()
        ],
        success_latency_ms_sum=bucket.success_latency_ms_sum,
        success_latency_histogram=bucket.success_latency_histogram,
        tokens=bucket.tokens,
    )


def statistics_response(
    windows: list[ModelWindow], start: datetime, end: datetime
) -> model_store_pb2.GetModelStatisticsResponse:
    """The reply of GetModelStatistics."""
    return model_store_pb2.GetModelStatisticsResponse(
        statistics=[
            model_store_pb2.ModelStatistics(
                model_id=window.model_id,
                buckets=[_bucket_proto(bucket) for bucket in window.buckets],
                requests_last_minute=window.requests_last_minute,
                requests_today=window.requests_today,
                tokens_today=window.tokens_today,
            )
            for window in windows
        ],
        latency_bounds_ms=LATENCY_BOUNDS_MS,
        start_time=_time(start),
        end_time=_time(end),
    )


def availabilities(request: model_store_pb2.UpdateModelAvailabilityRequest) -> list[Availability]:
    """The availability states of a request; InvalidArgument naming each bad field."""
    _batch(len(request.availabilities), "availabilities")
    problems: list[tuple[str, str]] = []
    states: list[Availability] = []
    for index, state in enumerate(request.availabilities):
        where = f"availabilities[{index}]"
        if state.model_id <= 0:
            problems.append((f"{where}.model_id", "must be > 0"))
        if state.consecutive_failures < 0:
            problems.append((f"{where}.consecutive_failures", "must be >= 0"))
        if state.cooldown_outcome not in common_pb2.Outcome.values():
            problems.append((f"{where}.cooldown_outcome", "must be a known outcome"))
        if len(state.cooldown_reason) > MAX_ERROR_CHARS:
            problems.append((f"{where}.cooldown_reason", f"must be ≤ {MAX_ERROR_CHARS} chars"))
        if problems:
            continue
        outcome = state.cooldown_outcome
        states.append(
            Availability(
                model_id=state.model_id,
                cooldown_until=_datetime(state.cooldown_until)
                if state.HasField("cooldown_until")
                else None,
                cooldown_reason=state.cooldown_reason,
                cooldown_outcome=outcome_name(outcome) if outcome else "",
                consecutive_failures=state.consecutive_failures,
                circuit_opened_at=_datetime(state.circuit_opened_at)
                if state.HasField("circuit_opened_at")
                else None,
            )
        )
    _raise(problems)
    return states


def listings(request: model_store_pb2.UpdateModelListingsRequest) -> list[Listing]:
    """The listing states of a request; InvalidArgument naming each bad field."""
    _batch(len(request.listings), "listings")
    problems: list[tuple[str, str]] = []
    states: list[Listing] = []
    for index, listing in enumerate(request.listings):
        where = f"listings[{index}]"
        if listing.model_id <= 0:
            problems.append((f"{where}.model_id", "must be > 0"))
        if len(listing.unlisted_reason) > MAX_ERROR_CHARS:
            problems.append((f"{where}.unlisted_reason", f"must be ≤ {MAX_ERROR_CHARS} chars"))
        unlisted = bool(listing.unlisted_reason)
        if unlisted and not listing.HasField("unlisted_since"):
            problems.append((f"{where}.unlisted_since", "is required with an unlisted_reason"))
        if problems:
            continue
        since = _datetime(listing.unlisted_since) if unlisted else None
        states.append(Listing(listing.model_id, listing.unlisted_reason, since))
    _raise(problems)
    return states


def discovered_model(request: model_store_pb2.CreateDiscoveredModelRequest) -> tuple[str, str, int]:
    """(provider, provider_model_id, context_tokens) of a discovered model; InvalidArgument."""
    problems: list[tuple[str, str]] = []
    if not 0 < len(request.provider) <= 100:
        problems.append(("provider", "must be 1..100 characters"))
    if not 0 < len(request.provider_model_id) <= 255:
        problems.append(("provider_model_id", "must be 1..255 characters"))
    _bounded(request.context_tokens, "context_tokens", 0, 2**31 - 1, problems)
    _raise(problems)
    return request.provider, request.provider_model_id, request.context_tokens


# ----- history -----


def prompt_entries(request: model_store_pb2.RecordPromptsRequest) -> list[PromptEntry]:
    """The history rows of a batch; InvalidArgument naming `records[i].field` for each problem."""
    _batch(len(request.records), "records")
    problems: list[tuple[str, str]] = []
    entries: list[PromptEntry] = []
    for index, record in enumerate(request.records):
        where = f"records[{index}]"
        if not 0 < len(record.record_id) <= 128:
            problems.append((f"{where}.record_id", "must be 1..128 characters"))
        for name in ("user_id", "caller", "requested_model"):
            if len(getattr(record, name)) > 255:
                problems.append((f"{where}.{name}", "must be at most 255 characters"))
        if len(record.status_code) > 32:
            problems.append((f"{where}.status_code", "must be at most 32 characters"))
        for name in ("prompt_text", "response_text", "error_message"):
            if len(getattr(record, name)) > MAX_TEXT_CHARS:
                problems.append((f"{where}.{name}", f"must be at most {MAX_TEXT_CHARS} chars"))
        if record.selected_model_id < 0:
            problems.append((f"{where}.selected_model_id", "must be >= 0 (0 = none)"))
        if not 0 <= record.response_time_seconds < 1_000_000:
            problems.append((f"{where}.response_time_seconds", "must be 0..999999"))
        _bounded(record.attempts, f"{where}.attempts", 0, 10_000, problems)
        _bounded(record.client_key_id, f"{where}.client_key_id", 0, 2**31 - 1, problems)
        _bounded(record.tokens, f"{where}.tokens", 0, 2**62, problems)
        if problems:
            continue
        entries.append(
            PromptEntry(
                record_id=record.record_id,
                user_id=record.user_id,
                caller=record.caller,
                prompt_text=record.prompt_text,
                selected_model_id=record.selected_model_id or None,
                response_text=record.response_text,
                response_time_seconds=record.response_time_seconds,
                success=record.success,
                error_message=record.error_message,
                attempts=record.attempts,
                fallback_used=record.fallback_used,
                requested_model=record.requested_model,
                status_code=record.status_code,
                client_key_id=record.client_key_id or None,
                tokens=record.tokens,
                created_at=_datetime(record.create_time)
                if record.HasField("create_time")
                else None,
            )
        )
    _raise(problems)
    return entries


def history_filter(request: model_store_pb2.ListPromptHistoryRequest) -> HistoryFilter:
    """The filters of a history listing."""
    where = HistoryFilter(
        user_id=request.user_id,
        caller=request.caller,
        success=request.success if request.HasField("success") else None,
        start_time=_datetime(request.start_time) if request.HasField("start_time") else None,
        end_time=_datetime(request.end_time) if request.HasField("end_time") else None,
    )
    if where.start_time and where.end_time and where.start_time >= where.end_time:
        raise errors.InvalidArgument([("start_time", "must be before end_time")])
    return where


def prompt_proto(row: PromptHistory) -> common_pb2.PromptRecord:
    """The proto of a history row."""
    return common_pb2.PromptRecord(
        id=row.id,
        record_id=row.record_id,
        user_id=row.user_id,
        caller=row.caller,
        prompt_text=row.prompt_text,
        selected_model_id=row.selected_model_id or 0,
        response_text=row.response_text or "",
        response_time_seconds=float(row.response_time),
        success=row.success,
        error_message=row.error_message or "",
        attempts=row.attempts,
        fallback_used=row.fallback_used,
        requested_model=row.requested_model,
        status_code=row.status_code,
        create_time=_time(row.created_at),
        client_key_id=row.client_key_id or 0,
        tokens=row.tokens,
    )


def purge_limits(request: model_store_pb2.PurgeHistoryRequest) -> tuple[datetime | None, int]:
    """(older_than, keep_latest) of a purge; at least one must be set."""
    if request.keep_latest < 0:
        raise errors.InvalidArgument([("keep_latest", "must be >= 0 (0 = no count limit)")])
    if not request.HasField("older_than") and request.keep_latest == 0:
        raise errors.InvalidArgument(
            [("older_than", "set `older_than` and/or `keep_latest`; both are empty")]
        )
    older = _datetime(request.older_than) if request.HasField("older_than") else None
    return older, request.keep_latest


# ---- client keys --------------------------------------------------------------------------------

KEY_NAME_MAX_CHARS = 100
KEY_PREFIX_MAX_CHARS = 16
MAX_USAGE_DAYS = 90
MAX_QUOTA_REQUESTS = 1000


def client_key_limits(limits: common_pb2.ClientKeyLimits, field: str = "limits") -> KeyLimits:
    """A key's limits; InvalidArgument naming each negative one."""
    problems: list[tuple[str, str]] = []
    _bounded(limits.requests_per_minute, f"{field}.requests_per_minute", 0, 1_000_000, problems)
    _bounded(limits.requests_per_day, f"{field}.requests_per_day", 0, 1_000_000_000, problems)
    _bounded(limits.tokens_per_day, f"{field}.tokens_per_day", 0, 2**62, problems)
    _raise(problems)
    return KeyLimits(limits.requests_per_minute, limits.requests_per_day, limits.tokens_per_day)


def new_client_key(request: model_store_pb2.AddClientKeyRequest) -> tuple[str, str, str]:
    """(name, prefix, sha256) of a key to store; InvalidArgument naming each problem."""
    problems: list[tuple[str, str]] = []
    if not 0 < len(request.name.strip()) <= KEY_NAME_MAX_CHARS or not request.name.isprintable():
        problems.append(("name", f"must be 1..{KEY_NAME_MAX_CHARS} printable characters"))
    if not 0 < len(request.key_prefix) <= KEY_PREFIX_MAX_CHARS:
        problems.append(("key_prefix", f"must be 1..{KEY_PREFIX_MAX_CHARS} characters"))
    if not _is_sha256(request.key_sha256):
        problems.append(("key_sha256", "must be 64 lowercase hex characters"))
    _raise(problems)
    return request.name.strip(), request.key_prefix, request.key_sha256


def key_sha256(value: str) -> str:
    """A hash to look up; InvalidArgument unless it is one."""
    if not _is_sha256(value):
        raise errors.InvalidArgument([("key_sha256", "must be 64 lowercase hex characters")])
    return value


def _is_sha256(value: str) -> bool:
    return len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def key_id(value: int) -> int:
    """A key id; InvalidArgument unless > 0."""
    if value <= 0:
        raise errors.InvalidArgument([("client_key_id", "must be > 0")])
    return value


def quota_request(request: model_store_pb2.AcquireClientQuotaRequest) -> tuple[int, int]:
    """(key id, requests wanted)."""
    key_id(request.client_key_id)
    if not 0 < request.requests <= MAX_QUOTA_REQUESTS:
        raise errors.InvalidArgument([("requests", f"must be 1..{MAX_QUOTA_REQUESTS}")])
    return request.client_key_id, request.requests


def usage_days(days: int) -> int:
    """Days of usage to read; InvalidArgument beyond 1..90."""
    if not 0 < days <= MAX_USAGE_DAYS:
        raise errors.InvalidArgument([("days", f"must be 1..{MAX_USAGE_DAYS}")])
    return days


def client_key_proto(row: ClientKey) -> common_pb2.ClientKey:
    """The proto of a key row (never its hash)."""
    return common_pb2.ClientKey(
        id=row.id,
        name=row.name,
        key_prefix=row.key_prefix,
        limits=common_pb2.ClientKeyLimits(
            requests_per_minute=row.requests_per_minute,
            requests_per_day=row.requests_per_day,
            tokens_per_day=row.tokens_per_day,
        ),
        create_time=_time(row.created_at),
        revoke_time=_time(row.revoked_at),
    )


def usage_proto(usage: Usage) -> common_pb2.ClientKeyUsage:
    """The proto of one key's day."""
    return common_pb2.ClientKeyUsage(
        client_key_id=usage.client_key_id,
        name=usage.name,
        day=usage.day.isoformat(),
        requests=usage.requests,
        tokens=usage.tokens,
        failures=usage.failures,
    )
