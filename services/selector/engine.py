"""The request path's wiring: conduct decides, this calls the providers and keeps the books.

`conduct.py` says what to do next (call a model for how long, wait, give up) and learns from each
outcome; `replies.py` builds the protos. Here: the provider calls, their outcomes, the records for
ModelStore, metrics and logs, and the background probes that test open circuits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import replace

from aiselector.v1 import common_pb2, selector_pb2
from services.common import errors, outcomes
from services.selector import metrics, replies
from services.selector.answering import Answered, CallerGone, Committer, Listener, cut_off
from services.selector.bookkeeping import Recorder
from services.selector.conduct import (
    MAX_RETRY_WAIT_SECONDS,
    PROBE,
    TRIAL_INTERVAL_SECONDS,
    USER,
    Conduct,
    Conductor,
    GiveUp,
    Outcome,
    Wait,
)
from services.selector.policy import Needs, Plan, conversation_tokens, estimate_tokens
from services.selector.providers import (
    ChatRequest,
    ChatResult,
    ProviderClient,
    ProviderError,
    output_limit,
)
from services.selector.shared import SharedState
from services.selector.snapshot import Catalog, Entry
from services.selector.state import Budget, LiveState, Quota
from services.selector.stats import StatsBook
from services.selector.validation import PromptInput

log = logging.getLogger(__name__)

# A probe is not started with less of the call's deadline left than this, in seconds.
MIN_PROBE_SECONDS = 1.0


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
        max_retry_wait_seconds: float = MAX_RETRY_WAIT_SECONDS,
        window_hours: int = 168,
        first_token_timeout: float = 15.0,
        stream_idle_timeout: float = 10.0,
        rng: random.Random | None = None,
        trials_by_probe: bool = True,
    ) -> None:
        self.providers = providers
        self.live = live
        # The shared state of replicas (ADR 0016); None: this replica alone.
        self.shared: SharedState | None = None
        self.stats = stats
        self.recorder = recorder
        self.catalog = Catalog({}, {}, frozenset())
        self.probe_prompt = probe_prompt
        self.probe_max_output_tokens = probe_max_output_tokens
        self.probe_concurrency = probe_concurrency
        self.window_hours = window_hours
        self.first_token_timeout = first_token_timeout
        self.stream_idle_timeout = stream_idle_timeout
        self.rng = rng or random.Random()
        self.conductor = Conductor(
            live,
            stats,
            clock=time.time,
            rng=self.rng,
            max_retry_wait_seconds=max_retry_wait_seconds,
            trials_by_probe=trials_by_probe,
        )

    def plan(
        self,
        needs: Needs,
        now: float,
        rng: random.Random | None = None,
        catalog: Catalog | None = None,
    ) -> Plan:
        """The policy's plan for `needs` over a catalog snapshot (the current one by default)."""
        return self.conductor.plan((catalog or self.catalog).seats, needs, now, rng)

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
        conduct: Conduct | None = None
        code, answer = "UNKNOWN", None
        try:
            if self.shared is not None:
                await self.shared.settled()
            conduct = self._begin(prompt, deadline)
            answer = await self._answer(prompt, conduct, deadline, request_id, listener)
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
            attempts = conduct.outcomes if conduct is not None else []
            fallback = bool(
                answer is not None
                and conduct is not None
                and attempts[-1].spec.model_id != conduct.first_planned
            )
            self.recorder.add_prompt(
                replies.prompt_record(
                    prompt,
                    caller=caller,
                    started=started_wall,
                    elapsed=elapsed,
                    attempts=attempts,
                    code=code,
                    answer=answer,
                    fallback=fallback,
                    client_key_id=client_key_id,
                )
            )
        if fallback:
            metrics.FALLBACKS.inc()
        reply = replies.process_reply(
            prompt,
            request_id,
            conduct.outcomes,
            answer,
            elapsed,
            fallback=fallback,
            pin_note=conduct.pin_note,
        )
        return Answered(reply, answer.finish_reason)

    def _begin(self, prompt: PromptInput, deadline: float) -> Conduct:
        """Conduct for `prompt` over the current catalog; NotFound for an unknown model name."""
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
        left = deadline - asyncio.get_running_loop().time()
        return self.conductor.begin(
            catalog.seats,
            needs,
            deadline=time.time() + left,
            asked_output=prompt.max_output_tokens,
        )

    async def _answer(
        self,
        prompt: PromptInput,
        conduct: Conduct,
        deadline: float,
        request_id: str,
        listener: Listener | None,
    ) -> ChatResult:
        loop = asyncio.get_running_loop()
        catalog = self.catalog
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
        while True:
            step = conduct.next_step()
            if isinstance(step, GiveUp):
                raise step.error
            if isinstance(step, Wait):
                await asyncio.sleep(step.seconds)
                continue
            spec = step.spec
            sink = None
            if listener is not None:
                if failed is not None:
                    await listener.failover(failed, spec.name, spec.provider)
                sink = Committer(listener, spec.name, spec.provider, len(conduct.outcomes) + 1)
            outcome, result = await self._attempt(
                catalog.entries[spec.model_id],
                replace(chat, max_output_tokens=step.output_tokens),
                # A share shorter than the model's timeout ends the attempt (not blamed); else
                # the model's own timeout runs from when a connection is ours.
                deadline=min(deadline, loop.time() + step.seconds) if step.cut_short else deadline,
                request_id=request_id,
                source=USER,
                learn=conduct.record,
                prompt_tokens=conduct.needs.prompt_tokens,
                sink=sink if streamed else None,
                key=step.key,
            )
            if result is not None:
                if sink is not None and not sink.committed:
                    await sink(result.text)
                return result
            summary = replies.summary(outcome)
            if sink is not None and sink.committed:
                spent = deadline - loop.time() < 0.05
                raise cut_off(summary, sink.text, deadline_spent=spent)
            failed = summary

    # ---- attempts -------------------------------------------------------------------------

    async def _attempt(
        self,
        entry: Entry,
        chat: ChatRequest,
        *,
        deadline: float,
        request_id: str,
        source: int,
        learn: Callable[[Outcome], None],
        prompt_tokens: int = 0,
        sink: Committer | None = None,
        key: int = 0,
    ) -> tuple[Outcome, ChatResult | None]:
        """Calls one model once with provider key `key`, before `deadline` (event-loop time), and
        hands the outcome to
        `learn` (conduct), the records, metrics and logs. With a `sink` the answer streams into it.

        What ends an attempt but is not the model's doing is ABANDONED: recorded, counted in the
        budget, not blamed. The provider client tells a deadline that came before the model's
        timeout (the request's, or the attempt's share of it), a wait for a free local
        connection, and a stall of the Selector's own loop; a caller that goes away is told here.
        A stream cut off after some text counts the tokens sent so far (estimated,
        `prompt_tokens` for the prompt) unless the provider said.
        """
        spec = entry.spec
        started = time.time()
        result: ChatResult | None = None

        def ended(outcome: int, **fields: object) -> Outcome:
            usage = (
                (result.prompt_tokens, result.completion_tokens)
                if result is not None
                else _spent(prompt_tokens, sink)
            )
            return Outcome(
                spec,
                outcome,
                started,
                time.time(),
                prompt_tokens=usage[0],
                completion_tokens=usage[1],
                source=source,
                key=key,
                **fields,  # type: ignore[arg-type]
            )

        try:
            target = entry.target_for(key)
            if sink is None:
                result = await self.providers.complete(
                    target, chat, timeout=spec.timeout_s, deadline=deadline
                )
            else:
                result = await self.providers.stream(
                    target,
                    chat,
                    on_text=sink,
                    first_token_timeout=min(spec.timeout_s, self.first_token_timeout),
                    idle_timeout=self.stream_idle_timeout,
                    deadline=deadline,
                )
            outcome = ended(outcomes.SUCCESS, http_status=result.http_status)
        except ProviderError as error:
            outcome = ended(
                error.outcome,
                http_status=error.http_status,
                message=error.message,
                retry_after=error.retry_after,
                scope=error.scope,
            )
        except (asyncio.CancelledError, CallerGone):
            self._settle(
                ended(outcomes.ABANDONED, message="abandoned: the caller went away"),
                request_id,
                learn,
            )
            raise
        except Exception:
            log.exception("adapter failed unexpectedly", extra={"model": spec.name})
            outcome = ended(outcomes.TRANSIENT, message="unexpected adapter error")
        self._settle(outcome, request_id, learn)
        return outcome, result

    def _settle(self, outcome: Outcome, request_id: str, learn: Callable[[Outcome], None]) -> None:
        """Feeds one attempt's outcome to conduct, the records, metrics and logs (which name the
        key by its id, never the key)."""
        learn(outcome)
        self.recorder.add_attempt(replies.attempt_record(outcome, request_id))
        outcome_name = common_pb2.Outcome.Name(outcome.outcome)  # type: ignore[arg-type]
        metrics.ATTEMPTS.labels(
            outcome.spec.name,
            outcome_name,
            common_pb2.AttemptSource.Name(outcome.source),  # type: ignore[arg-type]
        ).inc()
        log.info(
            "attempt",
            extra={
                "model": outcome.spec.name,
                "outcome": outcome_name,
                "http_status": outcome.http_status,
                "latency_ms": outcome.latency_ms,
                "key": outcome.spec.limits.key_id(outcome.key),
            },
        )

    # ---- recovery trials ------------------------------------------------------------------

    async def recovery_trials(self, interval: float = TRIAL_INTERVAL_SECONDS) -> None:
        """Forever: every `interval`, probes each model whose half-open circuit awaits its
        trial, so that no user's prompt is the trial of a model that may still be down."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.trial_once()
            except Exception:
                log.exception("recovery trials failed; trying again")

    async def trial_once(self) -> int:
        """Probes every model whose trial is due now; returns how many were probed."""
        catalog = self.catalog
        tokens = estimate_tokens(self.probe_prompt) + self.probe_max_output_tokens
        due = self.conductor.trials_due(catalog.seats, tokens)
        if self.shared is not None and due:
            # One replica makes each trial; the others keep the circuit as it is ("a trial is in
            # flight") until its outcome reaches them.
            claims = await asyncio.gather(
                *(self.shared.claim_trial(s.model_id, s.timeout_s + 1.0) for s in due)
            )
            due = [s for s, claimed in zip(due, claims, strict=True) if claimed]
        await asyncio.gather(*(self._trial(catalog.entries[s.model_id]) for s in due))
        return len(due)

    async def _trial(self, entry: Entry) -> None:
        key = self.live.trial_key(entry.spec.model_id)
        loop = asyncio.get_running_loop()
        chat = ChatRequest.from_prompt(
            self.probe_prompt, max_output_tokens=self.probe_max_output_tokens
        )
        with contextlib.suppress(CallerGone):
            await self._attempt(
                entry,
                chat,
                deadline=loop.time() + entry.spec.timeout_s,
                request_id="recovery-trial",
                source=PROBE,
                learn=self.conductor.learn,
                key=key,
            )

    # ---- GetModelStats --------------------------------------------------------------------

    def model_stats(self) -> selector_pb2.GetModelStatsResponse:
        """Every model with the score and state the policy uses now."""
        now = time.time()
        needs = Needs()
        candidates = self.conductor.candidates(self.catalog.seats, now, needs.prompt_tokens)
        current = self.conductor.plan(self.catalog.seats, needs, now, random.Random(0))
        reply = replies.model_stats(candidates, current, self.live, now, self.window_hours)
        for row in reply.models:
            metrics.MODEL_STATE.labels(row.name).set(row.state)
            if row.budget.requests_per_day:
                left = row.budget.requests_per_day - row.budget.requests_today
                metrics.BUDGET_LEFT.labels(row.name).set(max(0, left))
        return reply

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
                key = self.live.acquire_probe(spec.model_id, time.time(), tokens)
                chat = ChatRequest.from_prompt(
                    self.probe_prompt, max_output_tokens=self.probe_max_output_tokens
                )
                outcome, result = await self._attempt(
                    entry,
                    chat,
                    deadline=deadline,
                    request_id=request_id,
                    source=PROBE,
                    learn=self.conductor.learn,
                    key=key,
                )
            row.outcome = outcome.outcome  # type: ignore[assignment]
            row.response_time_seconds = round(outcome.latency_ms / 1000, 3)
            if result is not None:
                row.status = selector_pb2.TEST_STATUS_SUCCESS
            else:
                row.status, row.error = selector_pb2.TEST_STATUS_ERROR, outcome.message
            return row

        rows = await asyncio.gather(*(one(e) for e in entries))
        return replies.test_providers_reply(list(rows))

    def _probe_skip_reason(self, entry: Entry, now: float, tokens: int) -> str:
        """Why a probe of about `tokens` tokens must not be sent: it would break a provider's
        wait or eat users' budget (the model's or its account's)."""
        model_id, limits = entry.spec.model_id, entry.spec.limits
        availability = self.live.availability(model_id, limits, now, tokens)
        if self.live.rate_blocked(model_id, availability.state):
            return f"not probed: {availability.reason}"
        key = availability.key
        budgets = [(self.live.budget(model_id, now, key), limits, "")]
        account = self.live.account_budget(model_id, now, key)
        if account is not None:
            whose = f"account {limits.key_account(key)}: "
            budgets.append((account, limits.account_quota, whose))
        for budget, quota, whose in budgets:
            spent = _nearly_spent(budget, quota, tokens)
            if spent:
                return f"not probed: {whose}{spent} budget nearly spent"
        return ""


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
