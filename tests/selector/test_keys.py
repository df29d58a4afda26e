"""Several provider keys for one model: per-key budgets, cooldowns and accounts, the key choice,
and what stays the model's (an injected clock: every time is given)."""

from __future__ import annotations

import random

import pytest

from aiselector.v1 import common_pb2, selector_pb2
from services.common import secrets
from services.common.keys import key_ids, split_keys
from services.selector.conduct import Conduct, Conductor, GiveUp, Outcome, Seat, Try
from services.selector.policy import ModelSpec, Needs
from services.selector.providers import MissingCredentials, Scope, resolve_targets
from services.selector.snapshot import Catalog
from services.selector.state import DAY, Limits, LiveState, Quota
from services.selector.stats import StatsBook

SUCCESS = common_pb2.OUTCOME_SUCCESS
RATE_LIMITED = common_pb2.OUTCOME_RATE_LIMITED
QUOTA = common_pb2.OUTCOME_QUOTA_EXHAUSTED
TRANSIENT = common_pb2.OUTCOME_TRANSIENT
PERMANENT = common_pb2.OUTCOME_PERMANENT
READY = selector_pb2.MODEL_STATE_READY
COOLING = selector_pb2.MODEL_STATE_COOLING_DOWN
OPEN = selector_pb2.MODEL_STATE_CIRCUIT_OPEN
OUT_OF_BUDGET = selector_pb2.MODEL_STATE_OUT_OF_BUDGET
T0 = 20_000 * DAY + 3600.0
TWO = Limits(
    account="groq/GROQ_API_KEY",
    keys=("groq/GROQ_API_KEY#1", "groq/GROQ_API_KEY#2"),
)


def fresh(limits: Limits = TWO, *models: int) -> LiveState:
    """A state that has seen the models (1 by default) with `limits`, as planning does first."""
    state = LiveState()
    for model_id in models or (1,):
        state.availability(model_id, limits, T0)
    return state


def keys_of(state: LiveState, limits: Limits, n: int, at: float) -> list[int]:
    """The keys `n` requests in a row are sent with (each admitted and answered at once)."""
    chosen = []
    for i in range(n):
        lease = state.acquire(1, limits, at + i)
        assert lease is not None
        chosen.append(lease.key)
        state.on_outcome(1, SUCCESS, at + i, key=lease.key)
    return chosen


def test_load_is_spread_over_the_keys_least_recently_used_first() -> None:
    assert keys_of(LiveState(), TWO, 6, T0) == [0, 1, 0, 1, 0, 1]


def test_the_key_with_most_of_its_daily_budget_left_is_chosen() -> None:
    limits = Limits(**{**TWO.__dict__, "requests_per_day": 10})
    state = fresh(limits)
    state.on_outcome(1, RATE_LIMITED, T0, retry_after=5.0, key=1)
    assert keys_of(state, limits, 3, T0) == [0, 0, 0]  # key 1 waits: key 0 takes them all
    assert state.budget(1, T0 + 5, key=0).requests_today == 3
    # Then key 1 takes the load until both have as much left, then they alternate again.
    assert keys_of(state, limits, 5, T0 + 10) == [1, 1, 1, 0, 1]


def test_a_429_on_one_key_moves_traffic_to_the_other_until_its_retry_after_ends() -> None:
    state = fresh()
    lease = state.acquire(1, TWO, T0)
    assert lease is not None
    assert lease.key == 0
    state.on_outcome(1, RATE_LIMITED, T0, retry_after=30.0, http_status=429, key=0)

    availability = state.availability(1, TWO, T0 + 1)
    assert availability.state == READY
    assert availability.key == 1
    assert keys_of(state, TWO, 3, T0 + 1) == [1, 1, 1]
    uses = state.key_uses(1, TWO, T0 + 5)
    assert [u.key_id for u in uses] == ["GROQ_API_KEY#1", "GROQ_API_KEY#2"]
    assert uses[0].state == COOLING
    assert uses[0].until == pytest.approx(T0 + 30)
    assert uses[0].reason.startswith("key GROQ_API_KEY#1: rate limited by provider (HTTP 429)")
    assert uses[1].state == READY
    # The Retry-After over, key 0 (least recently used) is back.
    assert state.acquire(1, TWO, T0 + 30).key == 0  # type: ignore[union-attr]


def test_a_model_is_held_back_only_when_every_key_is_and_for_as_long_as_the_first_to_free() -> None:
    state = fresh()
    state.on_outcome(1, RATE_LIMITED, T0, retry_after=20.0, http_status=429, key=0)
    state.on_outcome(1, RATE_LIMITED, T0, retry_after=5.0, http_status=429, key=1)

    availability = state.availability(1, TWO, T0 + 1)
    assert availability.state == COOLING
    assert availability.until == pytest.approx(T0 + 5)
    assert availability.key == 1
    assert availability.reason.startswith("every key is held back: key GROQ_API_KEY#1: rate")
    assert "key GROQ_API_KEY#2: rate limited" in availability.reason
    assert state.rate_blocked(1, availability.state)  # a wait helps
    assert state.acquire(1, TWO, T0 + 1) is None
    assert state.acquire(1, TWO, T0 + 5).key == 1  # type: ignore[union-attr]


