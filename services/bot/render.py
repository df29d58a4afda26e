"""Turns Selector replies and failures into the bot's HTML messages, escaping every value."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aiselector.v1 import selector_pb2
from services.bot.formatting import compose, escape, join_lines
from services.bot.selector_client import (
    PROMPT_MAX_CHARS,
    AdminRefused,
    DeadlinePassed,
    InvalidRequest,
    NothingAvailable,
    PromptRejected,
    RateLimited,
    SelectorFailure,
    SelectorUnreachable,
)
from services.bot.texts import Texts

_MEDALS = {1: "🥇", 2: "🥈", 3: "🥉"}
_NOT_RANKED = "▫️"
_MAX_LISTED_MODELS = 30
# A state's reason is cut to this many characters in /stats (a provider's message can be long).
_MAX_REASON_CHARS = 160


def answer(reply: selector_pb2.ProcessPromptResponse, texts: Texts) -> list[str]:
    """The answer split under the message limit, then model, provider, time, attempts, pin note."""
    footer = texts.answer_footer.format(
        model=escape(reply.selected_model),
        provider=escape(reply.provider),
        seconds=texts.seconds(reply.response_time_seconds),
    )
    if reply.fallback_used and reply.attempts > 1:
        footer += texts.answer_attempts.format(attempts=texts.attempts(reply.attempts))
    if reply.pin_note:
        footer += "\n" + texts.answer_pin_note.format(note=escape(reply.pin_note))
    return compose(reply.response, footer)


def cut_off(text: str, error: SelectorFailure, texts: Texts) -> list[str]:
    """The part of an answer that arrived before its stream failed, then why it is cut off."""
    match error:
        case DeadlinePassed():
            reason = texts.cut_reason_deadline
        case SelectorUnreachable():
            reason = texts.cut_reason_unreachable
        case _:
            reason = texts.cut_reason_stopped
    return compose(text, texts.answer_cut.format(reason=reason))


def ready_models(reply: selector_pb2.GetModelStatsResponse, texts: Texts) -> str:
    """The /start paragraph listing the models that can answer now."""
    names = [
        f"• {escape(m.name)} ({escape(m.provider)})"
        for m in reply.models
        if m.state == selector_pb2.MODEL_STATE_READY
    ]
    if not names:
        return texts.start_no_models
    return texts.start_models.format(models="\n".join(names[:_MAX_LISTED_MODELS]))


def _until(model: selector_pb2.ModelStats, texts: Texts, now: datetime) -> str:
    if not model.HasField("available_at"):
        return ""
    when = model.available_at.ToDatetime(tzinfo=UTC)
    pattern = "%H:%M" if when - now < timedelta(hours=20) else "%d.%m %H:%M"
    return texts.until.format(time=when.strftime(pattern))


def state_label(model: selector_pb2.ModelStats, texts: Texts, now: datetime) -> str:
    """The model's state as a short phrase, with the time it ends when there is one."""
    until = _until(model, texts, now)
    match model.state:
        case selector_pb2.MODEL_STATE_READY:
            return texts.state_ready
        case selector_pb2.MODEL_STATE_COOLING_DOWN:
            return texts.state_cooling_down.format(until=until)
        case selector_pb2.MODEL_STATE_CIRCUIT_OPEN:
            return texts.state_circuit_open.format(until=until)
        case selector_pb2.MODEL_STATE_CIRCUIT_HALF_OPEN:
            return texts.state_half_open
        case selector_pb2.MODEL_STATE_NO_CREDENTIALS:
            return texts.state_no_credentials
        case selector_pb2.MODEL_STATE_OUT_OF_BUDGET:
            return texts.state_out_of_budget.format(until=until)
        case selector_pb2.MODEL_STATE_INACTIVE:
            return texts.state_inactive
        case selector_pb2.MODEL_STATE_UNLISTED:
            return texts.state_unlisted
    return texts.state_unknown


