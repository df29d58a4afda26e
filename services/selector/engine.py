"""The request path: plan, try models in order within one deadline, react to every outcome."""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from google.protobuf import timestamp_pb2

from aiselector.v1 import common_pb2, selector_pb2
from services.common import errors
from services.selector import metrics
from services.selector.answering import Answered, CallerGone, Committer, Listener, cut_off
from services.selector.bookkeeping import Recorder
from services.selector.policy import (
    Candidate,
    ModelSpec,
    Needs,
    Plan,
    conversation_tokens,
    estimate_tokens,
    plan,
    prompt_room,
)
from services.selector.providers import (
    ChatRequest,
    ChatResult,
    ProviderClient,
    ProviderError,
    Scope,
    output_limit,
)
from services.selector.snapshot import Catalog, Entry
from services.selector.state import Budget, LiveState, Quota
from services.selector.stats import StatsBook
from services.selector.validation import NAME_MAX_CHARS, PromptInput

log = logging.getLogger(__name__)

# An attempt needs at least this much of the deadline to be worth starting, in seconds.
MIN_ATTEMPT_SECONDS = 0.05
# Rounds of (plan, try every eligible model) per request; later rounds only follow short waits.
MAX_ROUNDS = 3
# A wait for a rate-limited model is taken only if this much of the deadline is left after it.
RETRY_WAIT_MARGIN_SECONDS = 1.0
# A probe is not started with less of the call's deadline left than this, in seconds.
MIN_PROBE_SECONDS = 1.0
# Retry delay suggested when nothing says when to come back, in seconds.
DEFAULT_RETRY_SECONDS = 30.0
BLOCKED_STATES = (
    selector_pb2.MODEL_STATE_COOLING_DOWN,
    selector_pb2.MODEL_STATE_CIRCUIT_OPEN,
    selector_pb2.MODEL_STATE_CIRCUIT_HALF_OPEN,
    selector_pb2.MODEL_STATE_OUT_OF_BUDGET,
)
RATE_OUTCOMES = (common_pb2.OUTCOME_RATE_LIMITED, common_pb2.OUTCOME_QUOTA_EXHAUSTED)
# Outcomes that say something about this request rather than the model: when every attempt ended
# so, the client learns why (retrying the same request would most likely fail the same way).
PROMPT_OUTCOMES = (common_pb2.OUTCOME_BAD_REQUEST, common_pb2.OUTCOME_WRONG_FORMAT)


@dataclass
class _Attempted:
    """What one attempt produced."""

    summary: selector_pb2.AttemptSummary
    outcome: int
    result: ChatResult | None = None


@dataclass
class _Trace:
    """Everything one request did, for the reply, the history row and the final error."""

    summaries: list[selector_pb2.AttemptSummary] = field(default_factory=list)
    # Models not to try again in this request: they failed, timed out or rejected the prompt.
    done: set[int] = field(default_factory=set)
    first_planned: int | None = None
    pin_note: str = ""