def test_a_401_retires_that_key_only_with_a_reason_naming_it() -> None:
    state = fresh()
    state.on_outcome(1, PERMANENT, T0, http_status=401, scope=Scope.ACCOUNT, key=1)

    assert state.availability(1, TWO, T0 + 1).state == READY
    assert keys_of(state, TWO, 3, T0 + 1) == [0, 0, 0]
    retired = state.key_uses(1, TWO, T0 + 2)[1]
    assert retired.state == COOLING
    assert retired.reason == (
        "key GROQ_API_KEY#2: API key rejected by provider (HTTP 401) — check the key; "
        "holds for every model of account groq/GROQ_API_KEY#2"
    )
    assert retired.until == pytest.approx(T0 + DAY)
    # Not persisted as the model's: the model itself is not cooling down.
    assert state.snapshot(1)["cooldown_until"] is None


def test_an_account_wide_signal_cools_that_key_for_every_model_of_its_account() -> None:
    state = fresh(TWO, 1, 2)
    state.on_outcome(1, QUOTA, T0, retry_after=600.0, scope=Scope.ACCOUNT, key=0)

    for model_id in (1, 2):
        assert state.availability(model_id, TWO, T0 + 1).key == 1
        assert state.key_uses(model_id, TWO, T0 + 1)[0].state == COOLING


def test_failures_of_the_model_count_on_every_key() -> None:
    state = fresh()
    for i, key in enumerate((0, 1, 0)):
        lease = state.acquire(1, TWO, T0 + i)
        assert lease is not None
        assert lease.key == key
        state.on_outcome(1, TRANSIENT, T0 + i, http_status=503, key=key)
    assert state.availability(1, TWO, T0 + 3).state == OPEN
    assert state.snapshot(1)["consecutive_failures"] == 3


def test_a_retired_model_is_retired_on_every_key() -> None:
    state = fresh()
    state.on_outcome(1, PERMANENT, T0, http_status=404, key=0)
    availability = state.availability(1, TWO, T0 + 1)
    assert availability.state == COOLING
    assert "HTTP 404" in availability.reason


def test_each_key_has_the_models_budgets_and_an_account_of_its_own() -> None:
    limits = Limits(
        requests_per_minute=1,
        account="groq/GROQ_API_KEY",
        account_quota=Quota(requests_per_day=5),
        keys=TWO.keys,
    )
    state = LiveState()
    assert [state.acquire(1, limits, T0).key for _ in range(2)] == [0, 1]  # type: ignore[union-attr]
    blocked = state.availability(1, limits, T0 + 1)
    assert blocked.state == OUT_OF_BUDGET
    assert blocked.until == pytest.approx(T0 + 60)
    assert "key GROQ_API_KEY#1: requests-per-minute budget spent" in blocked.reason
    assert state.budget(1, T0 + 1).requests_last_minute == 2
    assert state.budget(1, T0 + 1, key=1).requests_last_minute == 1
    assert state.account_budget(1, T0 + 1, key=0).requests_today == 1  # type: ignore[union-attr]
    assert state.account_budget(1, T0 + 1).requests_today == 2  # type: ignore[union-attr]
    uses = state.key_uses(1, limits, T0 + 1)
    assert [u.account for u in uses] == list(limits.keys)
    assert all(u.state == OUT_OF_BUDGET for u in uses)


def test_a_restart_gives_each_key_its_share_of_today_and_the_whole_last_minute() -> None:
    limits = Limits(requests_per_minute=4, keys=TWO.keys, account=TWO.account)
    state = LiveState()
    state.seed_budget(
        1, limits=limits, requests_last_minute=3, requests_today=7, tokens_today=9, now=T0
    )
    for key in (0, 1):
        budget = state.budget(1, T0, key=key)
        assert (budget.requests_last_minute, budget.requests_today, budget.tokens_today) == (
            3,
            4,
            5,
        )


def test_the_model_is_persisted_as_cooling_only_when_every_key_is() -> None:
    state = fresh()
    state.on_outcome(1, RATE_LIMITED, T0, retry_after=50.0, key=0)
    assert state.snapshot(1)["cooldown_until"] is None
    state.on_outcome(1, RATE_LIMITED, T0, retry_after=10.0, key=1)
    saved = state.snapshot(1)
    assert saved["cooldown_until"] == pytest.approx(T0 + 10)
    assert saved["cooldown_outcome"] == RATE_LIMITED


def test_one_key_behaves_as_before_under_the_plain_variable_name() -> None:
    limits = Limits(account="groq/GROQ_API_KEY")
    state = LiveState()
    state.on_outcome(1, PERMANENT, T0, http_status=401, key=0)
    availability = state.availability(1, limits, T0 + 1)
    assert availability.state == COOLING
    assert availability.reason == "API key rejected by provider (HTTP 401) — check the key"
    assert [u.key_id for u in state.key_uses(1, limits, T0 + 1)] == ["GROQ_API_KEY"]
    assert state.snapshot(1)["cooldown_outcome"] == PERMANENT