def stats(
    reply: selector_pb2.GetModelStatsResponse, texts: Texts, now: datetime | None = None
) -> list[str]:
    """/stats: models in the Selector's ranking order with the score it ranks by and the state,
    and why a model is not ready when the Selector says."""
    if not reply.models:
        return [texts.stats_empty]
    now = now or datetime.now(UTC)
    lines = [texts.stats_header.format(hours=reply.window_hours)]
    for model in reply.models:
        details = texts.stats_no_data
        if model.total_requests:
            details = texts.stats_details.format(
                success_rate=texts.percent(model.success_rate),
                latency=texts.seconds(model.average_response_time),
                requests=model.total_requests,
            )
        lines.append(
            texts.stats_line.format(
                marker=_MEDALS.get(model.rank, f"{model.rank}." if model.rank else _NOT_RANKED),
                name=escape(model.name),
                provider=escape(model.provider),
                score=texts.decimal(model.reliability_score, 2),
                details=details,
                state=state_label(model, texts, now),
            )
        )
        reason = model.state_reason if model.state != selector_pb2.MODEL_STATE_READY else ""
        if reason:
            if len(reason) > _MAX_REASON_CHARS:
                reason = reason[: _MAX_REASON_CHARS - 1] + "…"
            lines[-1] += "\n" + texts.stats_reason.format(reason=escape(reason))
    return join_lines(lines)


def key_usage(reply: selector_pb2.GetClientKeyUsageResponse, texts: Texts) -> list[str]:
    """/stats for admins: today's requests, tokens and failures per client key."""
    if not reply.usages:
        return [texts.keys_usage_empty]
    lines = [texts.keys_usage_header]
    for usage in reply.usages:
        lines.append(
            texts.keys_usage_line.format(
                name=escape(usage.name),
                key_id=usage.client_key_id,
                requests=usage.requests,
                tokens=usage.tokens,
                failures=usage.failures,
            )
        )
    return join_lines(lines)


def test_results(reply: selector_pb2.TestProvidersResponse, texts: Texts) -> list[str]:
    """/test: how many models work, the fastest one, then one line per model."""
    lines = [texts.test_summary.format(successful=reply.successful, total=reply.total_providers)]
    successes = [r for r in reply.results if r.status == selector_pb2.TEST_STATUS_SUCCESS]
    if successes:
        fastest = min(successes, key=lambda r: r.response_time_seconds)
        lines.append(
            texts.test_fastest.format(
                model=escape(fastest.model), seconds=texts.seconds(fastest.response_time_seconds)
            )
        )
    else:
        lines.append(texts.test_none_working)
    lines.append("")
    for result in reply.results:
        model = escape(result.model)
        if result.status == selector_pb2.TEST_STATUS_SUCCESS:
            line = texts.test_line_success.format(
                model=model, seconds=texts.seconds(result.response_time_seconds)
            )
        elif result.status == selector_pb2.TEST_STATUS_SKIPPED:
            line = texts.test_line_skipped.format(model=model, error=escape(result.error))
        else:
            line = texts.test_line_error.format(model=model, error=escape(result.error))
        lines.append(line)
    return join_lines(lines)


def failure(error: SelectorFailure, texts: Texts, *, prompt_length: int = 0) -> str:
    """The friendly message for a failed Selector call."""
    match error:
        case RateLimited():
            return texts.failure_rate_limited.format(wait=texts.duration(error.retry_after_seconds))
        case NothingAvailable():
            return texts.failure_unavailable.format(wait=texts.duration(error.retry_after_seconds))
        case InvalidRequest() if any(field == "prompt" for field, _ in error.violations):
            return texts.failure_too_long.format(length=prompt_length, limit=PROMPT_MAX_CHARS)
        case InvalidRequest():
            details = "; ".join(f"{field}: {desc}" for field, desc in error.violations)
            return texts.failure_invalid.format(details=escape(details or error.message))
        case PromptRejected():
            return texts.failure_rejected
        case DeadlinePassed():
            return texts.failure_deadline
        case SelectorUnreachable():
            return texts.failure_unreachable
        case AdminRefused():
            return texts.test_admin_api_refused
    return texts.failure_internal


def user_limited(wait_seconds: float, limit: int, texts: Texts) -> str:
    """The per-user limit message."""
    return texts.failure_user_limited.format(limit=limit, wait=texts.duration(wait_seconds))