class Engine:
    """Answers prompts and probes; owns the live state, statistics and the catalog snapshot."""

    def __init__(
        self,
        *,
        providers: ProviderClient,
        live: LiveState,
        stats: StatsBook,
        recorder: Recorder,
        probe_prompt: str,
        probe_max_output_tokens: int = 16,
        probe_concurrency: int = 4,
        max_retry_wait_seconds: float = 5.0,
        window_hours: int = 168,
        first_token_timeout: float = 15.0,
        stream_idle_timeout: float = 10.0,
        rng: random.Random | None = None,
    ) -> None:
        self.providers = providers
        self.live = live
        self.stats = stats
        self.recorder = recorder
        self.catalog = Catalog({}, {}, frozenset())
        self.probe_prompt = probe_prompt
        self.probe_max_output_tokens = probe_max_output_tokens
        self.probe_concurrency = probe_concurrency
        self.max_retry_wait_seconds = max_retry_wait_seconds
        self.window_hours = window_hours
        self.first_token_timeout = first_token_timeout
        self.stream_idle_timeout = stream_idle_timeout
        self.rng = rng or random.Random()

    # ---- planning -------------------------------------------------------------------------

    def _candidates(self, catalog: Catalog, now: float, est_tokens: int) -> list[Candidate]:
        return [
            Candidate(
                spec=e.spec,
                window=self.stats.window(e.spec.model_id, now),
                availability=self.live.availability(
                    e.spec.model_id, e.spec.limits, now, est_tokens + e.spec.max_output_tokens
                ),
                credentials_error=e.credentials_error,
            )
            for e in catalog.entries.values()
        ]

    def plan(
        self,
        needs: Needs,
        now: float,
        rng: random.Random | None = None,
        catalog: Catalog | None = None,
    ) -> Plan:
        """The policy's plan for `needs` over a catalog snapshot (the current one by default)."""
        candidates = self._candidates(catalog or self.catalog, now, needs.prompt_tokens)
        return plan(candidates, needs, now, rng or self.rng)

    # ---- ProcessPrompt, StreamPrompt, ChatCompletions ------------------------------------------

    async def process(
        self,
        prompt: PromptInput,
        *,
        deadline: float,
        request_id: str,
        caller: str,
        client_key_id: int = 0,
    ) -> selector_pb2.ProcessPromptResponse:
        """Answers `prompt` whole before `deadline` (event-loop time) or raises a ServiceError."""
        answered = await self.answer(
            prompt,
            deadline=deadline,
            request_id=request_id,
            caller=caller,
            client_key_id=client_key_id,
        )
        return answered.reply

    async def answer(
        self,
        prompt: PromptInput,
        *,
        deadline: float,
        request_id: str,
        caller: str,
        listener: Listener | None = None,
        client_key_id: int = 0,
    ) -> Answered:
        """Answers `prompt` before `deadline` (event-loop time) or raises a ServiceError.

        With a `listener` the answer streams to it as it arrives (see `answering.Listener`): a
        model that fails before its first text is replaced by the next one, as without one; a
        failure after it raises the cut-off error. A JSON-mode answer is checked whole first, so
        it reaches the listener in one piece. Without a listener models answer whole: nothing
        reaches the caller before the end, so every failure is free to fail over.
        """
        loop = asyncio.get_running_loop()
        started, started_wall = loop.time(), time.time()
        trace = _Trace()
        code, answer, answered = "UNKNOWN", None, None
        try:
            answered, answer = await self._answer(prompt, deadline, request_id, trace, listener)
            code = "OK"
        except errors.ServiceError as error:
            code = error.code.name
            raise
        except (asyncio.CancelledError, CallerGone):
            code = "CANCELLED"
            raise
        finally:
            elapsed = loop.time() - started
            metrics.REQUESTS.labels(code).inc()
            metrics.REQUEST_SECONDS.observe(elapsed)
            self._record_prompt(
                prompt,
                caller,
                request_id,
                started_wall,
                elapsed,
                trace,
                code,
                answered,
                answer,
                client_key_id=client_key_id,
            )
        fallback = answered.spec.model_id != trace.first_planned
        if fallback:
            metrics.FALLBACKS.inc()
        reply = selector_pb2.ProcessPromptResponse(
            prompt=prompt.prompt_text,
            response=answer.text,
            selected_model=answered.spec.name,
            provider=answered.spec.provider,
            response_time_seconds=round(elapsed, 3),
            success=True,
            attempts=len(trace.summaries),
            fallback_used=fallback,
            attempt_details=trace.summaries,
            pin_note=trace.pin_note,
            usage=selector_pb2.TokenUsage(
                prompt_tokens=answer.prompt_tokens, completion_tokens=answer.completion_tokens
            ),
            request_id=request_id,
        )
        return Answered(reply, answer.finish_reason)

    async def _answer(
        self,
        prompt: PromptInput,
        deadline: float,
        request_id: str,
        trace: _Trace,
        listener: Listener | None,
    ) -> tuple[Entry, ChatResult]:
        loop = asyncio.get_running_loop()
        catalog = self.catalog
        preferred: list[int] = []
        for name in prompt.model_names:
            model_id = catalog.by_name.get(name)
            if model_id is None:
                raise errors.NotFound(
                    f"{prompt.names_field}: no model named {errors.echo(name)}; "
                    f"{prompt.names_listed_at} lists the names"
                )
            preferred.append(model_id)
        needs = Needs(
            tags=prompt.tags,
            json_mode=prompt.json_mode,
            prompt_tokens=conversation_tokens(prompt.messages),
            preferred=tuple(preferred),
            only_preferred=prompt.only_named,
        )
        chat = ChatRequest(
            messages=prompt.messages,
            json_mode=prompt.json_mode,
            temperature=prompt.temperature,
            top_p=prompt.top_p,
            stop=prompt.stop,
        )
        # A JSON-mode answer is checked whole before any of it may reach the caller.
        streamed = listener is not None and not prompt.json_mode
        failed: selector_pb2.AttemptSummary | None = None
        current = self.plan(needs, time.time(), catalog=catalog)
        trace.first_planned = current.order[0].model_id if current.order else None
        trace.pin_note = current.pin_note
        for _ in range(MAX_ROUNDS):
            for spec in current.order:
                if spec.model_id in trace.done:
                    continue
                remaining = deadline - loop.time()
                if remaining < MIN_ATTEMPT_SECONDS:
                    raise self._deadline_error(trace)
                entry = catalog.entries[spec.model_id]
                output = _output_tokens(prompt.max_output_tokens, spec.max_output_tokens)
                if not self.live.acquire(
                    spec.model_id, spec.limits, time.time(), needs.prompt_tokens + output
                ):
                    continue
                sink = None
                if listener is not None:
                    if failed is not None:
                        await listener.failover(failed, spec.name, spec.provider)
                    attempts = len(trace.summaries) + 1
                    sink = Committer(listener, spec.name, spec.provider, attempts)
                attempted = await self._attempt(
                    entry,
                    replace(chat, max_output_tokens=output),
                    deadline=deadline,
                    request_id=request_id,
                    source=common_pb2.ATTEMPT_SOURCE_USER,
                    prompt_tokens=needs.prompt_tokens,
                    sink=sink if streamed else None,
                )
                trace.summaries.append(attempted.summary)
                if attempted.result is not None:
                    if sink is not None and not sink.committed:
                        await sink(attempted.result.text)
                    return entry, attempted.result
                if sink is not None and sink.committed:
                    spent = deadline - loop.time() < MIN_ATTEMPT_SECONDS
                    raise cut_off(attempted.summary, sink.text, deadline_spent=spent)
                failed = attempted.summary
                if attempted.outcome not in RATE_OUTCOMES:
                    trace.done.add(spec.model_id)
            current = self.plan(needs, time.time(), catalog=catalog)
            if any(s.model_id not in trace.done for s in current.order):
                continue
            wait = self._short_wait(current, deadline - loop.time())
            if wait is None:
                break
            await asyncio.sleep(wait)
            current = self.plan(needs, time.time(), catalog=catalog)
        if deadline - loop.time() < MIN_ATTEMPT_SECONDS:
            raise self._deadline_error(trace)
        raise self._final_error(catalog, needs, current, trace, time.time())

    def _rate_blocked(self, model_id: int, state: int) -> bool:
        """Whether a model is blocked by a rate limit, a quota or its budget (not by failures)."""
        if state == selector_pb2.MODEL_STATE_OUT_OF_BUDGET:
            return True
        return (
            state == selector_pb2.MODEL_STATE_COOLING_DOWN
            and self.live.snapshot(model_id)["cooldown_outcome"] in RATE_OUTCOMES
        )

    def _short_wait(self, current: Plan, remaining: float) -> float | None:
        """Seconds until a rate-limited model is usable again, if that is short and fits."""
        now = time.time()
        waits = [
            ex.until - now
            for model_id, ex in current.excluded.items()
            if ex.until is not None and self._rate_blocked(model_id, ex.state)
        ]
        wait = max(0.0, min(waits)) if waits else None
        too_long = wait is not None and wait > self.max_retry_wait_seconds
        if wait is None or too_long or wait + RETRY_WAIT_MARGIN_SECONDS > remaining:
            return None
        return wait + 0.01

    def _deadline_error(self, trace: _Trace) -> errors.DeadlineExceeded:
        return errors.DeadlineExceeded(
            f"the request deadline was spent after {len(trace.summaries)} attempt(s)"
            + _tried(trace.summaries)
        )

    def _final_error(
        self, catalog: Catalog, needs: Needs, current: Plan, trace: _Trace, now: float
    ) -> errors.ServiceError:
        """The error that says why nothing answered, and whether and when to try again."""
        attempts = trace.summaries
        if attempts and all(a.outcome in PROMPT_OUTCOMES for a in attempts):
            return errors.InvalidArgument(
                [_prompt_violation(a) for a in attempts],
                reason=common_pb2.ERROR_REASON_PROMPT_REJECTED,
            )
        excluded = current.excluded
        active = [e for e in catalog.entries.values() if e.spec.is_active]
        if not active or all(e.credentials_error for e in active):
            variables = sorted({e.model.api_key_env for e in active if e.model.api_key_env})
            return errors.Unavailable(
                "no provider key is set: set at least one of "
                + (", ".join(variables) or "the provider key variables in catalog.yaml"),
                retry_after_seconds=DEFAULT_RETRY_SECONDS,
                reason=common_pb2.ERROR_REASON_NO_CREDENTIALS,
            )
        usable = [e.spec for e in active if not e.credentials_error]
        if needs.only_preferred:
            usable = [spec for spec in usable if spec.model_id in needs.preferred]
        unsuitable = _unsuitable(usable, needs)
        if unsuitable:
            return errors.InvalidArgument([unsuitable])
        blocked = {i: ex for i, ex in excluded.items() if ex.state in BLOCKED_STATES}
        failed = [a for a in attempts if a.outcome not in RATE_OUTCOMES]
        untils = [ex.until - now for ex in blocked.values() if ex.until is not None]
        retry = max(1.0, min(untils)) if untils else DEFAULT_RETRY_SECONDS
        if (
            blocked
            and not failed
            and all(self._rate_blocked(i, ex.state) for i, ex in blocked.items())
        ):
            return errors.ResourceExhausted(
                "every eligible model is rate limited or out of its free-tier budget"
                + _tried(attempts),
                retry_after_seconds=retry,
            )
        reasons = sorted({ex.reason for ex in excluded.values() if ex.reason})
        return errors.Unavailable(
            "no model can answer now"
            + _tried(attempts)
            + (f"; {'; '.join(reasons[:5])}" if reasons else ""),
            retry_after_seconds=retry,
        )

    # ---- attempts -------------------------------------------------------------------------

    async def _attempt(
        self,
        entry: Entry,
        chat: ChatRequest,
        *,
        deadline: float,
        request_id: str,
        source: int,
        prompt_tokens: int = 0,
        sink: Committer | None = None,
    ) -> _Attempted:
        """Calls one model once, before `deadline` (event-loop time), and reacts to the outcome:
        live state, statistics, records. With a `sink` the answer streams into it.

        What ends an attempt but is not the model's doing is ABANDONED: recorded, counted in the
        budget, not blamed. The provider client tells a deadline that came before the model's
        timeout, a wait for a free local connection, and a stall of the Selector's own loop; a
        caller that goes away is told here. A stream cut off after some text counts the tokens
        sent so far (estimated, `prompt_tokens` for the prompt) unless the provider said.
        """
        spec = entry.spec
        started_wall = time.time()
        started = time.monotonic()
        result: ChatResult | None = None
        retry_after: float | None = None
        scope = Scope.MODEL
        try:
            assert entry.target is not None
            if sink is None:
                result = await self.providers.complete(
                    entry.target, chat, timeout=spec.timeout_s, deadline=deadline
                )
            else:
                result = await self.providers.stream(
                    entry.target,
                    chat,
                    on_text=sink,
                    first_token_timeout=min(spec.timeout_s, self.first_token_timeout),
                    idle_timeout=self.stream_idle_timeout,
                    deadline=deadline,
                )
            outcome, status, message = common_pb2.OUTCOME_SUCCESS, result.http_status, ""
        except ProviderError as error:
            outcome, status, message = error.outcome, error.http_status, error.message
            retry_after, scope = error.retry_after, error.scope
        except (asyncio.CancelledError, CallerGone):
            self._react(
                entry,
                started_wall,
                started,
                request_id,
                source,
                _spent(prompt_tokens, sink),
                common_pb2.OUTCOME_ABANDONED,
                0,
                "abandoned: the caller went away",
                None,
                Scope.MODEL,
            )
            raise
        except Exception:
            log.exception("adapter failed unexpectedly", extra={"model": spec.name})
            outcome, status, message = common_pb2.OUTCOME_TRANSIENT, 0, "unexpected adapter error"
        usage = (
            (result.prompt_tokens, result.completion_tokens)
            if result is not None
            else _spent(prompt_tokens, sink)
        )
        latency_ms = self._react(
            entry,
            started_wall,
            started,
            request_id,
            source,
            usage,
            outcome,
            status,
            message,
            retry_after,
            scope,
        )
        summary = selector_pb2.AttemptSummary(
            model=spec.name,
            provider=spec.provider,
            outcome=outcome,  # type: ignore[arg-type]
            http_status=status,
            error=message,
            response_time_seconds=round(latency_ms / 1000, 3),
        )
        return _Attempted(summary, outcome, result)

    def _react(
        self,
        entry: Entry,
        started_wall: float,
        started: float,
        request_id: str,
        source: int,
        usage: tuple[int, int],
        outcome: int,
        status: int,
        message: str,
        retry_after: float | None,
        scope: Scope,
    ) -> int:
        """Feeds one attempt's outcome to live state, statistics, records, metrics and logs.

        Returns the attempt's latency in milliseconds.
        """
        spec = entry.spec
        latency_ms = int((time.monotonic() - started) * 1000)
        tokens = sum(usage)
        self.live.on_outcome(
            spec.model_id,
            outcome,
            time.time(),
            started=started_wall,
            retry_after=retry_after,
            tokens=tokens,
            message=message,
            http_status=status,
            scope=scope,
        )
        self.stats.add(spec.model_id, outcome, latency_ms, tokens, started_wall)
        attempt = common_pb2.Attempt(
            attempt_id=uuid.uuid4().hex,
            model_id=spec.model_id,
            latency_ms=latency_ms,
            outcome=outcome,  # type: ignore[arg-type]
            http_status=status,
            source=source,  # type: ignore[arg-type]
            request_id=request_id,
            prompt_tokens=usage[0],
            completion_tokens=usage[1],
            error=message[:500],
        )
        attempt.start_time.FromNanoseconds(int(started_wall * 1e9))
        self.recorder.add_attempt(attempt)
        outcome_name = common_pb2.Outcome.Name(outcome)  # type: ignore[arg-type]
        metrics.ATTEMPTS.labels(
            spec.name,
            outcome_name,
            common_pb2.AttemptSource.Name(source),  # type: ignore[arg-type]
        ).inc()
        log.info(
            "attempt",
            extra={
                "model": spec.name,
                "outcome": outcome_name,
                "http_status": status,
                "latency_ms": latency_ms,
            },
        )
        return latency_ms

    def _record_prompt(
        self,
        prompt: PromptInput,
        caller: str,
        request_id: str,
        started_wall: float,
        elapsed: float,
        trace: _Trace,
        code: str,
        answered: Entry | None,
        answer: ChatResult | None,
        *,
        client_key_id: int,
    ) -> None:
        errors_text = "; ".join(f"{a.model}: {a.error}" for a in trace.summaries if a.error)
        record = common_pb2.PromptRecord(
            record_id=uuid.uuid4().hex,
            user_id=prompt.user_id,
            caller=caller,
            client_key_id=client_key_id,
            tokens=answer.prompt_tokens + answer.completion_tokens if answer else 0,
            prompt_text=prompt.prompt_text,
            selected_model_id=answered.spec.model_id if answered else 0,
            response_text=answer.text if answer else "",
            response_time_seconds=round(elapsed, 3),
            success=answer is not None,
            error_message="" if answer else (errors_text or code)[:2000],
            attempts=len(trace.summaries),
            fallback_used=bool(answered and answered.spec.model_id != trace.first_planned),
            requested_model=", ".join(prompt.model_names)[:NAME_MAX_CHARS],
            status_code=code,
        )
        record.create_time.FromNanoseconds(int(started_wall * 1e9))
        self.recorder.add_prompt(record)

    # ---- GetModelStats --------------------------------------------------------------------

    def model_stats(self) -> selector_pb2.GetModelStatsResponse:
        """Every model with the score and state the policy uses now."""
        now = time.time()
        needs = Needs()
        candidates = self._candidates(self.catalog, now, needs.prompt_tokens)
        current = plan(candidates, needs, now, random.Random(0))
        rank = {spec.model_id: i + 1 for i, spec in enumerate(current.order)}
        rows = []
        for candidate in candidates:
            spec, window, availability = candidate.spec, candidate.window, candidate.availability
            budget = self.live.budget(spec.model_id, now)
            account = self.live.account_budget(spec.model_id, now)
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
                budget=_usage(budget, spec.limits),
                tags=sorted(spec.tags),
                rank=rank.get(spec.model_id, 0),
                account=spec.limits.account,
            )
            if account is not None:
                row.account_budget.CopyFrom(_usage(account, spec.limits.account_quota))
            until = excluded.until if excluded else availability.until
            if until:
                row.available_at.CopyFrom(_timestamp(until))
            rows.append(row)
        rows.sort(key=lambda r: (r.rank == 0, r.rank, r.name))
        for row in rows:
            metrics.MODEL_STATE.labels(row.name).set(row.state)
            if row.budget.requests_per_day:
                left = row.budget.requests_per_day - row.budget.requests_today
                metrics.BUDGET_LEFT.labels(row.name).set(max(0, left))
        return selector_pb2.GetModelStatsResponse(
            models=rows, total_models=len(rows), window_hours=self.window_hours
        )

    # ---- TestProviders --------------------------------------------------------------------

    async def probe(
        self, names: Iterable[str], request_id: str, *, deadline: float
    ) -> selector_pb2.TestProvidersResponse:
        """Probes the named (or every active) model; results feed routing like real traffic.

        Every probe ends before `deadline` (event-loop time): one that cannot start in time is a
        skipped row, so the call always returns the rows it has.
        """
        loop = asyncio.get_running_loop()
        catalog = self.catalog
        wanted = list(names)
        unknown = [n for n in wanted if n not in catalog.by_name]
        if unknown:
            raise errors.NotFound(f"model_names: no model named {errors.echo(unknown[0])}")
        entries = (
            [catalog.entries[catalog.by_name[n]] for n in wanted]
            if wanted
            else [e for e in catalog.entries.values() if e.spec.is_active]
        )
        semaphore = asyncio.Semaphore(self.probe_concurrency)

        async def one(entry: Entry) -> selector_pb2.ProviderTestResult:
            spec = entry.spec
            row = selector_pb2.ProviderTestResult(provider=spec.provider, model=spec.name)
            tokens = estimate_tokens(self.probe_prompt) + output_limit(
                self.probe_max_output_tokens, reasoning=entry.model.reasoning
            )
            skip = (
                entry.credentials_error
                or (entry.spec.unlisted and f"not probed: {entry.spec.unlisted}")
                or self._probe_skip_reason(entry, time.time(), tokens)
            )
            if skip:
                row.status, row.error = selector_pb2.TEST_STATUS_SKIPPED, skip
                return row
            async with semaphore:
                remaining = deadline - loop.time()
                if remaining < MIN_PROBE_SECONDS:
                    row.status = selector_pb2.TEST_STATUS_SKIPPED
                    row.error = "not probed: the call's deadline left no time for it"
                    return row
                self.live.acquire_probe(spec.model_id, time.time(), tokens)
                chat = ChatRequest.from_prompt(
                    self.probe_prompt, max_output_tokens=self.probe_max_output_tokens
                )
                attempted = await self._attempt(
                    entry,
                    chat,
                    deadline=deadline,
                    request_id=request_id,
                    source=common_pb2.ATTEMPT_SOURCE_PROBE,
                )
            row.outcome = attempted.outcome  # type: ignore[assignment]
            row.response_time_seconds = attempted.summary.response_time_seconds
            if attempted.result is not None:
                row.status = selector_pb2.TEST_STATUS_SUCCESS
            else:
                row.status, row.error = selector_pb2.TEST_STATUS_ERROR, attempted.summary.error
            return row

        rows = await asyncio.gather(*(one(e) for e in entries))
        order = {selector_pb2.TEST_STATUS_SUCCESS: 0, selector_pb2.TEST_STATUS_ERROR: 1}
        rows.sort(key=lambda r: (order.get(r.status, 2), r.response_time_seconds, r.model))
        return selector_pb2.TestProvidersResponse(
            total_providers=len(rows),
            successful=sum(r.status == selector_pb2.TEST_STATUS_SUCCESS for r in rows),
            failed=sum(r.status == selector_pb2.TEST_STATUS_ERROR for r in rows),
            skipped=sum(r.status == selector_pb2.TEST_STATUS_SKIPPED for r in rows),
            results=rows,
        )

    def _probe_skip_reason(self, entry: Entry, now: float, tokens: int) -> str:
        """Why a probe of about `tokens` tokens must not be sent: it would break a provider's
        wait or eat users' budget (the model's or its account's)."""
        model_id, limits = entry.spec.model_id, entry.spec.limits
        availability = self.live.availability(model_id, limits, now, tokens)
        if self._rate_blocked(model_id, availability.state):
            return f"not probed: {availability.reason}"
        budgets = [(self.live.budget(model_id, now), limits, "")]
        account = self.live.account_budget(model_id, now)
        if account is not None:
            budgets.append((account, limits.account_quota, f"account {limits.account}: "))
        for budget, quota, whose in budgets:
            spent = _nearly_spent(budget, quota, tokens)
            if spent:
                return f"not probed: {whose}{spent} budget nearly spent"
        return ""


