"""Live per-model state: circuit breaker, cooldowns and free-tier budget counters, per model, per
provider key and per provider account (pure, no I/O)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from aiselector.v1 import common_pb2, selector_pb2
from services.common import outcomes
from services.selector.providers.errors import Scope
from services.selector.providers.waits import local_day

DAY = 86400.0
UTC_ZONE = "UTC"

READY = selector_pb2.MODEL_STATE_READY
COOLING_DOWN = selector_pb2.MODEL_STATE_COOLING_DOWN
CIRCUIT_OPEN = selector_pb2.MODEL_STATE_CIRCUIT_OPEN
CIRCUIT_HALF_OPEN = selector_pb2.MODEL_STATE_CIRCUIT_HALF_OPEN
OUT_OF_BUDGET = selector_pb2.MODEL_STATE_OUT_OF_BUDGET

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


def _format_seconds(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds >= 1 else f"{seconds:.1f} s"


@dataclass(frozen=True)
class Quota:
    """Free-tier budgets declared for one counter, a model's or an account's; 0 = not declared."""

    requests_per_minute: int = 0
    requests_per_day: int = 0
    tokens_per_minute: int = 0
    tokens_per_day: int = 0


@dataclass(frozen=True)
class Limits(Quota):
    """A model's declared budgets, the account it shares budgets with, and where its day ends.

    `account` names the provider account (provider and key variable) the model is counted on; every
    model naming it shares `account_quota` and account-wide cooldowns ("" = none). `zone` is the
    IANA zone whose midnight ends the provider's day (Gemini's is America/Los_Angeles).

    `keys` names the account of each provider key when the key variable holds several
    (`groq/GROQ_API_KEY#1`, `groq/GROQ_API_KEY#2`): each key then has the model's budgets and
    `account_quota` of its own; empty with one key (or none), whose account is `account`.
    """

    account: str = ""
    account_quota: Quota = Quota()
    zone: str = UTC_ZONE
    keys: tuple[str, ...] = ()

    @property
    def key_accounts(self) -> tuple[str, ...]:
        """The account of each key, in key order: `account` alone with one key or none."""
        return self.keys if len(self.keys) > 1 else (self.account,)

    def key_account(self, key: int) -> str:
        """The account of key `key` (the first key's when there is no such key)."""
        accounts = self.key_accounts
        return accounts[key] if 0 <= key < len(accounts) else accounts[0]

    def key_id(self, key: int) -> str:
        """How logs and stats name key `key`: its variable, and with several keys its position
        (`GROQ_API_KEY#2`); never anything of the key itself."""
        return self.key_account(key).partition("/")[2]


@dataclass(frozen=True)
class Availability:
    """What the selector may do with a model now.

    `state` is a `selector_pb2.ModelState` value. READY and CIRCUIT_HALF_OPEN admit a request
    (half-open: a single trial); any other state does not, until `until` (epoch seconds) at the
    earliest. A half-open circuit whose trial is in flight reports CIRCUIT_OPEN.
    `day_share_used` is the largest share (0..1) of a declared daily budget (requests or tokens,
    the model's or its account's) already used today; 0 when none is declared. `day_elapsed` is
    the share of the provider's day that has passed (None: not known, the UTC day is assumed).
    `in_flight_since` is when the oldest request still waiting for an answer from the model was
    admitted (None when none is), so a provider that went silent shows before its first timeout.
    `key` is the provider key a request would be sent with (its position in `Limits.keys`); when
    no key admits a request, the one that will be usable soonest.
    """

    state: int
    reason: str = ""
    until: float | None = None
    day_share_used: float = 0.0
    in_flight_since: float | None = None
    day_elapsed: float | None = None
    key: int = 0

    @property
    def admits(self) -> bool:
        """Whether a request may be sent to the model now."""
        return self.state in (READY, CIRCUIT_HALF_OPEN)


@dataclass(frozen=True)
class Lease:
    """A request admitted by `LiveState.acquire`: send it with provider key `key`."""

    key: int = 0


@dataclass(frozen=True)
class Need:
    """What one request takes of one declared budget counter shared by replicas (ADR 0016).

    `counter` names it (`model/12/groq/GROQ_API_KEY:rpm`, `account/groq/GROQ_API_KEY:tpd`);
    `amount` requests or tokens of `limit`, in a sliding window of `window_seconds`, or (0) the
    calendar day that ends at `window_end`.
    """

    counter: str
    limit: int
    amount: int
    window_seconds: float
    window_end: float
    label: str


class Allowance(Protocol):
    """Slices of the shared budget counters this replica holds (pure: the shared state module
    fills them in the background)."""

    def block(self, needs: Sequence[Need], now: float) -> tuple[str, float | None] | None:
        """(reason, until) when the slices held do not cover `needs` now, else None."""
        ...

    def covers(self, needs: Sequence[Need], now: float) -> bool:
        """Whether the slices held cover `needs` now (a slice being leased does not)."""
        ...

    def spend(self, needs: Sequence[Need], now: float) -> None:
        """Takes `needs` from the slices held (as much as they have)."""
        ...


@dataclass(frozen=True)
class Signal:
    """Something this replica learned that every replica must apply: a cooldown (`kind` KEY: of
    the model's key whose account is `account`; ACCOUNT: of every model of `account`; MODEL: of
    the model itself) or the model's circuit (CIRCUIT; `opened_at` None: it closed)."""

    KEY = "key"
    ACCOUNT = "account"
    MODEL = "model"
    CIRCUIT = "circuit"

    model_id: int
    kind: str
    account: str = ""
    outcome: int = common_pb2.OUTCOME_UNSPECIFIED
    until: float | None = None
    reason: str = ""
    opened_at: float | None = None
    consecutive_failures: int = 0
    failed_trials: int = 0


_NEED_KINDS = (
    ("rpm", "requests_per_minute", False, "requests-per-minute"),
    ("rpd", "requests_per_day", False, "requests-per-day"),
    ("tpm", "tokens_per_minute", True, "tokens-per-minute"),
    ("tpd", "tokens_per_day", True, "tokens-per-day"),
)


@dataclass(frozen=True)
class Budget:
    """What a model (or an account) has used of its free-tier budget."""

    requests_last_minute: int
    requests_today: int
    tokens_today: int
    tokens_last_minute: int = 0

    def __add__(self, other: Budget) -> Budget:
        return Budget(
            self.requests_last_minute + other.requests_last_minute,
            self.requests_today + other.requests_today,
            self.tokens_today + other.tokens_today,
            self.tokens_last_minute + other.tokens_last_minute,
        )


@dataclass(frozen=True)
class KeyUse:
    """One provider key of a model: its account, whether it may take a request now (`state`,
    `reason`, `until` as in Availability) and what it has used of the model's budget on this key
    and of its account's."""

    account: str
    state: int
    reason: str
    until: float | None
    budget: Budget
    account_budget: Budget | None

    @property
    def key_id(self) -> str:
        """The key's name in stats: its variable and position (`GROQ_API_KEY#2`), never the key."""
        return self.account.partition("/")[2]


@dataclass
class _Counter:
    """Requests and tokens counted against one budget: a model's or an account's.

    The minute slides; the day is the calendar day in `zone`. Tokens per minute count what each
    request asks for (its estimate: prompt plus output limit), as the providers that limit them do
    before running it; tokens per day count the estimate while a request is in flight, then what
    the provider reported (the estimate for a success that reported nothing).
    """

    zone: str = UTC_ZONE
    minute: deque[float] = field(default_factory=deque)
    token_minute: deque[tuple[float, int]] = field(default_factory=deque)
    tokens_last_minute: int = 0
    day_start: float = 0.0
    day_end: float = 0.0
    requests_today: int = 0
    tokens_today: int = 0
    reserved: deque[int] = field(default_factory=deque)

    def set_zone(self, zone: str, now: float) -> None:
        """Counts days in `zone` from now on (today's counts stay)."""
        if zone != self.zone:
            self.zone = zone
            self.day_start, self.day_end = local_day(now, zone)

    def roll(self, now: float, minute_seconds: float) -> None:
        """Drops what left the minute window; starts from zero on a new day."""
        horizon = now - minute_seconds
        while self.minute and self.minute[0] <= horizon:
            self.minute.popleft()
        while self.token_minute and self.token_minute[0][0] <= horizon:
            self.tokens_last_minute -= self.token_minute.popleft()[1]
        if not self.day_start <= now < self.day_end:
            self.day_start, self.day_end = local_day(now, self.zone)
            self.requests_today = 0
            self.tokens_today = 0

    def tokens_used_today(self) -> int:
        """Tokens reported today plus the estimates of requests still in flight."""
        return self.tokens_today + sum(self.reserved)

    def block(
        self,
        quota: Quota,
        now: float,
        est_tokens: int,
        minute_seconds: float,
        rpm_note: str = "",
        shown_rpm: int = 0,
    ) -> tuple[str, float | None] | None:
        """(reason, until) when a request of `est_tokens` would break `quota` now, else None
        (`shown_rpm`: the per-minute limit to name, when not the quota's own)."""
        rpm = quota.requests_per_minute
        if rpm > 0 and len(self.minute) >= rpm:
            until = self.minute[len(self.minute) - rpm] + minute_seconds
            shown = shown_rpm or rpm
            return f"requests-per-minute budget spent ({shown}/min{rpm_note})", until
        rpd = quota.requests_per_day
        if rpd > 0 and self.requests_today >= rpd:
            return f"requests-per-day budget spent ({rpd}/day)", self.day_end
        tpm = quota.tokens_per_minute
        if tpm > 0 and est_tokens > tpm:
            return f"a request of about {est_tokens} tokens exceeds the {tpm} tokens/min", None
        if tpm > 0 and self.tokens_last_minute + est_tokens > tpm:
            return (
                f"tokens-per-minute budget spent ({self.tokens_last_minute}/{tpm} in the last "
                f"minute, this request needs about {est_tokens})",
                self._room_at(tpm - est_tokens, minute_seconds),
            )
        tpd = quota.tokens_per_day
        used = self.tokens_used_today()
        if tpd > 0 and used + max(0, est_tokens) > tpd:
            return f"tokens-per-day budget spent ({used}/{tpd} used)", self.day_end
        return None

    def _room_at(self, allowed: int, minute_seconds: float) -> float | None:
        """When the tokens of the sliding minute are down to `allowed`; None if never."""
        left = self.tokens_last_minute
        for at, tokens in self.token_minute:
            left -= tokens
            if left <= allowed:
                return at + minute_seconds
        return None

    def day_share(self, quota: Quota) -> float:
        """The largest share (0..1) of a declared daily budget used today."""
        shares = [0.0]
        if quota.requests_per_day > 0:
            shares.append(self.requests_today / quota.requests_per_day)
        if quota.tokens_per_day > 0:
            shares.append(self.tokens_used_today() / quota.tokens_per_day)
        return min(1.0, max(shares))

    def admit(self, now: float, est_tokens: int) -> None:
        """Counts one request of about `est_tokens` tokens."""
        tokens = max(0, est_tokens)
        self.minute.append(now)
        self.requests_today += 1
        self.token_minute.append((now, tokens))
        self.tokens_last_minute += tokens
        self.reserved.append(tokens)

    def settle(self, reserved: int, used: int) -> None:
        """A request that reserved `reserved` tokens ended having used `used`."""
        if reserved in self.reserved:
            self.reserved.remove(reserved)
        self.tokens_today += used

    def seed(
        self, now: float, requests_last_minute: int, requests_today: int, tokens_today: int
    ) -> tuple[int, int, int]:
        """Raises the counts to at least these; returns by how much each went up."""
        raised = (
            max(0, requests_last_minute - len(self.minute)),
            max(0, requests_today - self.requests_today),
            max(0, tokens_today - self.tokens_today),
        )
        self.add(now, *raised)
        return raised

    def add(self, now: float, requests_last_minute: int, requests: int, tokens: int) -> None:
        """Adds counts seen elsewhere (the minute's requests as if sent now: the safe side)."""
        self.minute.extendleft([now] * requests_last_minute)
        self.requests_today += requests
        self.tokens_today += tokens

    def usage(self) -> Budget:
        """What has been used."""
        return Budget(
            requests_last_minute=len(self.minute),
            requests_today=self.requests_today,
            tokens_today=self.tokens_used_today(),
            tokens_last_minute=self.tokens_last_minute,
        )


@dataclass
class _Account:
    """The budget and account-wide cooldown shared by every model of one provider account (one
    provider key)."""

    counter: _Counter = field(default_factory=_Counter)
    members: set[int] = field(default_factory=set)
    # (outcome, until, reason) of the last account-wide signal: a model that joins gets it too.
    cooldown: tuple[int, float, str] | None = None


@dataclass
class _Cooling:
    """A cooldown: until when, why, after which outcome class."""

    cooldown_until: float | None = None
    cooldown_reason: str = ""
    cooldown_outcome: int = common_pb2.OUTCOME_UNSPECIFIED

    def cooling(self, now: float) -> bool:
        return self.cooldown_until is not None and now < self.cooldown_until

    def rate_cooldown_running(self, now: float) -> bool:
        """Whether a wait the provider asked for (or a 429 backoff) has not ended yet.

        A success does not end it: that request was sent before the 429 arrived, so it says
        nothing about the wait, and sending now would break the provider's Retry-After.
        """
        return self.cooldown_outcome in outcomes.RATE_OUTCOMES and self.cooling(now)


@dataclass
class _Lane(_Cooling):
    """One model on one provider key: that key's budget for the model, and what the provider said
    about the key (rate limits, quotas, a rejected key)."""

    account: str = ""
    counter: _Counter = field(default_factory=_Counter)
    rate_limit_streak: int = 0
    last_success: float | None = None
    learned_rpm: int = 0
    learned_until: float = 0.0
    # Admission times of the last minute's requests the provider answered with a 429.
    limited: deque[float] = field(default_factory=deque)
    # The per-minute request limit the catalog declares (0 = none), as its limits last said.
    declared_rpm: int = 0
    last_used: float = 0.0


@dataclass
class _Model(_Cooling):
    """One model's mutable live state: its circuit and its own cooldowns (a retired model), and
    one lane per provider key."""

    consecutive_failures: int = 0
    circuit_opened_at: float | None = None
    trial_started_at: float | None = None
    trial_key: int = 0
    failed_trials: int = 0
    blame_after: float | None = None
    lanes: list[_Lane] = field(default_factory=lambda: [_Lane()])
    in_flight: deque[float] = field(default_factory=deque)
    # The outcome class of the cooldown that held the model back when last asked.
    held_by: int = common_pb2.OUTCOME_UNSPECIFIED
    model_id: int = 0
    # The limits last given (the budgets a request is counted in).
    limits: Limits | None = None


#: Permanent statuses that speak of the key, not the model: they retire that key only.
KEY_STATUSES = frozenset({401, 402, 403})


def about_key(outcome: int, http_status: int) -> bool:
    """Whether an outcome speaks of the provider key it was sent with (a rate limit, a quota, a
    rejected or unpaid key) rather than of the model: the model's other keys may still serve."""
    return outcome in outcomes.RATE_OUTCOMES or (
        outcome == outcomes.PERMANENT and http_status in KEY_STATUSES
    )


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
    success does not close the circuit.

    Budgets count every request admitted by `acquire`, twice: against the model's own limits and
    against its account's (`Limits.account`), and a request is admitted only if both allow it.
    Minutes slide (`minute_seconds`); days are calendar days in the provider's zone
    (`Limits.zone`). Outcomes are matched to admitted requests first in, first out; the counts
    only need to be right in aggregate. The state learns a model's account and zone from the
    limits it is given (the engine plans over the whole catalog before any attempt), so an
    account-scope outcome (`Scope.ACCOUNT`) cools every model of the account; a model first seen
    later gets the account's running cooldown too.

    Several provider keys (`Limits.keys`): each key is a lane of the model with the model's
    budgets, its own account (the key's), and its own cooldowns for what the provider says about
    the key — rate limits, quotas, and 401/402/403, which retire that key only. The circuit
    (transient errors, timeouts, bad answers) and a 404/410 stay the model's. A model admits a
    request when the model does and at least one key does; `acquire` picks, among the keys that
    admit it, the one with the most of its daily budget left, then of its minute's, then the
    least recently used, and the outcome is fed back with that key.
    """

    def __init__(
        self,
        *,
        failure_threshold: int = 3,
        timeout_threshold: int = 1,
        circuit_open_seconds: float = 10.0,
        circuit_max_open_seconds: float = 20.0,
        default_rate_limit_seconds: float = 60.0,
        min_rate_limit_seconds: float = 2.0,
        permanent_cooldown_seconds: float = 86400.0,
        minute_seconds: float = 60.0,
        trial_timeout_seconds: float = 120.0,
        learned_limit_seconds: float = 600.0,
        allowance: Allowance | None = None,
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
        self._accounts: dict[str, _Account] = {}
        self._dirty: set[int] = set()
        # Shared state (ADR 0016): the slices of shared budgets this replica holds (None: budgets
        # are counted here only), and what it learned for the other replicas, with a callback
        # told when there is something new.
        self.allowance = allowance
        self.outbox: list[Signal] = []
        self.on_signal: Callable[[], None] | None = None
        self._applying = False

    def _model(self, model_id: int) -> _Model:
        model = self._models.get(model_id)
        if model is None:
            model = self._models[model_id] = _Model(model_id=model_id)
        return model

    def _account_of(self, lane: _Lane) -> _Account | None:
        return self._accounts.get(lane.account) if lane.account else None

    @staticmethod
    def _lane(model: _Model, key: int) -> _Lane:
        return model.lanes[key] if 0 <= key < len(model.lanes) else model.lanes[0]

    def _note(self, model_id: int, limits: Limits, now: float) -> _Model:
        """The model, with the keys, accounts and zone `limits` name."""
        model = self._model(model_id)
        model.limits = limits
        names = limits.key_accounts
        del model.lanes[len(names) :]
        while len(model.lanes) < len(names):
            model.lanes.append(_Lane())
        for lane, name in zip(model.lanes, names, strict=True):
            lane.counter.set_zone(limits.zone, now)
            lane.declared_rpm = limits.requests_per_minute
            if name != lane.account:
                self._join(model_id, lane, name, now)
            account = self._account_of(lane)
            if account is not None:
                account.counter.set_zone(limits.zone, now)
        return model

    def _join(self, model_id: int, lane: _Lane, name: str, now: float) -> None:
        """Moves the lane to account `name` ("" = none); it gets the account's running cooldown."""
        previous = self._account_of(lane)
        if previous is not None:
            previous.members.discard(model_id)
        lane.account = name
        if not name:
            return
        account = self._accounts.setdefault(name, _Account())
        account.members.add(model_id)
        if account.cooldown is not None and account.cooldown[1] > now:
            outcome, until, reason = account.cooldown
            self._cool_down(model_id, lane, outcome, until, reason, replace=False)

    def _roll(self, model: _Model, now: float) -> None:
        """Rolls the windows of every key of the model and of their accounts."""
        while model.in_flight and model.in_flight[0] <= now - self.trial_timeout_seconds:
            model.in_flight.popleft()
        for lane in model.lanes:
            lane.counter.roll(now, self.minute_seconds)
            account = self._account_of(lane)
            if account is not None:
                account.counter.roll(now, self.minute_seconds)

    def _open_seconds(self, model: _Model) -> float:
        return min(
            self.circuit_open_seconds * 2 ** min(model.failed_trials, 30),
            self.circuit_max_open_seconds,
        )

    def availability(
        self, model_id: int, limits: Limits, now: float, est_tokens: int = 0
    ) -> Availability:
        """Whether the model may take a request of about `est_tokens` tokens now, and if not why."""
        model = self._note(model_id, limits, now)
        self._roll(model, now)
        if model.cooling(now):
            model.held_by = model.cooldown_outcome
            return Availability(COOLING_DOWN, model.cooldown_reason, model.cooldown_until)
        keys = list(enumerate(model.lanes))
        if all(lane.cooling(now) for _, lane in keys):
            return self._held(
                model, [self._lane_block(model, i, limits, now, 0) for i in range(len(keys))]
            )
        circuit = self._circuit(model, now)
        if circuit is not None and not circuit.admits:
            return circuit
        blocks = [self._lane_block(model, i, limits, now, est_tokens) for i, _ in keys]
        usable = [i for i, block in enumerate(blocks) if block is None]
        if not usable:
            return self._held(model, blocks)
        key = min(usable, key=lambda i: self._load(model.lanes[i], limits, i))
        lane = model.lanes[key]
        share = lane.counter.day_share(limits)
        account = self._account_of(lane)
        if account is not None:
            share = max(share, account.counter.day_share(limits.account_quota))
        counter = lane.counter
        elapsed = (now - counter.day_start) / (counter.day_end - counter.day_start)
        since = model.in_flight[0] if model.in_flight else None
        state, reason, until = READY, "", None
        if circuit is not None:
            state, reason, until = circuit.state, circuit.reason, circuit.until
        return Availability(state, reason, until, share, since, elapsed, key)

    def _held(self, model: _Model, blocks: list[Availability | None]) -> Availability:
        """The availability of a model none of whose keys admits a request: the key usable
        soonest stands for it; with several keys the reason lists each."""
        held = [(i, b) for i, b in enumerate(blocks) if b is not None]
        key, first = min(held, key=lambda kb: (kb[1].until is None, kb[1].until or 0.0, kb[0]))
        lane = model.lanes[key]
        model.held_by = (
            lane.cooldown_outcome if first.state == COOLING_DOWN else outcomes.RATE_LIMITED
        )
        reason = first.reason
        if len(held) > 1:
            reason = "every key is held back: " + "; ".join(b.reason for _, b in held)
        return replace(first, reason=reason, key=key)

    def _load(self, lane: _Lane, limits: Limits, key: int) -> tuple[float, float, float, int]:
        """How much of its budgets a key has used (day, then minute), when it was last used: the
        key with the least is chosen."""
        account = self._account_of(lane)
        day = lane.counter.day_share(limits)
        minute = (
            len(lane.counter.minute) / limits.requests_per_minute
            if limits.requests_per_minute
            else 0.0
        )
        if account is not None:
            quota = limits.account_quota
            day = max(day, account.counter.day_share(quota))
            if quota.requests_per_minute:
                minute = max(minute, len(account.counter.minute) / quota.requests_per_minute)
        return (day, minute, lane.last_used, key)

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

    def _lane_block(
        self, model: _Model, key: int, limits: Limits, now: float, est_tokens: int
    ) -> Availability | None:
        """Why key `key` cannot take a request of about `est_tokens` tokens now (None: it can)."""
        lane = model.lanes[key]
        if lane.cooling(now):
            return Availability(COOLING_DOWN, lane.cooldown_reason, lane.cooldown_until, key=key)
        quota: Quota = limits
        note, shown = "", 0
        if limits.requests_per_minute <= 0 and lane.learned_rpm and now < lane.learned_until:
            # The provider counts the requests it accepted: those it refused in the window do not
            # use the learned limit.
            horizon = now - self.minute_seconds
            while lane.limited and lane.limited[0] <= horizon:
                lane.limited.popleft()
            quota = replace(limits, requests_per_minute=lane.learned_rpm + len(lane.limited))
            note, shown = ", as learned from the provider's 429", lane.learned_rpm
        whose = f"key {_key_id(lane)}: " if len(model.lanes) > 1 else ""
        block = lane.counter.block(quota, now, est_tokens, self.minute_seconds, note, shown)
        if block is not None:
            reason, until = block
            return Availability(OUT_OF_BUDGET, whose + reason, until, key=key)
        account = self._account_of(lane)
        if account is not None:
            block = account.counter.block(
                limits.account_quota, now, est_tokens, self.minute_seconds
            )
            if block is not None:
                reason, until = block
                return Availability(
                    OUT_OF_BUDGET,
                    f"account {lane.account}: {reason}; shared by all its models",
                    until,
                    key=key,
                )
        if self.allowance is not None:
            block = self.allowance.block(self._needs(model, key, limits, est_tokens), now)
            if block is not None:
                reason, until = block
                return Availability(OUT_OF_BUDGET, whose + reason, until, key=key)
        return None

    def _needs(self, model: _Model, key: int, limits: Limits, est_tokens: int) -> list[Need]:
        """What a request of about `est_tokens` tokens on key `key` takes of the declared budget
        counters: the model's on that key, and its account's."""
        lane = self._lane(model, key)
        day_end = lane.counter.day_end
        found = []
        for base, quota in (
            (f"model/{model.model_id}/{lane.account}", limits),
            (f"account/{lane.account}", limits.account_quota if lane.account else None),
        ):
            if quota is None:
                continue
            for kind, name, tokens, label in _NEED_KINDS:
                limit = getattr(quota, name)
                if limit <= 0:
                    continue
                amount = min(limit, max(1, est_tokens)) if tokens else 1
                minute = kind.endswith("m")
                found.append(
                    Need(
                        f"{base}:{kind}",
                        limit,
                        amount,
                        self.minute_seconds if minute else 0.0,
                        0.0 if minute else day_end,
                        label,
                    )
                )
        return found

    def acquire(
        self, model_id: int, limits: Limits, now: float, est_tokens: int = 0, *, trial: bool = True
    ) -> Lease | None:
        """Admits one request if the model is usable now, counting it in the budget windows of
        the model and its account on the key it picks; None means: do not send.

        In half-open state it also takes the single trial slot, unless `trial` is False (the
        request may not be a trial: a background probe makes them); `trial_key` then says which
        key the trial goes with.
        """
        availability = self.availability(model_id, limits, now, est_tokens)
        if not availability.admits or (availability.state == CIRCUIT_HALF_OPEN and not trial):
            return None
        model = self._model(model_id)
        if self.allowance is not None and not self.allowance.covers(
            self._needs(model, availability.key, limits, est_tokens), now
        ):
            return None
        if availability.state == CIRCUIT_HALF_OPEN:
            model.trial_started_at = now
            model.trial_key = availability.key
        self._admit(model, availability.key, now, est_tokens)
        return Lease(availability.key)

    def trial_key(self, model_id: int) -> int:
        """The key the model's last trial request was admitted with."""
        return self._model(model_id).trial_key

    def _admit(self, model: _Model, key: int, now: float, est_tokens: int) -> None:
        lane = self._lane(model, key)
        if self.allowance is not None and model.limits is not None:
            self.allowance.spend(self._needs(model, key, model.limits, est_tokens), now)
        lane.counter.admit(now, est_tokens)
        lane.last_used = now
        account = self._account_of(lane)
        if account is not None:
            account.counter.admit(now, est_tokens)
        model.in_flight.append(now)

    def acquire_probe(self, model_id: int, now: float, est_tokens: int = 0) -> int:
        """Counts a health probe in the budget windows (the model's and its account's, as last
        given by its limits) without gating it; returns the key to send it with (the least
        recently used of those not cooling down, else of all).

        Probes bypass open circuits and failure cooldowns: a passing probe is how a benched model
        gets back in. The caller skips models whose provider asked to wait or whose budget is
        nearly spent.
        """
        model = self._model(model_id)
        self._roll(model, now)
        keys = [i for i, lane in enumerate(model.lanes) if not lane.cooling(now)]
        key = min(keys or range(len(model.lanes)), key=lambda i: (model.lanes[i].last_used, i))
        self._admit(model, key, now, est_tokens)
        return key

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
        scope: Scope = Scope.MODEL,
        key: int = 0,
    ) -> None:
        """Updates the model's state after an attempt on provider key `key` ended with `outcome`
        (a common_pb2.Outcome).

        `started` is when the attempt was admitted (default: `now`), which tells a straggler of
        an earlier burst from news. `message` must already be free of secrets; it is only used
        in a reason when the HTTP status alone says nothing. With `scope` ACCOUNT a cooldown
        (rate limit, quota, permanent) holds for every model of the key's account. Rate limits,
        quotas and 401/402/403 cool the key only; with one key that is the model.
        """
        model = self._model(model_id)
        self._roll(model, now)
        lane = self._lane(model, key)
        account = self._account_of(lane)
        started = now if started is None else started
        reserved = lane.counter.reserved.popleft() if lane.counter.reserved else 0
        if model.in_flight:
            model.in_flight.popleft()
        used = tokens if tokens > 0 else reserved if outcome == common_pb2.OUTCOME_SUCCESS else 0
        lane.counter.tokens_today += used
        if account is not None:
            account.counter.settle(reserved, used)
        if model.trial_started_at is not None and started >= model.trial_started_at:
            model.trial_started_at = None  # the trial's own outcome, not a straggler's
        fresh = model.blame_after is None or started >= model.blame_after
        if outcome == common_pb2.OUTCOME_SUCCESS:
            lane.rate_limit_streak = 0
            lane.last_success = now
            if fresh:
                self._close(model_id, model, now)
            for holder in (model, lane):
                if not holder.rate_cooldown_running(now):
                    self._set(
                        model_id,
                        holder,
                        cooldown_until=None,
                        cooldown_reason="",
                        cooldown_outcome=common_pb2.OUTCOME_UNSPECIFIED,
                    )
        elif outcome == common_pb2.OUTCOME_RATE_LIMITED:
            horizon = now - self.minute_seconds
            while lane.limited and lane.limited[0] <= horizon:
                lane.limited.popleft()
            lane.limited.append(started)
            accepted = len(lane.counter.minute) - len(lane.limited)
            if retry_after is None and accepted > 0:
                lane.learned_rpm = accepted
                lane.learned_until = now + self.learned_limit_seconds
            if retry_after is not None:
                seconds = retry_after
            elif (
                lane.declared_rpm
                and lane.last_success is not None
                and now - lane.last_success < self.minute_seconds
            ):
                # The declared per-minute budget paces the model already, and it answered within
                # the minute: the provider is busy, not closed, so a 429 costs no pause. One
                # that answered nothing for a minute backs off, so a model that refuses
                # everything is not sent its whole budget.
                seconds = 0.0
            elif not lane.declared_rpm and lane.learned_rpm and now < lane.learned_until:
                # The limit just learned says when the provider takes the next request.
                seconds = 0.0
            else:
                seconds = self._backoff(lane)
            status = f"HTTP {http_status}" if http_status else "rate limited"
            reason = f"rate limited by provider ({status}), retry after {_format_seconds(seconds)}"
            self._cool(model_id, key, outcome, now + max(0.0, seconds), reason, scope, replace=True)
        elif outcome == common_pb2.OUTCOME_QUOTA_EXHAUSTED:
            # Without a wait, the quota is the provider's daily one: it resets at its midnight.
            until = now + retry_after if retry_after is not None else lane.counter.day_end
            self._cool(model_id, key, outcome, until, "free quota spent at provider", scope)
        elif outcome == common_pb2.OUTCOME_PERMANENT:
            reason = _PERMANENT_REASONS.get(http_status) or (
                f"permanent error from provider (HTTP {http_status})"
                if http_status
                else "permanent error from provider"
            )
            if http_status not in _PERMANENT_REASONS and message:
                reason = f"{reason}: {message[:_MAX_MESSAGE]}"
            until = now + self.permanent_cooldown_seconds
            if about_key(outcome, http_status) or scope is Scope.ACCOUNT:
                self._cool(model_id, key, outcome, until, reason, scope)
            else:
                self._cool_down(model_id, model, outcome, until, reason, replace=False)
                self._publish(Signal(model_id, Signal.MODEL, "", outcome, until, reason))
        elif outcome in outcomes.CIRCUIT_OUTCOMES and fresh:
            self._fail(model_id, model, now, started, outcome == common_pb2.OUTCOME_TIMEOUT)

    def _cool(
        self,
        model_id: int,
        key: int,
        outcome: int,
        until: float,
        reason: str,
        scope: Scope,
        *,
        replace: bool = False,
    ) -> None:
        """Cools the model's key `key`, or with `scope` ACCOUNT that key for every model of its
        account.

        Only the model that got the reply may have a longer cooldown of the same kind shortened
        (its provider's newest wait); another model's own longer wait is never cut.
        """
        model = self._model(model_id)
        lane = self._lane(model, key)
        if len(model.lanes) > 1:
            reason = f"key {_key_id(lane)}: {reason}"
        account = self._account_of(lane)
        if scope is not Scope.ACCOUNT or account is None:
            self._cool_down(model_id, lane, outcome, until, reason, replace=replace)
            self._publish(Signal(model_id, Signal.KEY, lane.account, outcome, until, reason))
            return
        reason = f"{reason}; holds for every model of account {lane.account}"
        self._publish(Signal(model_id, Signal.ACCOUNT, lane.account, outcome, until, reason))
        account.cooldown = (outcome, until, reason)
        for member in sorted(account.members):
            for other in self._model(member).lanes:
                if other.account == lane.account:
                    self._cool_down(
                        member, other, outcome, until, reason, replace=replace and other is lane
                    )

    def _backoff(self, lane: _Lane) -> float:
        """Cooldown for a 429 that gave no delay: doubling from the minimum up to the default."""
        streak = lane.rate_limit_streak
        lane.rate_limit_streak += 1
        seconds = self.min_rate_limit_seconds * 2 ** min(streak, 30)
        return min(seconds, self.default_rate_limit_seconds)

    def _close(self, model_id: int, model: _Model, now: float) -> None:
        """A fresh success: no failures in a row, the circuit closed."""
        if model.circuit_opened_at is not None:
            model.blame_after = now
            self._publish(Signal(model_id, Signal.CIRCUIT))
        model.failed_trials = 0
        self._set(model_id, model, consecutive_failures=0, circuit_opened_at=None)

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
        changed = opened != model.circuit_opened_at
        self._set(model_id, model, consecutive_failures=failures, circuit_opened_at=opened)
        if changed:
            self._publish(
                Signal(
                    model_id,
                    Signal.CIRCUIT,
                    opened_at=opened,
                    consecutive_failures=failures,
                    failed_trials=model.failed_trials,
                )
            )

    # ---- shared state (ADR 0016) ------------------------------------------------------------

    def _publish(self, signal: Signal) -> None:
        """Queues what this replica learned for the others (when shared state is on)."""
        if self.on_signal is None or self._applying:
            return
        self.outbox.append(signal)
        self.on_signal()

    def take_signals(self) -> list[Signal]:
        """The signals learned since the last call (and clears them)."""
        taken, self.outbox = self.outbox, []
        return taken

    def apply(self, signal: Signal, now: float) -> None:
        """Applies what another replica learned. Cooldowns only ever grow here (the later end
        wins); a circuit opened elsewhere opens here (a later opening wins), one closed
        elsewhere (its trial passed) closes here. A model this replica has not seen is skipped."""
        model = self._models.get(signal.model_id)
        if model is None:
            return
        self._applying = True
        try:
            self._apply(model, signal, now)
        finally:
            self._applying = False

    def _apply(self, model: _Model, signal: Signal, now: float) -> None:
        model_id, until = signal.model_id, signal.until
        if signal.kind == Signal.CIRCUIT:
            if signal.opened_at is None:
                if model.circuit_opened_at is not None:
                    model.blame_after = now
                model.failed_trials = 0
                model.trial_started_at = None
                self._set(model_id, model, consecutive_failures=0, circuit_opened_at=None)
            elif model.circuit_opened_at is None or signal.opened_at > model.circuit_opened_at:
                model.failed_trials = signal.failed_trials
                model.trial_started_at = None
                model.blame_after = now
                failures = max(model.consecutive_failures, signal.consecutive_failures)
                self._set(
                    model_id,
                    model,
                    consecutive_failures=failures,
                    circuit_opened_at=signal.opened_at,
                )
            return
        if until is None or until <= now:
            return
        holders: list[_Cooling] = []
        if signal.kind == Signal.MODEL:
            holders = [model]
        elif signal.kind == Signal.KEY:
            holders = [lane for lane in model.lanes if lane.account == signal.account]
        elif signal.kind == Signal.ACCOUNT:
            account = self._accounts.get(signal.account)
            if account is None:
                return
            if account.cooldown is None or account.cooldown[1] < until:
                account.cooldown = (signal.outcome, until, signal.reason)
            for member in sorted(account.members):
                for lane in self._model(member).lanes:
                    if lane.account == signal.account:
                        self._cool_down(
                            member, lane, signal.outcome, until, signal.reason, replace=False
                        )
            return
        for holder in holders:
            self._cool_down(model_id, holder, signal.outcome, until, signal.reason, replace=False)

    def _cool_down(
        self,
        model_id: int,
        holder: _Cooling,
        outcome: int,
        until: float,
        reason: str,
        *,
        replace: bool,
    ) -> None:
        """Sets a cooldown on the model or one of its keys; an existing longer one of another kind
        wins unless `replace` applies."""
        active = holder.cooldown_until
        keeps_longer = (
            active is not None
            and active > until
            and not (replace and holder.cooldown_outcome == outcome)
        )
        if keeps_longer:
            return
        self._model(model_id).held_by = outcome
        self._set(
            model_id, holder, cooldown_until=until, cooldown_reason=reason, cooldown_outcome=outcome
        )

    def _set(self, model_id: int, holder: object, **fields: object) -> None:
        for name, value in fields.items():
            if getattr(holder, name) != value:
                setattr(holder, name, value)
                self._dirty.add(model_id)

    def budget(self, model_id: int, now: float, key: int | None = None) -> Budget:
        """What the model has used on key `key` (None: over all its keys): requests and tokens
        asked for in the last minute, requests and tokens today."""
        model = self._model(model_id)
        self._roll(model, now)
        lanes = model.lanes if key is None else [self._lane(model, key)]
        return _total(lane.counter.usage() for lane in lanes)

    def account_budget(self, model_id: int, now: float, key: int | None = None) -> Budget | None:
        """What the account of key `key` (None: of every key) has used over all its models; None
        without an account."""
        model = self._model(model_id)
        self._roll(model, now)
        lanes = model.lanes if key is None else [self._lane(model, key)]
        accounts = [a for a in map(self._account_of, lanes) if a is not None]
        return _total(a.counter.usage() for a in accounts) if accounts else None

    def key_uses(self, model_id: int, limits: Limits, now: float) -> list[KeyUse]:
        """Every provider key of the model: whether it may take a request, what it has used."""
        model = self._note(model_id, limits, now)
        self._roll(model, now)
        uses = []
        for key, lane in enumerate(model.lanes):
            block = self._lane_block(model, key, limits, now, 0)
            account = self._account_of(lane)
            uses.append(
                KeyUse(
                    account=lane.account,
                    state=READY if block is None else block.state,
                    reason="" if block is None else block.reason,
                    until=None if block is None else block.until,
                    budget=lane.counter.usage(),
                    account_budget=account.counter.usage() if account is not None else None,
                )
            )
        return uses

    def seed_budget(
        self,
        model_id: int,
        *,
        limits: Limits,
        requests_last_minute: int,
        requests_today: int,
        tokens_today: int,
        now: float,
    ) -> None:
        """Raises the counters to what the store saw (after a restart or from other replicas);
        what the model's counts went up by is added to its account's.

        Counts only ever go up here, so a stale store reading never lets the selector overspend.
        The store does not know which key sent what: with several keys, each key gets the whole
        last minute (the safe side) and an even share, rounded up, of today's counts.
        """
        model = self._note(model_id, limits, now)
        self._roll(model, now)
        keys = len(model.lanes)
        for lane in model.lanes:
            raised = lane.counter.seed(
                now, requests_last_minute, -(-requests_today // keys), -(-tokens_today // keys)
            )
            account = self._account_of(lane)
            if account is not None:
                account.counter.add(now, *raised)

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
        """Sets the persisted fields (from ModelStore's ModelAvailability); not marked dirty. A
        cooldown persisted for a model holds for all its keys."""
        model = self._model(model_id)
        model.cooldown_until = cooldown_until
        model.cooldown_reason = cooldown_reason
        model.cooldown_outcome = cooldown_outcome
        model.held_by = cooldown_outcome
        model.consecutive_failures = consecutive_failures
        model.circuit_opened_at = circuit_opened_at
        model.failed_trials = 0
        model.blame_after = None

    def _persisted(self, model: _Model) -> _Cooling:
        """The cooldown that holds the model as a whole: its own, or when every key is cooling
        the one that ends first, whichever ends later."""
        found: list[_Cooling] = [model] if model.cooldown_until is not None else []
        if all(lane.cooldown_until is not None for lane in model.lanes):
            found.append(min(model.lanes, key=lambda lane: lane.cooldown_until or 0.0))
        return max(found, key=lambda c: c.cooldown_until or 0.0, default=_Cooling())

    def cooldown_outcome(self, model_id: int) -> int:
        """The outcome class of the model's running (or last) cooldown; UNSPECIFIED: none."""
        return self._persisted(self._model(model_id)).cooldown_outcome

    def rate_blocked(self, model_id: int, state: int) -> bool:
        """Whether a model in `state` (its availability's) is held back by a provider's limit or
        its own budget, which passes by waiting, rather than by its failures."""
        if state == OUT_OF_BUDGET:
            return True
        return state == COOLING_DOWN and self._model(model_id).held_by in outcomes.RATE_OUTCOMES

    def snapshot(self, model_id: int) -> dict:
        """The persisted fields, with the same keys as `restore`: a key's own cooldown is not
        persisted unless every key of the model is cooling."""
        model = self._model(model_id)
        cooling = self._persisted(model)
        return {
            "cooldown_until": cooling.cooldown_until,
            "cooldown_reason": cooling.cooldown_reason,
            "cooldown_outcome": cooling.cooldown_outcome,
            "consecutive_failures": model.consecutive_failures,
            "circuit_opened_at": model.circuit_opened_at,
        }

    def take_dirty(self) -> set[int]:
        """Models whose persisted fields changed since the last call (and clears the set)."""
        dirty, self._dirty = self._dirty, set()
        return dirty


def _key_id(lane: _Lane) -> str:
    return lane.account.partition("/")[2] or lane.account


def _total(budgets: Iterable[Budget]) -> Budget:
    total = Budget(0, 0, 0, 0)
    for budget in budgets:
        total = total + budget
    return total
