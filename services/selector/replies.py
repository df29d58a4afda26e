"""The protos the Selector sends and records, built from what conduct decided (no logic here)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from google.protobuf import timestamp_pb2

from aiselector.v1 import common_pb2, selector_pb2
from services.selector.conduct import Outcome
from services.selector.policy import Candidate, Plan
from services.selector.providers import ChatResult
from services.selector.state import Budget, KeyUse, Limits, LiveState, Quota
from services.selector.validation import NAME_MAX_CHARS, PromptInput

#: Characters of an attempt's error kept in its history row.
ATTEMPT_ERROR_CHARS = 500
#: Characters of a failed request's errors kept in its history row.
PROMPT_ERROR_CHARS = 2000


def summary(outcome: Outcome) -> selector_pb2.AttemptSummary:
    """One attempt as the reply lists it."""
    return selector_pb2.AttemptSummary(
        model=outcome.spec.name,
        provider=outcome.spec.provider,
        outcome=outcome.outcome,  # type: ignore[arg-type]
        http_status=outcome.http_status,
        error=outcome.message,
        response_time_seconds=round(outcome.latency_ms / 1000, 3),
    )


def attempt_record(outcome: Outcome, request_id: str) -> common_pb2.Attempt:
    """One attempt as ModelStore keeps it."""
    attempt = common_pb2.Attempt(
        attempt_id=uuid.uuid4().hex,
        model_id=outcome.spec.model_id,
        latency_ms=outcome.latency_ms,
        outcome=outcome.outcome,  # type: ignore[arg-type]
        http_status=outcome.http_status,
        source=outcome.source,  # type: ignore[arg-type]
        request_id=request_id,
        prompt_tokens=outcome.prompt_tokens,
        completion_tokens=outcome.completion_tokens,
        error=outcome.message[:ATTEMPT_ERROR_CHARS],
    )
    attempt.start_time.FromNanoseconds(int(outcome.started * 1e9))
    return attempt


def process_reply(
    prompt: PromptInput,
    request_id: str,
    attempts: Sequence[Outcome],
    answer: ChatResult,
    elapsed: float,
    *,
    fallback: bool,
    pin_note: str,
) -> selector_pb2.ProcessPromptResponse:
    """ProcessPrompt's reply for an answered prompt (the last attempt answered)."""
    answered = attempts[-1].spec
    return selector_pb2.ProcessPromptResponse(
        prompt=prompt.prompt_text,
        response=answer.text,
        selected_model=answered.name,
        provider=answered.provider,
        response_time_seconds=round(elapsed, 3),
        success=True,
        attempts=len(attempts),
        fallback_used=fallback,
        attempt_details=[summary(a) for a in attempts],
        pin_note=pin_note,
        usage=selector_pb2.TokenUsage(
            prompt_tokens=answer.prompt_tokens, completion_tokens=answer.completion_tokens
        ),
        request_id=request_id,
    )


def prompt_record(
    prompt: PromptInput,
    *,
    caller: str,
    started: float,
    elapsed: float,
    attempts: Sequence[Outcome],
    code: str,
    answer: ChatResult | None,
    fallback: bool,
    client_key_id: int = 0,
) -> common_pb2.PromptRecord:
    """One request as the history keeps it (`client_key_id` 0: no client key)."""
    errors_text = "; ".join(f"{a.spec.name}: {a.message}" for a in attempts if a.message)
    record = common_pb2.PromptRecord(
        record_id=uuid.uuid4().hex,
        user_id=prompt.user_id,
        caller=caller,
        client_key_id=client_key_id,
        tokens=answer.prompt_tokens + answer.completion_tokens if answer else 0,
        prompt_text=prompt.prompt_text,
        selected_model_id=attempts[-1].spec.model_id if answer and attempts else 0,
        response_text=answer.text if answer else "",
        response_time_seconds=round(elapsed, 3),
        success=answer is not None,
        error_message="" if answer else (errors_text or code)[:PROMPT_ERROR_CHARS],
        attempts=len(attempts),
        fallback_used=fallback,
        requested_model=", ".join(prompt.model_names)[:NAME_MAX_CHARS],
        status_code=code,
    )
    record.create_time.FromNanoseconds(int(started * 1e9))
    return record


