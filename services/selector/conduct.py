"""How a request is conducted over the models: plan, the next step, the reaction, the final error.

Pure: no I/O, no sleeping, no asyncio; time comes from an injected clock (epoch seconds). The
engine (`engine.py`) and the routing benchmark (`bench/routing/drive.py`) drive the same code:
one asks `Conduct.next_step()` and performs the step (call a model, wait, give up), then feeds
what happened back as an `Outcome`.

Rules, each defined here once:
- Planning rounds: try the plan in order; what failed (or refused the prompt) is not tried again
  in this request (the skip set); a rate-limited model is skipped but may come back after a wait.
- The wait decision: when nothing left is eligible, wait for the earliest moment a model held back
  by a provider's limit (its Retry-After, a 429 backoff, or its own declared budget) is usable
  again, if that is at most `max_retry_wait_seconds` away, the request has not waited
  QUEUE_SHARE of its deadline yet, and `wait_margin_seconds` (at most QUEUE_SHARE of the
  deadline) are left after it for the attempt. Never during a provider's Retry-After.
- The per-attempt share: an attempt may use the model's timeout, but while another eligible model
  could still answer, it leaves that one room (`fallback_reserve`), so a silent first model
  cannot spend a short deadline alone.
- One quick retry: the best model, when it is the only one the request could try and it failed
  once with a transient error (not a timeout), is tried once more if its circuit still admits it.
- Recovery trials: a half-open circuit is tested by a background probe (`trials_due`), never by a
  user's prompt.
- The final error: why nothing answered, and whether and when to try again.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property

from aiselector.v1 import common_pb2, selector_pb2
from services.common import errors, outcomes
from services.selector.policy import (
    Candidate,
    ModelSpec,
    Needs,
    Plan,
    expected_latency_s,
    plan,
    prompt_room,
)
from services.selector.providers.errors import Scope
from services.selector.state import (
    CIRCUIT_HALF_OPEN,
    CIRCUIT_OPEN,
    Availability,
    LiveState,
    about_key,
)
from services.selector.stats import StatsBook

Clock = Callable[[], float]

#: An attempt needs at least this much of the deadline to be worth starting, in seconds.
MIN_ATTEMPT_SECONDS = 0.05
#: Planning rounds per request at most (a round follows a wait or a changed plan); a safety net,
#: the deadline and QUEUE_SHARE end a request's waits first.
MAX_ROUNDS = 100
#: Longest provider Retry-After (or budget window) worth waiting for, in seconds.
MAX_RETRY_WAIT_SECONDS = 30.0
#: A wait is taken only if this much of the deadline is left after it, in seconds (at most
#: QUEUE_SHARE of the whole deadline): room for the attempt that follows.
RETRY_WAIT_MARGIN_SECONDS = 10.0
#: A request waits for capacity at most this share of its deadline in all (a short queue: in a
#: storm, a prompt that cannot be answered soon is told so with a Retry-After).
QUEUE_SHARE = 1 / 3
#: Seconds a waiting request wakes after its window for every second of its age at the window:
#: of requests waiting for the same window, the newest goes first.
LIFO_STAGGER = 0.03
#: Retry delay suggested when nothing says when to come back, in seconds.
DEFAULT_RETRY_SECONDS = 30.0
#: Room left for a fallback: at least this many seconds …
FALLBACK_MIN_SECONDS = 5.0
#: … or this many times the fallback's expected latency (at most half of what is left).
FALLBACK_LATENCY_FACTOR = 3.0
#: Latency assumed for a fallback with no latency data, in seconds.
UNKNOWN_LATENCY_SECONDS = 4.0
#: How often the background loop looks for circuits whose trial is due, in seconds.
TRIAL_INTERVAL_SECONDS = 1.0

USER = common_pb2.ATTEMPT_SOURCE_USER
PROBE = common_pb2.ATTEMPT_SOURCE_PROBE
BLOCKED_STATES = (
    selector_pb2.MODEL_STATE_COOLING_DOWN,
    selector_pb2.MODEL_STATE_CIRCUIT_OPEN,
    selector_pb2.MODEL_STATE_CIRCUIT_HALF_OPEN,
    selector_pb2.MODEL_STATE_OUT_OF_BUDGET,
)


@dataclass(frozen=True)
class Seat:
    """A catalog model as conduct sees it: its spec, why it has no key ("" = it has one), and the
    variable its key is read from (for the error when no key is set at all)."""

    spec: ModelSpec
    credentials_error: str = ""
    key_env: str = ""


@dataclass(frozen=True)
class Outcome:
    """How one attempt ended: what live state, statistics, history and the reply learn from it.

    Times are the conductor's clock (epoch seconds): `started` when the attempt was admitted,
    `ended` when its outcome was known.
    """

    spec: ModelSpec
    outcome: int
    started: float
    ended: float
    http_status: int = 0
    message: str = ""
    retry_after: float | None = None
    scope: Scope = Scope.MODEL
    prompt_tokens: int = 0
    completion_tokens: int = 0
    source: int = USER
    #: The provider key the attempt was sent with (its position in `Limits.keys`).
    key: int = 0

    @property
    def latency_ms(self) -> int:
        return max(0, int((self.ended - self.started) * 1000))

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def succeeded(self) -> bool:
        return self.outcome == outcomes.SUCCESS


@dataclass(frozen=True)
class Try:
    """Call `spec` now with provider key `key`, asking for `output_tokens`, for at most
    `seconds` (its share)."""

    spec: ModelSpec
    seconds: float
    output_tokens: int
    key: int = 0

    @property
    def cut_short(self) -> bool:
        """Whether the share is shorter than the model's own timeout (ending it is not the
        model's fault)."""
        return self.seconds < self.spec.timeout_s