# ---- reading the keys -----------------------------------------------------------------------


def _model(**fields: object) -> common_pb2.Model:
    values: dict[str, object] = {
        "id": 7,
        "name": "groq/m",
        "provider": "groq",
        "api_endpoint": "https://api.groq.com/openai/v1",
        "api_format": common_pb2.API_FORMAT_OPENAI,
        "provider_model_id": "m",
        "api_key_env": "GROQ_API_KEY",
        "is_active": True,
    }
    return common_pb2.Model(**(values | fields))


def test_a_comma_separated_list_is_several_keys_named_by_position() -> None:
    assert split_keys(" gsk-one-1234 ,, gsk-two-5678,gsk-one-1234 ") == [
        (1, "gsk-one-1234"),
        (3, "gsk-two-5678"),
    ]
    assert key_ids("GROQ_API_KEY", "gsk-only-1234") == [("GROQ_API_KEY", "gsk-only-1234")]
    targets = resolve_targets(_model(), {"GROQ_API_KEY": "gsk-one-1234,,gsk-two-5678"})
    assert [(t.key_id, t.api_key) for t in targets] == [
        ("GROQ_API_KEY#1", "gsk-one-1234"),
        ("GROQ_API_KEY#3", "gsk-two-5678"),
    ]
    assert all("gsk-" not in repr(t) for t in targets)
    assert secrets.redact("gsk-one-1234 and gsk-two-5678") == "[REDACTED] and [REDACTED]"


def test_a_variable_with_only_separators_holds_no_key() -> None:
    with pytest.raises(MissingCredentials, match=r"^GROQ_API_KEY is not set$"):
        resolve_targets(_model(), {"GROQ_API_KEY": " , ,"})


def test_the_catalog_gives_each_key_an_account() -> None:
    catalog = Catalog.build([_model()], {"GROQ_API_KEY": "gsk-one-1234,gsk-two-5678"})
    limits = catalog.entries[7].spec.limits
    assert limits.keys == ("groq/GROQ_API_KEY#1", "groq/GROQ_API_KEY#2")
    assert [limits.key_id(k) for k in (0, 1)] == ["GROQ_API_KEY#1", "GROQ_API_KEY#2"]
    assert catalog.entries[7].target_for(1).api_key == "gsk-two-5678"
    single = Catalog.build([_model()], {"GROQ_API_KEY": "gsk-one-1234"}).entries[7].spec.limits
    assert single.keys == ()
    assert single.key_accounts == ("groq/GROQ_API_KEY",)


def test_secrets_from_the_environment_register_each_listed_key() -> None:
    secrets.register_from_environment({"ACME_API_KEY": "acme-first-111,acme-second-222"})
    assert secrets.redact("sent acme-second-222") == "sent [REDACTED]"


# ---- conduct: a refused key hands the request to the model's next key ------------------------


def _conduct(limits: Limits) -> tuple[Conduct, list[float]]:
    clock = [T0]
    live = LiveState()
    conductor = Conductor(live, StatsBook(), clock=lambda: clock[0], rng=random.Random(0))
    seats = {
        1: Seat(
            ModelSpec(
                model_id=1,
                name="groq/m",
                provider="groq",
                is_active=True,
                tags=frozenset(),
                supports_json=True,
                context_tokens=8000,
                max_output_tokens=100,
                timeout_s=10.0,
                limits=limits,
            )
        )
    }
    return conductor.begin(seats, Needs(), deadline=T0 + 30), clock


def _refused(step: Try, at: float, outcome: int, status: int) -> Outcome:
    return Outcome(step.spec, outcome, at, at, http_status=status, key=step.key)


@pytest.mark.parametrize(
    ("outcome", "status"), [(RATE_LIMITED, 429), (QUOTA, 429), (PERMANENT, 401), (PERMANENT, 402)]
)
def test_a_refused_key_hands_the_same_request_to_the_next_key(outcome: int, status: int) -> None:
    conduct, clock = _conduct(TWO)
    first = conduct.next_step()
    assert isinstance(first, Try)
    assert first.key == 0
    conduct.record(_refused(first, clock[0], outcome, status))

    second = conduct.next_step()
    assert isinstance(second, Try)
    assert (second.spec.model_id, second.key) == (1, 1)
    conduct.record(_refused(second, clock[0], outcome, status))
    # Both keys refused: nothing is left before the first key is usable again.
    assert not isinstance(conduct.next_step(), Try)


def test_a_timeout_of_the_model_is_not_retried_on_another_key() -> None:
    conduct, clock = _conduct(TWO)
    first = conduct.next_step()
    assert isinstance(first, Try)
    conduct.record(_refused(first, clock[0], common_pb2.OUTCOME_TIMEOUT, 0))
    assert isinstance(conduct.next_step(), GiveUp)
