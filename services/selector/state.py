"""Live per-model state: circuit breaker, cooldowns and free-tier budget counters (pure, no I/O)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from aiselector.v1 import common_pb2, selector_pb2

DAY = 86400.0

READY = selector_pb2.MODEL_STATE_READY
COOLING_DOWN = selector_pb2.MODEL_STATE_COOLING_DOWN
CIRCUIT_OPEN = selector_pb2.MODEL_STATE_CIRCUIT_OPEN
CIRCUIT_HALF_OPEN = selector_pb2.MODEL_STATE_CIRCUIT_HALF_OPEN
OUT_OF_BUDGET = selector_pb2.MODEL_STATE_OUT_OF_BUDGET

_FAILURES = frozenset(
    {common_pb2.OUTCOME_TRANSIENT, common_pb2.OUTCOME_TIMEOUT, common_pb2.OUTCOME_BAD_ANSWER}
)
_RATE_OUTCOMES = frozenset({common_pb2.OUTCOME_RATE_LIMITED, common_pb2.OUTCOME_QUOTA_EXHAUSTED})
_PERMANENT_REASONS = {
    401: "API key rejected by provider (HTTP 401) — check the key",
    402: "free credit spent at provider (HTTP 402)",
    403: "access denied by provider (HTTP 403) — check the key and the account",
    404: "model not found at provider (HTTP 404) — update the catalog",
    410: "model retired at provider (HTTP 410) — update the catalog",
}
_MAX_MESSAGE = 200


def next_utc_midnight(now: float) -> float:
    """Epoch seconds of the next UTC midnight after `now`."""
    return (now // DAY + 1) * DAY


def _utc_day(now: float) -> int:
    return int(now // DAY)


def _format_seconds(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds >= 1 else f"{seconds:.1f} s"


@dataclass(frozen=True)
class Limits:
    """A model's declared free-tier limits; 0 means not declared."""

    requests_per_minute: int = 0
    requests_per_day: int = 0
    tokens_per_day: int = 0


@dataclass(frozen=True)
class Availability:
    """What the selector may do with a model now.

    `state` is a `selector_pb2.ModelState` value. READY and CIRCUIT_HALF_OPEN admit a request
    (half-open: a single trial); any other state does not, until `until` (epoch seconds) at the
    earliest. A half-open circuit whose trial is in flight reports CIRCUIT_OPEN.
    `day_share_used` is the largest share (0..1) of a declared daily budget (requests or tokens)
    already used today; 0 when none is declared. `in_flight_since` is when the oldest request
    still waiting for an answer from the model was admitted (None when none is), so a provider
    that went silent shows before its first timeout.
    """

    state: int
    reason: str = ""
    until: float | None = None
    day_share_used: float = 0.0
    in_flight_since: float | None = None

    @property
    def admits(self) -> bool:
        """Whether a request may be sent to the model now."""
        return self.state in (READY, CIRCUIT_HALF_OPEN)


@dataclass(frozen=True)
class Budget:
    """What a model has used of its free-tier budget."""

    requests_last_minute: int
    requests_today: int
    tokens_today: int


@dataclass
class _Model:
    """One model's mutable live state."""

    cooldown_until: float | None = None
    cooldown_reason: str = ""
    cooldown_outcome: int = common_pb2.OUTCOME_UNSPECIFIED
    consecutive_failures: int = 0
    circuit_opened_at: float | None = None
    trial_started_at: float | None = None
    failed_trials: int = 0
    blame_after: float | None = None
    minute: deque[float] = field(default_factory=deque)
    day: int = -1
    requests_today: int = 0
    tokens_today: int = 0
    reserved_tokens: deque[int] = field(default_factory=deque)
    in_flight: deque[float] = field(default_factory=deque)
    rate_limit_streak: int = 0
    learned_rpm: int = 0
    learned_until: float = 0.0