@dataclass(frozen=True)
class Wait:
    """Nothing is eligible now; plan again after `seconds`."""

    seconds: float


@dataclass(frozen=True)
class GiveUp:
    """Nothing can answer within the deadline: end the request with `error`."""

    error: errors.ServiceError


Step = Try | Wait | GiveUp


def output_tokens(asked: int | None, limit: int) -> int:
    """Output tokens to ask a model for: the client's limit within the model's (0 = default)."""
    if asked is None:
        return limit
    return min(asked, limit) if limit > 0 else asked


class Conductor:
    """The rules shared by every request: planning over live state and statistics, learning from
    outcomes, recovery trials. One per Selector (the benchmark: one per simulated run)."""

    def __init__(
        self,
        live: LiveState,
        stats: StatsBook,
        *,
        clock: Clock,
        rng: random.Random | None = None,
        max_retry_wait_seconds: float = MAX_RETRY_WAIT_SECONDS,
        wait_margin_seconds: float = RETRY_WAIT_MARGIN_SECONDS,
        trials_by_probe: bool = True,
        fallback_share: bool = True,
        quick_retry: bool = True,
    ) -> None:
        self.live = live
        self.stats = stats
        self.clock = clock
        self.rng = rng or random.Random()
        self.max_retry_wait_seconds = max_retry_wait_seconds
        self.wait_margin_seconds = wait_margin_seconds
        self.trials_by_probe = trials_by_probe
        self.fallback_share = fallback_share
        self.quick_retry = quick_retry

    # ---- planning -------------------------------------------------------------------------

    def availability(self, spec: ModelSpec, now: float, est_tokens: int) -> Availability:
        """The model's availability to a user's request: with recovery by probe, a half-open
        circuit waits for its probe instead of taking a user's prompt as its trial."""
        found = self.live.availability(spec.model_id, spec.limits, now, est_tokens)
        if self.trials_by_probe and found.state == CIRCUIT_HALF_OPEN:
            return replace(
                found,
                state=CIRCUIT_OPEN,
                reason=found.reason.replace("next request is a trial", "a probe tests it"),
                until=now + TRIAL_INTERVAL_SECONDS,
            )
        return found

    def candidates(
        self, seats: Mapping[int, Seat], now: float, prompt_tokens: int
    ) -> list[Candidate]:
        """Every seat as the policy sees it now."""
        return [
            Candidate(
                spec=seat.spec,
                window=self.stats.window(seat.spec.model_id, now),
                availability=self.availability(
                    seat.spec, now, prompt_tokens + seat.spec.max_output_tokens
                ),
                credentials_error=seat.credentials_error,
            )
            for seat in seats.values()
        ]

    def plan(
        self,
        seats: Mapping[int, Seat],
        needs: Needs,
        now: float | None = None,
        rng: random.Random | None = None,
    ) -> Plan:
        """The policy's plan for `needs` over `seats` now."""
        now = self.clock() if now is None else now
        return plan(self.candidates(seats, now, needs.prompt_tokens), needs, now, rng or self.rng)

    def begin(
        self,
        seats: Mapping[int, Seat],
        needs: Needs,
        *,
        deadline: float,
        asked_output: int | None = None,
    ) -> Conduct:
        """Conduct for one request that must end by `deadline` (the clock's time)."""
        return Conduct(self, seats, needs, deadline, asked_output)

    # ---- learning -------------------------------------------------------------------------

    def learn(self, outcome: Outcome) -> None:
        """Feeds one attempt's outcome to the live state and the statistics."""
        spec = outcome.spec
        self.live.on_outcome(
            spec.model_id,
            outcome.outcome,
            outcome.ended,
            started=outcome.started,
            retry_after=outcome.retry_after,
            tokens=outcome.tokens,
            message=outcome.message,
            http_status=outcome.http_status,
            scope=outcome.scope,
            key=outcome.key,
        )
        self.stats.add(
            spec.model_id, outcome.outcome, outcome.latency_ms, outcome.tokens, outcome.started
        )

    # ---- recovery trials ------------------------------------------------------------------

    def trials_due(self, seats: Mapping[int, Seat], est_tokens: int) -> list[ModelSpec]:
        """Models whose half-open circuit needs its trial now; each one's trial slot is taken
        (and counted in its budget), so the caller must send it a probe and feed the outcome."""
        if not self.trials_by_probe:
            return []
        now = self.clock()
        due = []
        for seat in seats.values():
            spec = seat.spec
            if seat.credentials_error or not spec.is_active or spec.unlisted:
                continue
            state = self.live.availability(spec.model_id, spec.limits, now, est_tokens).state
            if state == CIRCUIT_HALF_OPEN and self.live.acquire(
                spec.model_id, spec.limits, now, est_tokens
            ):
                due.append(spec)
        return due

    # ---- what holds a model back ------------------------------------------------------------

    def rate_blocked(self, model_id: int, state: int) -> bool:
        """Whether a model in `state` is held back by a provider's limit or its own budget
        (which passes by waiting), not by its failures."""
        return self.live.rate_blocked(model_id, state)