def model_stats(
    candidates: Sequence[Candidate], current: Plan, live: LiveState, now: float, window_hours: int
) -> selector_pb2.GetModelStatsResponse:
    """Every model with the score and state the policy uses now, best first."""
    rank = {spec.model_id: i + 1 for i, spec in enumerate(current.order)}
    rows = []
    for candidate in candidates:
        spec, window, availability = candidate.spec, candidate.window, candidate.availability
        budget = live.budget(spec.model_id, now)
        account = live.account_budget(spec.model_id, now)
        excluded = current.excluded.get(spec.model_id)
        row = selector_pb2.ModelStats(
            id=spec.model_id,
            name=spec.name,
            provider=spec.provider,
            reliability_score=round(current.scores.get(spec.model_id, 0.0), 4),
            success_rate=round(window.success_rate, 4),
            average_response_time=round(window.mean_latency_s or 0.0, 3),
            median_response_time=round(window.median_latency_s or 0.0, 3),
            total_requests=window.total,
            successful_requests=window.success_count,
            failed_requests=window.failure_count,
            rate_limited_requests=window.rate_limited_count,
            is_active=spec.is_active,
            state=excluded.state if excluded else availability.state,  # type: ignore[arg-type]
            state_reason=excluded.reason if excluded else availability.reason,
            tags=sorted(spec.tags),
            rank=rank.get(spec.model_id, 0),
            account=spec.limits.account,
        )
        keys = live.key_uses(spec.model_id, spec.limits, now) if spec.limits.account else []
        scale = max(1, len(keys))
        row.budget.CopyFrom(usage(budget, spec.limits, scale))
        if account is not None:
            row.account_budget.CopyFrom(usage(account, spec.limits.account_quota, scale))
        for key in keys:
            if key.key_id:
                row.keys.append(key_usage(key, spec.limits))
        until = excluded.until if excluded else availability.until
        if until:
            row.available_at.CopyFrom(timestamp(until))
        rows.append(row)
    rows.sort(key=lambda r: (r.rank == 0, r.rank, r.name))
    return selector_pb2.GetModelStatsResponse(
        models=rows, total_models=len(rows), window_hours=window_hours
    )


def test_providers_reply(
    rows: list[selector_pb2.ProviderTestResult],
) -> selector_pb2.TestProvidersResponse:
    """TestProviders' reply: successes first (fastest first), then errors, then skipped rows."""
    order = {selector_pb2.TEST_STATUS_SUCCESS: 0, selector_pb2.TEST_STATUS_ERROR: 1}
    rows.sort(key=lambda r: (order.get(r.status, 2), r.response_time_seconds, r.model))
    return selector_pb2.TestProvidersResponse(
        total_providers=len(rows),
        successful=sum(r.status == selector_pb2.TEST_STATUS_SUCCESS for r in rows),
        failed=sum(r.status == selector_pb2.TEST_STATUS_ERROR for r in rows),
        skipped=sum(r.status == selector_pb2.TEST_STATUS_SKIPPED for r in rows),
        results=rows,
    )


def usage(budget: Budget, quota: Quota, keys: int = 1) -> selector_pb2.BudgetUsage:
    """What a budget has used beside what is declared (for `keys` keys, each declared `quota`)."""
    return selector_pb2.BudgetUsage(
        requests_last_minute=budget.requests_last_minute,
        requests_per_minute=quota.requests_per_minute * keys,
        requests_today=budget.requests_today,
        requests_per_day=quota.requests_per_day * keys,
        tokens_today=budget.tokens_today,
        tokens_per_day=quota.tokens_per_day * keys,
        tokens_last_minute=budget.tokens_last_minute,
        tokens_per_minute=quota.tokens_per_minute * keys,
    )


def key_usage(key: KeyUse, limits: Limits) -> selector_pb2.KeyUsage:
    """One provider key of a model as the stats show it: by its id, never the key."""
    row = selector_pb2.KeyUsage(
        key_id=key.key_id,
        account=key.account,
        state=key.state,  # type: ignore[arg-type]
        state_reason=key.reason,
        budget=usage(key.budget, limits),
    )
    if key.until:
        row.available_at.CopyFrom(timestamp(key.until))
    if key.account_budget is not None:
        row.account_budget.CopyFrom(usage(key.account_budget, limits.account_quota))
    return row


def timestamp(epoch: float) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromNanoseconds(int(epoch * 1e9))
    return ts