class LiveState:
    """Per-model circuit, cooldown and budget state, driven by attempt outcomes.

    Reactions follow the design's table. A 429 without a delay cools the model down for
    `min_rate_limit_seconds`, doubling with each further 429 before a success, up to
    `default_rate_limit_seconds`: never a tight loop, and a short storm does not bench a model
    for long. Such a 429 also teaches a per-minute limit (the requests the provider accepted in
    the last minute) that paces the model for `learned_limit_seconds` when the catalog declares
    none. A success never ends a running rate-limit cooldown: it answers a request sent before
    the 429. The circuit opens after `failure_threshold` consecutive failures, or after
    `timeout_threshold` when the last of them is a timeout (a silent provider costs every
    further request a whole attempt timeout), for `circuit_open_seconds`, doubling (up to
    `circuit_max_open_seconds`) for each failed trial only; once that time has passed it is
    half-open and admits one trial request at a time (a trial slot not released within
    `trial_timeout_seconds` is freed). A failed trial's next open time counts from when the
    trial was sent, so a provider that comes back is tried again within
    `circuit_max_open_seconds` of the last trial (or once that trial's own timeout ended).

    One outage is counted once: an outcome of an attempt that started before the last counted
    failure (or the last opening or closing of the circuit) was seen is a straggler of that same
    burst. It neither adds a consecutive failure nor grows the open time, and a straggler's
    success does not close the circuit. Budgets count every request admitted by `acquire`: a
    sliding minute of `minute_seconds` and the UTC day; tokens count the estimate at `acquire`
    until the outcome reports the real number. Outcomes are matched to
    admitted requests first in, first out; the counts only need to be right in aggregate.
    """

    def __init__(
        self,
        *,
        failure_threshold: int = 3,
        timeout_threshold: int = 1,
        circuit_open_seconds: float = 10.0,
        circuit_max_open_seconds: float = 30.0,
        default_rate_limit_seconds: float = 60.0,
        min_rate_limit_seconds: float = 2.0,
        permanent_cooldown_seconds: float = 86400.0,
        minute_seconds: float = 60.0,
        trial_timeout_seconds: float = 120.0,
        learned_limit_seconds: float = 600.0,
    ) -> None:
        if failure_threshold < 1 or timeout_threshold < 1:
            raise ValueError("failure_threshold and timeout_threshold must be at least 1")
        self.failure_threshold = failure_threshold
        self.timeout_threshold = timeout_threshold
        self.circuit_open_seconds = circuit_open_seconds
        self.circuit_max_open_seconds = max(circuit_max_open_seconds, circuit_open_seconds)
        self.default_rate_limit_seconds = default_rate_limit_seconds
        self.min_rate_limit_seconds = min(min_rate_limit_seconds, default_rate_limit_seconds)
        self.permanent_cooldown_seconds = permanent_cooldown_seconds
        self.minute_seconds = minute_seconds
        self.trial_timeout_seconds = trial_timeout_seconds
        self.learned_limit_seconds = learned_limit_seconds
        self._models: dict[int, _Model] = {}
        self._dirty: set[int] = set()

    def _model(self, model_id: int) -> _Model:
        model = self._models.get(model_id)
        if model is None:
            model = self._models[model_id] = _Model()
        return model

    def _roll(self, model: _Model, now: float) -> None:
        """Drops budget entries that left the minute window and resets counters on a new UTC day."""
        horizon = now - self.minute_seconds
        while model.minute and model.minute[0] <= horizon:
            model.minute.popleft()
        while model.in_flight and model.in_flight[0] <= now - self.trial_timeout_seconds:
            model.in_flight.popleft()
        day = _utc_day(now)
        if day != model.day:
            model.day = day
            model.requests_today = 0
            model.tokens_today = 0

    def _open_seconds(self, model: _Model) -> float:
        return min(
            self.circuit_open_seconds * 2 ** min(model.failed_trials, 30),
            self.circuit_max_open_seconds,
        )

    def availability(
        self, model_id: int, limits: Limits, now: float, est_tokens: int = 0
    ) -> Availability:
        """Whether the model may take a request of about `est_tokens` tokens now, and if not why."""
        model = self._model(model_id)
        self._roll(model, now)
        if model.cooldown_until is not None and now < model.cooldown_until:
            return Availability(COOLING_DOWN, model.cooldown_reason, model.cooldown_until)
        circuit = self._circuit(model, now)
        if circuit is not None and not circuit.admits:
            return circuit
        budget = self._budget_block(model, limits, now, est_tokens)
        if budget is not None:
            return budget
        share = self._day_share(model, limits)
        since = model.in_flight[0] if model.in_flight else None
        if circuit is not None:
            return Availability(circuit.state, circuit.reason, circuit.until, share, since)
        return Availability(READY, day_share_used=share, in_flight_since=since)

    def _day_share(self, model: _Model, limits: Limits) -> float:
        shares = [0.0]
        if limits.requests_per_day > 0:
            shares.append(model.requests_today / limits.requests_per_day)
        if limits.tokens_per_day > 0:
            used = model.tokens_today + sum(model.reserved_tokens)
            shares.append(used / limits.tokens_per_day)
        return min(1.0, max(shares))

    def _circuit(self, model: _Model, now: float) -> Availability | None:
        if model.circuit_opened_at is None:
            return None
        reopen = model.circuit_opened_at + self._open_seconds(model)
        failures = f"{model.consecutive_failures} consecutive failures"
        if now < reopen:
            return Availability(CIRCUIT_OPEN, f"circuit open after {failures}", reopen)
        trial = model.trial_started_at
        if trial is not None and now - trial < self.trial_timeout_seconds:
            return Availability(
                CIRCUIT_OPEN,
                f"circuit half-open after {failures}; a trial request is in flight",
                trial + self.trial_timeout_seconds,
            )
        return Availability(
            CIRCUIT_HALF_OPEN, f"circuit half-open after {failures}; next request is a trial"
        )

    def _budget_block(
        self, model: _Model, limits: Limits, now: float, est_tokens: int
    ) -> Availability | None:
        rpm, learned = limits.requests_per_minute, ""
        if rpm <= 0 and model.learned_rpm and now < model.learned_until:
            rpm, learned = model.learned_rpm, ", as learned from the provider's 429"
        if rpm > 0 and len(model.minute) >= rpm:
            index = len(model.minute) - rpm
            return Availability(
                OUT_OF_BUDGET,
                f"requests-per-minute budget spent ({rpm}/min{learned})",
                model.minute[index] + self.minute_seconds,
            )
        if limits.requests_per_day > 0 and model.requests_today >= limits.requests_per_day:
            return Availability(
                OUT_OF_BUDGET,
                f"requests-per-day budget spent ({limits.requests_per_day}/day)",
                next_utc_midnight(now),
            )
        if limits.tokens_per_day > 0:
            used = model.tokens_today + sum(model.reserved_tokens)
            if used + max(0, est_tokens) > limits.tokens_per_day:
                return Availability(
                    OUT_OF_BUDGET,
                    f"tokens-per-day budget spent ({used}/{limits.tokens_per_day} used)",
                    next_utc_midnight(now),
                )
        return None

    def acquire(self, model_id: int, limits: Limits, now: float, est_tokens: int = 0) -> bool:
        """Admits one request if the model is usable now, counting it in the budget windows.

        In half-open state it also takes the single trial slot. False means: do not send.
        """
        availability = self.availability(model_id, limits, now, est_tokens)
        if not availability.admits:
            return False
        model = self._model(model_id)
        if availability.state == CIRCUIT_HALF_OPEN:
            model.trial_started_at = now
        model.minute.append(now)
        model.requests_today += 1
        model.reserved_tokens.append(max(0, est_tokens))
        model.in_flight.append(now)
        return True

    def acquire_probe(self, model_id: int, now: float) -> None:
        """Counts a health probe in the budget windows without gating it.

        Probes bypass open circuits and failure cooldowns: a passing probe is how a benched model
        gets back in. The caller skips models whose provider asked to wait or whose budget is
        nearly spent.
        """
        model = self._model(model_id)
        self._roll(model, now)
        model.minute.append(now)
        model.requests_today += 1
        model.reserved_tokens.append(0)
        model.in_flight.append(now)

    def on_outcome(
        self,
        model_id: int,
        outcome: int,
        now: float,
        *,
        started: float | None = None,
        retry_after: float | None = None,
        tokens: int = 0,
        message: str = "",
        http_status: int = 0,
    ) -> None:
        """Updates the model's state after an attempt ended with `outcome` (a common_pb2.Outcome).

        `started` is when the attempt was admitted (default: `now`), which tells a straggler of
        an earlier burst from news. `message` must already be free of secrets; it is only used
        in a reason when the HTTP status alone says nothing.
        """
        model = self._model(model_id)
        self._roll(model, now)
        started = now if started is None else started
        reserved = model.reserved_tokens.popleft() if model.reserved_tokens else 0
        if model.in_flight:
            model.in_flight.popleft()
        if tokens > 0:
            model.tokens_today += tokens
        elif outcome == common_pb2.OUTCOME_SUCCESS:
            model.tokens_today += reserved
        if model.trial_started_at is not None and started >= model.trial_started_at:
            model.trial_started_at = None  # the trial's own outcome, not a straggler's
        fresh = model.blame_after is None or started >= model.blame_after
        if outcome == common_pb2.OUTCOME_SUCCESS:
            model.rate_limit_streak = 0
            if fresh:
                self._close(model_id, model, now)
            if not self._rate_cooldown_running(model, now):
                self._set(
                    model_id,
                    cooldown_until=None,
                    cooldown_reason="",
                    cooldown_outcome=common_pb2.OUTCOME_UNSPECIFIED,
                )
        elif outcome == common_pb2.OUTCOME_RATE_LIMITED:
            seconds = retry_after if retry_after is not None else self._backoff(model)
            if retry_after is None and len(model.minute) > 1:
                model.learned_rpm = len(model.minute) - 1
                model.learned_until = now + self.learned_limit_seconds
            status = f"HTTP {http_status}" if http_status else "rate limited"
            reason = f"rate limited by provider ({status}), retry after {_format_seconds(seconds)}"
            self._cool_down(model_id, outcome, now + max(0.0, seconds), reason, replace=True)
        elif outcome == common_pb2.OUTCOME_QUOTA_EXHAUSTED:
            until = now + retry_after if retry_after is not None else next_utc_midnight(now)
            self._cool_down(model_id, outcome, until, "free quota spent at provider", replace=False)
        elif outcome == common_pb2.OUTCOME_PERMANENT:
            reason = _PERMANENT_REASONS.get(http_status) or (
                f"permanent error from provider (HTTP {http_status})"
                if http_status
                else "permanent error from provider"
            )
            if http_status not in _PERMANENT_REASONS and message:
                reason = f"{reason}: {message[:_MAX_MESSAGE]}"
            until = now + self.permanent_cooldown_seconds
            self._cool_down(model_id, outcome, until, reason, replace=False)
        elif outcome in _FAILURES and fresh:
            self._fail(model_id, model, now, started, outcome == common_pb2.OUTCOME_TIMEOUT)

    @staticmethod
    def _rate_cooldown_running(model: _Model, now: float) -> bool:
        """Whether a wait the provider asked for (or a 429 backoff) has not ended yet.

        A success does not end it: that request was sent before the 429 arrived, so it says
        nothing about the wait, and sending now would break the provider's Retry-After.
        """
        return (
            model.cooldown_outcome in _RATE_OUTCOMES
            and model.cooldown_until is not None
            and now < model.cooldown_until
        )

    def _backoff(self, model: _Model) -> float:
        """Cooldown for a 429 that gave no delay: doubling from the minimum up to the default."""
        seconds = self.min_rate_limit_seconds * 2 ** min(model.rate_limit_streak, 30)
        model.rate_limit_streak += 1
        return min(seconds, self.default_rate_limit_seconds)

    def _close(self, model_id: int, model: _Model, now: float) -> None:
        """A fresh success: no failures in a row, the circuit closed."""
        if model.circuit_opened_at is not None:
            model.blame_after = now
        model.failed_trials = 0
        self._set(model_id, consecutive_failures=0, circuit_opened_at=None)

    def _fail(self, model_id: int, model: _Model, now: float, started: float, silent: bool) -> None:
        """A fresh failure (of an attempt started after the last one counted was seen)."""
        failures = model.consecutive_failures + 1
        threshold = self.timeout_threshold if silent else self.failure_threshold
        opened = model.circuit_opened_at
        if opened is None:
            if failures >= threshold:
                opened, model.failed_trials = now, 0
        elif started >= opened + self._open_seconds(model):
            # A trial sent while half-open failed: open again, for longer, from when it was sent.
            opened = started
            model.failed_trials += 1
        model.blame_after = now
        self._set(model_id, consecutive_failures=failures, circuit_opened_at=opened)

    def _cool_down(
        self, model_id: int, outcome: int, until: float, reason: str, *, replace: bool
    ) -> None:
        """Sets a cooldown; an existing longer one of another kind wins unless `replace` applies."""
        model = self._model(model_id)
        active = model.cooldown_until
        keeps_longer = (
            active is not None
            and active > until
            and not (replace and model.cooldown_outcome == outcome)
        )
        if keeps_longer:
            return
        self._set(model_id, cooldown_until=until, cooldown_reason=reason, cooldown_outcome=outcome)

    def _set(self, model_id: int, **fields: object) -> None:
        model = self._model(model_id)
        for name, value in fields.items():
            if getattr(model, name) != value:
                setattr(model, name, value)
                self._dirty.add(model_id)

    def budget(self, model_id: int, now: float) -> Budget:
        """What the model has used: requests in the last minute and today, tokens today."""
        model = self._model(model_id)
        self._roll(model, now)
        return Budget(
            requests_last_minute=len(model.minute),
            requests_today=model.requests_today,
            tokens_today=model.tokens_today + sum(model.reserved_tokens),
        )

    def seed_budget(
        self,
        model_id: int,
        *,
        requests_last_minute: int,
        requests_today: int,
        tokens_today: int,
        now: float,
    ) -> None:
        """Raises the counters to what the store saw (after a restart or from other replicas).

        Counts only ever go up here, so a stale store reading never lets the selector overspend.
        """
        model = self._model(model_id)
        self._roll(model, now)
        missing = requests_last_minute - len(model.minute)
        if missing > 0:
            model.minute.extendleft([now] * missing)
        model.requests_today = max(model.requests_today, requests_today)
        model.tokens_today = max(model.tokens_today, tokens_today)

    def restore(
        self,
        model_id: int,
        *,
        cooldown_until: float | None,
        cooldown_reason: str,
        cooldown_outcome: int,
        consecutive_failures: int,
        circuit_opened_at: float | None,
    ) -> None:
        """Sets the persisted fields (from ModelStore's ModelAvailability); not marked dirty."""
        model = self._model(model_id)
        model.cooldown_until = cooldown_until
        model.cooldown_reason = cooldown_reason
        model.cooldown_outcome = cooldown_outcome
        model.consecutive_failures = consecutive_failures
        model.circuit_opened_at = circuit_opened_at
        model.failed_trials = 0
        model.blame_after = None

    def snapshot(self, model_id: int) -> dict:
        """The persisted fields, with the same keys as `restore`."""
        model = self._model(model_id)
        return {
            "cooldown_until": model.cooldown_until,
            "cooldown_reason": model.cooldown_reason,
            "cooldown_outcome": model.cooldown_outcome,
            "consecutive_failures": model.consecutive_failures,
            "circuit_opened_at": model.circuit_opened_at,
        }

    def take_dirty(self) -> set[int]:
        """Models whose persisted fields changed since the last call (and clears the set)."""
        dirty, self._dirty = self._dirty, set()
        return dirty