@dataclass
class _Round:
    order: list[ModelSpec]
    index: int = 0


@dataclass
class Conduct:
    """One request's way through the models: ask `next_step`, do it, `record` what happened."""

    conductor: Conductor
    seats: Mapping[int, Seat]
    needs: Needs
    deadline: float
    asked_output: int | None = None
    #: Outcomes of this request's attempts, in order.
    outcomes: list[Outcome] = field(default_factory=list)
    #: Models not to try again in this request: they failed, timed out or refused the prompt.
    done: set[int] = field(default_factory=set)
    retried: set[int] = field(default_factory=set)
    rounds: int = 0
    first_planned: int | None = None
    pin_note: str = ""
    #: Seconds this request has waited for capacity so far.
    waited: float = 0.0

    def __post_init__(self) -> None:
        self.began = self.conductor.clock()
        first = self.conductor.plan(self.seats, self.needs)
        self.first_planned = first.order[0].model_id if first.order else None
        self.pin_note = first.pin_note
        self._plan = first
        self._round = _Round(list(first.order))
        self._retry: list[ModelSpec] = []

    @cached_property
    def _clock(self) -> Clock:
        return self.conductor.clock

    def remaining(self) -> float:
        return self.deadline - self._clock()

    def next_step(self) -> Step:
        """What to do now: call a model, wait, or give up."""
        live = self.conductor.live
        while True:
            while self._round.index < len(self._round.order):
                spec = self._round.order[self._round.index]
                self._round.index += 1
                if spec.model_id in self.done:
                    continue
                remaining = self.remaining()
                if remaining < MIN_ATTEMPT_SECONDS:
                    return GiveUp(self.deadline_error())
                output = output_tokens(self.asked_output, spec.max_output_tokens)
                lease = live.acquire(
                    spec.model_id,
                    spec.limits,
                    self._clock(),
                    self.needs.prompt_tokens + output,
                    trial=not self.conductor.trials_by_probe,
                )
                if lease is None:
                    continue
                return Try(spec, self._share(spec, remaining), output, lease.key)
            step = self._next_round()
            if step is not None:
                return step

    def _next_round(self) -> Step | None:
        """Plans again once the current order is spent; a step when there is nothing to try."""
        if self.remaining() < MIN_ATTEMPT_SECONDS:
            return GiveUp(self.deadline_error())
        if self._retry:
            spec = self._retry.pop(0)
            self._round = _Round([spec])
            self.done.discard(spec.model_id)
            self.retried.add(spec.model_id)
            return None
        self.rounds += 1
        current = self.conductor.plan(self.seats, self.needs)
        self._plan = current
        fresh = [s for s in current.order if s.model_id not in self.done]
        if fresh and self.rounds < MAX_ROUNDS:
            self._round = _Round(fresh)
            return None
        wait = self._wait(current) if self.rounds < MAX_ROUNDS else None
        if wait is not None:
            self._round = _Round([])
            return Wait(wait)
        if self.conductor.quick_retry and self.rounds < MAX_ROUNDS:
            retry = self._quick_retries(current)
            if retry:
                self._retry = retry
                return None
        return GiveUp(self.final_error())

    def _quick_retries(self, current: Plan) -> list[ModelSpec]:
        """The best model, when it was the only one this request could try and it failed once
        with a transient error (not a timeout) while its circuit still admits requests: it earns
        one more try. With any other model to fall back to, the fallback is the better chance."""
        tried = {o.spec.model_id for o in self.outcomes}
        if len(tried) != 1 or self.first_planned not in tried or self.retried:
            return []
        last = self.outcomes[-1]
        eligible = {s.model_id for s in current.order}
        if last.outcome != outcomes.TRANSIENT or last.spec.model_id not in eligible:
            return []
        return [last.spec]

    def _wait(self, current: Plan) -> float | None:
        """Seconds until a model held back by a provider's limit or its budget is usable again,
        when that is short enough and fits the deadline."""
        now = self._clock()
        waits = [
            ex.until - now
            for model_id, ex in current.excluded.items()
            if ex.until is not None and self.conductor.rate_blocked(model_id, ex.state)
        ]
        if not waits:
            return None
        wait = max(0.0, min(waits))
        # Newest first (adaptive LIFO): a request wakes later the older it will be at the window,
        # so of the requests waiting for one window the newest goes first, and in a storm the
        # capacity that frees goes to the prompts that still have time to spare.
        wait += 0.01 + LIFO_STAGGER * (now + wait - self.began)
        budget = (self.deadline - self.began) * QUEUE_SHARE
        margin = min(self.conductor.wait_margin_seconds, budget)
        if wait > self.conductor.max_retry_wait_seconds or self.waited + wait > budget:
            return None
        if wait + margin > self.remaining():
            return None
        self.waited += wait
        return wait

    def _share(self, spec: ModelSpec, remaining: float) -> float:
        """The time this attempt may take: the model's timeout within what is left, less the
        room the best other eligible model would need to answer after it."""
        seconds = min(spec.timeout_s, remaining)
        if not self.conductor.fallback_share:
            return seconds
        fallbacks = [
            s
            for s in self._round.order[self._round.index :]
            if s.model_id not in self.done and s.model_id != spec.model_id
        ]
        if not fallbacks:
            return seconds
        now = self._clock()
        latencies = [
            expected_latency_s(self.conductor.stats.window(s.model_id, now)) for s in fallbacks[:3]
        ]
        quickest = min(UNKNOWN_LATENCY_SECONDS if x is None else x for x in latencies)
        reserve = max(FALLBACK_MIN_SECONDS, FALLBACK_LATENCY_FACTOR * quickest)
        reserve = min(reserve, remaining / 2)
        return max(MIN_ATTEMPT_SECONDS, min(seconds, remaining - reserve))

    def record(self, outcome: Outcome) -> None:
        """Learns from one attempt of this request."""
        self.conductor.learn(outcome)
        self.outcomes.append(outcome)
        # What speaks of the key (a rate limit, a quota, a rejected key) leaves the model's other
        # keys to try, next (once per key at most): live state gates the key itself.
        spec = outcome.spec
        if outcome.succeeded:
            return
        if not about_key(outcome.outcome, outcome.http_status):
            self.done.add(spec.model_id)
        elif sum(o.spec.model_id == spec.model_id for o in self.outcomes) < len(spec.limits.keys):
            self._round.order.insert(self._round.index, spec)

    # ---- the final error ----------------------------------------------------------------------

    def deadline_error(self) -> errors.DeadlineExceeded:
        return errors.DeadlineExceeded(
            f"the request deadline was spent after {len(self.outcomes)} attempt(s)"
            + _tried(self.outcomes)
        )

    def final_error(self) -> errors.ServiceError:
        """The error that says why nothing answered, and whether and when to try again."""
        if self.remaining() < MIN_ATTEMPT_SECONDS:
            return self.deadline_error()
        attempts = self.outcomes
        if attempts and all(a.outcome in outcomes.PROMPT_OUTCOMES for a in attempts):
            return errors.InvalidArgument(
                [_prompt_violation(a) for a in attempts],
                reason=common_pb2.ERROR_REASON_PROMPT_REJECTED,
            )
        needs, now = self.needs, self._clock()
        active = [s for s in self.seats.values() if s.spec.is_active]
        if not active or all(s.credentials_error for s in active):
            variables = sorted({s.key_env for s in active if s.key_env})
            return errors.Unavailable(
                "no provider key is set: set at least one of "
                + (", ".join(variables) or "the provider key variables in catalog.yaml"),
                retry_after_seconds=DEFAULT_RETRY_SECONDS,
                reason=common_pb2.ERROR_REASON_NO_CREDENTIALS,
            )
        usable = [s.spec for s in active if not s.credentials_error]
        if needs.only_preferred:
            usable = [spec for spec in usable if spec.model_id in needs.preferred]
        unsuitable = unsuitable_for(usable, needs)
        if unsuitable:
            return errors.InvalidArgument([unsuitable])
        excluded = self._plan.excluded
        blocked = {i: ex for i, ex in excluded.items() if ex.state in BLOCKED_STATES}
        failed = [a for a in attempts if a.outcome not in outcomes.RATE_OUTCOMES]
        untils = [ex.until - now for ex in blocked.values() if ex.until is not None]
        retry = max(1.0, min(untils)) if untils else DEFAULT_RETRY_SECONDS
        if (
            blocked
            and not failed
            and all(self.conductor.rate_blocked(i, ex.state) for i, ex in blocked.items())
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


def unsuitable_for(usable: list[ModelSpec], needs: Needs) -> tuple[str, str] | None:
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


def _prompt_violation(attempt: Outcome) -> tuple[str, str]:
    """(field, description) of an attempt that failed for this request's sake."""
    if attempt.outcome == outcomes.WRONG_FORMAT:
        return (
            "response_format.type",
            f"json_object asked, {attempt.spec.name}: {attempt.message}",
        )
    return ("prompt", f"rejected by {attempt.spec.name}: {attempt.message}")


def _tried(attempts: list[Outcome]) -> str:
    if not attempts:
        return ""
    return "; tried " + ", ".join(f"{a.spec.name} ({outcomes.name(a.outcome)})" for a in attempts)