def _output_tokens(asked: int | None, limit: int) -> int:
    """Output tokens to ask a model for: the client's limit within the model's (0 = default)."""
    if asked is None:
        return limit
    return min(asked, limit) if limit > 0 else asked


def _spent(prompt_tokens: int, sink: Committer | None) -> tuple[int, int]:
    """(prompt, completion) tokens an attempt that ended without a result is counted as: the
    estimate of what it streamed, nothing when it streamed nothing (as the provider reports)."""
    if sink is None or not sink.committed:
        return (0, 0)
    return (prompt_tokens, estimate_tokens(sink.text))


def _nearly_spent(budget: Budget, quota: Quota, tokens: int) -> str:
    """Which budget a probe of about `tokens` tokens would eat into the last of (its reserve for
    users) or break, or ""."""
    rpd, rpm, tpd = quota.requests_per_day, quota.requests_per_minute, quota.tokens_per_day
    tpm = quota.tokens_per_minute
    if rpd and budget.requests_today >= rpd - max(1, rpd // 10):
        return "daily request"
    if rpm and budget.requests_last_minute >= rpm - 1:
        return "per-minute request"
    if tpm and budget.tokens_last_minute + tokens > tpm:
        return "per-minute token"
    if tpd and budget.tokens_today >= 0.9 * tpd:
        return "daily token"
    return ""


def _usage(budget: Budget, quota: Quota) -> selector_pb2.BudgetUsage:
    return selector_pb2.BudgetUsage(
        requests_last_minute=budget.requests_last_minute,
        requests_per_minute=quota.requests_per_minute,
        requests_today=budget.requests_today,
        requests_per_day=quota.requests_per_day,
        tokens_today=budget.tokens_today,
        tokens_per_day=quota.tokens_per_day,
        tokens_last_minute=budget.tokens_last_minute,
        tokens_per_minute=quota.tokens_per_minute,
    )


def _unsuitable(usable: list[ModelSpec], needs: Needs) -> tuple[str, str] | None:
    """(field, description) when no usable model could ever take this request, else None."""
    fitting = [s for s in usable if needs.tags <= s.tags]
    if not fitting:
        return ("tags", f"no configured model has all of {sorted(needs.tags)}")
    if needs.json_mode:
        fitting = [s for s in fitting if s.supports_json]
        if not fitting:
            return ("response_format.type", "no configured model with these tags does json_object")
    rooms = [room for room in map(prompt_room, fitting) if room is not None]
    if len(rooms) < len(fitting):
        return None
    largest, why = max(rooms)
    if needs.prompt_tokens <= largest:
        return None
    return (
        "prompt",
        f"too long for every configured model: about {needs.prompt_tokens} tokens, at most "
        f"{largest} fit (set by a {why} and the output tokens asked for)",
    )


def _prompt_violation(attempt: selector_pb2.AttemptSummary) -> tuple[str, str]:
    """(field, description) of an attempt that failed for this request's sake."""
    if attempt.outcome == common_pb2.OUTCOME_WRONG_FORMAT:
        return ("response_format.type", f"json_object asked, {attempt.model}: {attempt.error}")
    return ("prompt", f"rejected by {attempt.model}: {attempt.error}")


def _tried(summaries: list[selector_pb2.AttemptSummary]) -> str:
    if not summaries:
        return ""
    return "; tried " + ", ".join(
        f"{a.model} ({common_pb2.Outcome.Name(a.outcome).removeprefix('OUTCOME_').lower()})"
        for a in summaries
    )


def _timestamp(epoch: float) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromNanoseconds(int(epoch * 1e9))
    return ts
