"""Tests of live per-model state: reactions per outcome, circuit, budgets, persistence."""

from dataclasses import replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from aiselector.v1 import common_pb2, selector_pb2
from services.selector.providers import Scope
from services.selector.state import (
    DAY,
    Limits,
    LiveState,
    Quota,
    next_utc_midnight,
)

SUCCESS = common_pb2.OUTCOME_SUCCESS
RATE_LIMITED = common_pb2.OUTCOME_RATE_LIMITED
QUOTA = common_pb2.OUTCOME_QUOTA_EXHAUSTED
TRANSIENT = common_pb2.OUTCOME_TRANSIENT
TIMEOUT = common_pb2.OUTCOME_TIMEOUT
PERMANENT = common_pb2.OUTCOME_PERMANENT
BAD_REQUEST = common_pb2.OUTCOME_BAD_REQUEST
BAD_ANSWER = common_pb2.OUTCOME_BAD_ANSWER
READY = selector_pb2.MODEL_STATE_READY
COOLING = selector_pb2.MODEL_STATE_COOLING_DOWN
OPEN = selector_pb2.MODEL_STATE_CIRCUIT_OPEN
HALF_OPEN = selector_pb2.MODEL_STATE_CIRCUIT_HALF_OPEN
OUT_OF_BUDGET = selector_pb2.MODEL_STATE_OUT_OF_BUDGET
NONE = Limits()
T0 = 20_000 * DAY + 3600.0


def fail(state: LiveState, times: int, at: float, outcome: int = TRANSIENT) -> None:
    for _ in range(times):
        assert state.acquire(1, NONE, at)
        state.on_outcome(1, outcome, at)


def test_a_fresh_model_is_ready() -> None:
    assert LiveState().availability(1, NONE, T0).state == READY


def test_rate_limit_cools_down_exactly_as_long_as_the_provider_said() -> None:
    state = LiveState()
    state.on_outcome(1, RATE_LIMITED, T0, retry_after=2.0, http_status=429)
    availability = state.availability(1, NONE, T0 + 1.9)
    assert availability.state == COOLING
    assert availability.until == pytest.approx(T0 + 2.0)
    assert "429" in availability.reason
    assert state.availability(1, NONE, T0 + 2.0).state == READY
    assert state.snapshot(1)["consecutive_failures"] == 0


def test_rate_limit_without_retry_after_backs_off_up_to_the_default() -> None:
    state = LiveState(min_rate_limit_seconds=5.0, default_rate_limit_seconds=45.0)
    now = T0
    cooldowns = []
    for _ in range(6):
        state.on_outcome(1, RATE_LIMITED, now)
        until = state.availability(1, NONE, now).until
        assert until is not None
        cooldowns.append(until - now)
        now = until
    assert cooldowns == [5.0, 10.0, 20.0, 40.0, 45.0, 45.0]
    state.on_outcome(1, SUCCESS, now)
    state.on_outcome(1, RATE_LIMITED, now)
    assert state.availability(1, NONE, now + 5.0).state == READY


def test_quota_exhausted_cools_down_until_utc_midnight() -> None:
    state = LiveState()
    state.on_outcome(1, QUOTA, T0)
    availability = state.availability(1, NONE, T0 + 10)
    assert availability.state == COOLING
    assert availability.until == next_utc_midnight(T0)
    state.on_outcome(2, QUOTA, T0, retry_after=120.0)
    assert state.availability(2, NONE, T0 + 121).state == READY


def test_consecutive_failures_open_the_circuit_then_one_trial_at_a_time() -> None:
    state = LiveState(failure_threshold=3, circuit_open_seconds=30.0)
    fail(state, 2, T0, TRANSIENT)
    assert state.availability(1, NONE, T0).state == READY
    fail(state, 1, T0, BAD_ANSWER)
    opened = state.availability(1, NONE, T0 + 29)
    assert opened.state == OPEN
    assert opened.until == pytest.approx(T0 + 30)
    assert not state.acquire(1, NONE, T0 + 29)
    assert state.availability(1, NONE, T0 + 30).state == HALF_OPEN
    assert state.acquire(1, NONE, T0 + 30)
    assert state.availability(1, NONE, T0 + 31).state == OPEN
    assert not state.acquire(1, NONE, T0 + 31)
    state.on_outcome(1, SUCCESS, T0 + 32)
    assert state.availability(1, NONE, T0 + 32).state == READY
    assert state.snapshot(1)["circuit_opened_at"] is None


def test_a_timeout_opens_the_circuit_at_once() -> None:
    state = LiveState(failure_threshold=3, circuit_open_seconds=30.0)
    fail(state, 1, T0, TIMEOUT)
    opened = state.availability(1, NONE, T0 + 1)
    assert opened.state == OPEN
    assert opened.until == pytest.approx(T0 + 30)
    assert state.availability(1, NONE, T0 + 30).state == HALF_OPEN
    patient = LiveState(failure_threshold=3, timeout_threshold=2)
    fail(patient, 1, T0, TIMEOUT)
    assert patient.availability(1, NONE, T0).state == READY
    fail(patient, 1, T0, TIMEOUT)
    assert patient.availability(1, NONE, T0).state == OPEN


def test_a_success_does_not_end_a_running_retry_after() -> None:
    state = LiveState()
    assert state.acquire(1, NONE, T0)
    assert state.acquire(1, NONE, T0)
    state.on_outcome(1, RATE_LIMITED, T0 + 1, retry_after=30.0, http_status=429)
    state.on_outcome(1, SUCCESS, T0 + 2)
    availability = state.availability(1, NONE, T0 + 2)
    assert availability.state == COOLING
    assert availability.until == pytest.approx(T0 + 31)
    assert not state.acquire(1, NONE, T0 + 30.9)
    assert state.acquire(1, NONE, T0 + 31)
    state.on_outcome(1, SUCCESS, T0 + 32)
    assert state.availability(1, NONE, T0 + 32).state == READY


def test_a_failed_trial_reopens_the_circuit_for_longer() -> None:
    state = LiveState(failure_threshold=2, circuit_open_seconds=10.0, circuit_max_open_seconds=25.0)
    fail(state, 2, T0)
    assert state.acquire(1, NONE, T0 + 10)
    state.on_outcome(1, TIMEOUT, T0 + 15)
    assert state.availability(1, NONE, T0 + 34).state == OPEN
    assert state.availability(1, NONE, T0 + 35).state == HALF_OPEN
    assert state.acquire(1, NONE, T0 + 35)
    state.on_outcome(1, TRANSIENT, T0 + 35)
    assert state.availability(1, NONE, T0 + 59).state == OPEN
    assert state.availability(1, NONE, T0 + 60).state == HALF_OPEN


def test_a_lost_trial_slot_is_freed_after_the_trial_timeout() -> None:
    state = LiveState(failure_threshold=1, circuit_open_seconds=5.0, trial_timeout_seconds=20.0)
    fail(state, 1, T0)
    assert state.acquire(1, NONE, T0 + 5)
    assert not state.acquire(1, NONE, T0 + 24)
    assert state.acquire(1, NONE, T0 + 25)


def test_permanent_errors_cool_down_long_with_a_readable_reason() -> None:
    state = LiveState(permanent_cooldown_seconds=86400.0)
    state.on_outcome(1, PERMANENT, T0, http_status=404)
    availability = state.availability(1, NONE, T0 + 3600)
    assert availability.state == COOLING
    assert "model not found at provider" in availability.reason
    assert "update the catalog" in availability.reason
    assert availability.until == pytest.approx(T0 + 86400)
    state.on_outcome(2, PERMANENT, T0, http_status=402)
    assert "credit" in state.availability(2, NONE, T0).reason


def test_a_bad_request_does_not_punish_the_model() -> None:
    state = LiveState(failure_threshold=1)
    for _ in range(5):
        state.on_outcome(1, BAD_REQUEST, T0, http_status=422)
    assert state.availability(1, NONE, T0).state == READY
    assert state.snapshot(1)["consecutive_failures"] == 0
    assert state.take_dirty() == set()


def test_a_success_resets_consecutive_failures() -> None:
    state = LiveState(failure_threshold=3)
    fail(state, 2, T0)
    state.on_outcome(1, SUCCESS, T0)
    fail(state, 2, T0)
    assert state.availability(1, NONE, T0).state == READY


def test_a_short_rate_limit_does_not_shorten_a_long_permanent_cooldown() -> None:
    state = LiveState()
    state.on_outcome(1, PERMANENT, T0, http_status=403)
    state.on_outcome(1, RATE_LIMITED, T0 + 1, retry_after=5.0)
    assert state.availability(1, NONE, T0 + 10).state == COOLING
    state.on_outcome(2, RATE_LIMITED, T0, retry_after=60.0)
    state.on_outcome(2, RATE_LIMITED, T0 + 1, retry_after=2.0)
    assert state.availability(2, NONE, T0 + 3.5).state == READY


def test_requests_per_minute_are_paced_before_any_429() -> None:
    state = LiveState(minute_seconds=1.0)
    limits = Limits(requests_per_minute=2)
    assert state.acquire(1, limits, T0)
    assert state.acquire(1, limits, T0 + 0.2)
    blocked = state.availability(1, limits, T0 + 0.5)
    assert blocked.state == OUT_OF_BUDGET
    assert blocked.until == pytest.approx(T0 + 1.0)
    assert not state.acquire(1, limits, T0 + 0.5)
    assert state.acquire(1, limits, T0 + 1.0)
    assert state.budget(1, T0 + 1.0).requests_last_minute == 2


def test_requests_per_day_reset_at_utc_midnight() -> None:
    state = LiveState()
    limits = Limits(requests_per_day=3)
    for index in range(3):
        assert state.acquire(1, limits, T0 + index * 100)
    blocked = state.availability(1, limits, T0 + 1000)
    assert blocked.state == OUT_OF_BUDGET
    assert blocked.until == next_utc_midnight(T0)
    assert state.acquire(1, limits, next_utc_midnight(T0))
    assert state.budget(1, next_utc_midnight(T0)).requests_today == 1


def test_tokens_per_day_count_the_estimate_until_the_real_use_is_known() -> None:
    state = LiveState()
    limits = Limits(tokens_per_day=1000)
    assert state.acquire(1, limits, T0, est_tokens=600)
    assert state.availability(1, limits, T0, est_tokens=500).state == OUT_OF_BUDGET
    assert state.availability(1, limits, T0, est_tokens=400).state == READY
    state.on_outcome(1, SUCCESS, T0 + 1, tokens=200)
    assert state.budget(1, T0 + 1).tokens_today == 200
    assert state.acquire(1, limits, T0 + 2, est_tokens=800)
    state.on_outcome(1, TRANSIENT, T0 + 3)
    assert state.budget(1, T0 + 3).tokens_today == 200


def test_seeded_budget_survives_a_restart_and_only_goes_up() -> None:
    state = LiveState(minute_seconds=60.0)
    limits = Limits(requests_per_minute=5, requests_per_day=100)
    state.seed_budget(
        1, limits=limits, requests_last_minute=5, requests_today=40, tokens_today=9, now=T0
    )
    assert state.availability(1, limits, T0 + 30).state == OUT_OF_BUDGET
    assert state.availability(1, limits, T0 + 60).state == READY
    state.seed_budget(
        1, limits=limits, requests_last_minute=0, requests_today=10, tokens_today=0, now=T0 + 60
    )
    assert state.budget(1, T0 + 60) == state.budget(1, T0 + 61)
    assert state.budget(1, T0 + 60).requests_today == 40
    state.seed_budget(
        1, limits=limits, requests_last_minute=0, requests_today=100, tokens_today=0, now=T0 + 61
    )
    assert state.availability(1, limits, T0 + 61).state == OUT_OF_BUDGET


def test_snapshot_restore_round_trip_and_dirty_tracking() -> None:
    state = LiveState(failure_threshold=2)
    fail(state, 2, T0)
    state.on_outcome(1, PERMANENT, T0, http_status=404)
    assert state.take_dirty() == {1}
    assert state.take_dirty() == set()
    saved = state.snapshot(1)
    assert saved["consecutive_failures"] == 2
    assert saved["circuit_opened_at"] == T0
    assert saved["cooldown_outcome"] == PERMANENT
    restarted = LiveState(failure_threshold=2)
    restarted.restore(1, **saved)
    assert restarted.snapshot(1) == saved
    assert restarted.availability(1, NONE, T0 + 3600).state == COOLING
    assert restarted.take_dirty() == set()


def test_daily_budget_share_and_oldest_request_in_flight_are_reported() -> None:
    state = LiveState()
    limits = Limits(requests_per_day=10, tokens_per_day=1000)
    assert state.availability(1, limits, T0).day_share_used == 0.0
    assert state.acquire(1, limits, T0, est_tokens=500)
    assert state.acquire(1, limits, T0 + 1, est_tokens=100)
    availability = state.availability(1, limits, T0 + 2)
    assert availability.day_share_used == pytest.approx(0.6)
    assert availability.in_flight_since == T0
    state.on_outcome(1, SUCCESS, T0 + 3, tokens=50)
    assert state.availability(1, limits, T0 + 3).in_flight_since == T0 + 1
    state.on_outcome(1, SUCCESS, T0 + 4, tokens=50)
    assert state.availability(1, limits, T0 + 4).in_flight_since is None
    assert state.availability(1, limits, T0 + 4).day_share_used == pytest.approx(0.2)


def test_a_429_without_delay_teaches_an_undeclared_per_minute_limit_for_a_while() -> None:
    state = LiveState(min_rate_limit_seconds=1.0, learned_limit_seconds=600.0, minute_seconds=60.0)
    for index in range(4):
        assert state.acquire(1, NONE, T0 + index)
    state.on_outcome(1, RATE_LIMITED, T0 + 4)
    learned = state.availability(1, NONE, T0 + 30)
    assert learned.state == OUT_OF_BUDGET
    assert "3/min" in learned.reason
    assert "learned" in learned.reason
    assert learned.until == pytest.approx(T0 + 61)
    # The provider counts what it accepted: the refused request leaves room for one more.
    assert state.acquire(1, NONE, T0 + 61)
    assert state.acquire(1, NONE, T0 + 61.5)
    assert not state.acquire(1, NONE, T0 + 61.7)
    for index in range(6):
        assert state.acquire(1, NONE, T0 + 700 + index)


def test_a_probe_counts_in_the_budget_even_when_the_circuit_is_open() -> None:
    state = LiveState(failure_threshold=1)
    limits = Limits(requests_per_day=5)
    fail(state, 1, T0)
    assert state.availability(1, limits, T0 + 1).state == OPEN
    state.acquire_probe(1, T0 + 1)
    assert state.budget(1, T0 + 1).requests_today == 2
    state.on_outcome(1, SUCCESS, T0 + 2)
    assert state.availability(1, limits, T0 + 2).state == READY


def test_by_default_a_circuit_opens_for_10_s_and_at_most_20_s() -> None:
    state = LiveState()
    fail(state, 1, T0, TIMEOUT)
    assert state.availability(1, NONE, T0 + 9.9).state == OPEN
    assert state.availability(1, NONE, T0 + 10).state == HALF_OPEN
    for sent, open_seconds in ((T0 + 10, 20.0), (T0 + 30, 20.0), (T0 + 50, 20.0)):
        assert state.acquire(1, NONE, sent)
        state.on_outcome(1, TRANSIENT, sent + 0.5, started=sent)
        assert state.availability(1, NONE, sent + open_seconds - 0.1).state == OPEN
        assert state.availability(1, NONE, sent + open_seconds).state == HALF_OPEN


def test_a_burst_of_failures_in_flight_together_counts_once() -> None:
    state = LiveState(failure_threshold=3)
    sent = [T0 + i * 0.01 for i in range(30)]
    for at in sent:
        assert state.acquire(1, NONE, at)
    for index, at in enumerate(sent):
        state.on_outcome(1, TRANSIENT, T0 + 1 + index * 0.01, started=at)
    assert state.snapshot(1)["consecutive_failures"] == 1
    assert state.availability(1, NONE, T0 + 2).state == READY
    # Requests sent after a failure was seen are news: two more open the circuit.
    for at in (T0 + 2, T0 + 3):
        assert state.acquire(1, NONE, at)
        state.on_outcome(1, TRANSIENT, at + 0.5, started=at)
    assert state.snapshot(1)["consecutive_failures"] == 3
    assert state.availability(1, NONE, T0 + 3.6).state == OPEN


def test_stragglers_of_a_silent_provider_do_not_lengthen_the_open_time() -> None:
    state = LiveState(circuit_open_seconds=10.0, circuit_max_open_seconds=30.0)
    sent = [T0 + i for i in range(30)]
    for at in sent:
        assert state.acquire(1, NONE, at)
    for at in sent:  # each times out 30 s after it was sent
        state.on_outcome(1, TIMEOUT, at + 30, started=at)
    saved = state.snapshot(1)
    assert (saved["consecutive_failures"], saved["circuit_opened_at"]) == (1, T0 + 30)
    assert state.availability(1, NONE, T0 + 40).state == HALF_OPEN


def test_a_stragglers_success_neither_closes_the_circuit_nor_frees_the_trial() -> None:
    state = LiveState(failure_threshold=1, circuit_open_seconds=10.0)
    for sent in (T0, T0 + 0.5):  # in flight before the outage was seen
        assert state.acquire(1, NONE, sent)
    fail(state, 1, T0 + 1)
    state.on_outcome(1, SUCCESS, T0 + 2, started=T0)
    assert state.availability(1, NONE, T0 + 2).state == OPEN
    assert state.acquire(1, NONE, T0 + 11)  # the trial
    assert not state.acquire(1, NONE, T0 + 11.5)
    state.on_outcome(1, TRANSIENT, T0 + 12, started=T0 + 0.5)
    assert not state.acquire(1, NONE, T0 + 12)  # still one trial at a time
    state.on_outcome(1, SUCCESS, T0 + 13, started=T0 + 11)
    assert state.availability(1, NONE, T0 + 13).state == READY
    assert state.snapshot(1)["consecutive_failures"] == 0


def test_a_provider_back_after_an_outage_is_tried_within_30_s() -> None:
    state = LiveState(circuit_open_seconds=10.0, circuit_max_open_seconds=30.0)
    now = T0
    fail(state, 1, now, TIMEOUT)
    back_at = T0 + 300
    while True:
        now += 0.5  # traffic: a request every half second
        if not state.acquire(1, NONE, now):
            continue
        if now >= back_at:
            break
        state.on_outcome(1, TRANSIENT, now + 0.1, started=now)
    assert now - back_at <= 30.0
    assert state.snapshot(1)["consecutive_failures"] < 20


# ---- account budgets, tokens per minute, account-wide signals, the provider's day -------------

ACCOUNT = Quota(requests_per_minute=3, requests_per_day=5)
SHARED = Limits(account="openrouter/OPENROUTER_API_KEY", account_quota=ACCOUNT)


def test_an_account_budget_is_shared_by_its_models_and_names_the_account() -> None:
    state = LiveState(minute_seconds=60.0)
    for model_id, at in ((1, T0), (2, T0 + 1), (1, T0 + 2)):
        assert state.acquire(model_id, SHARED, at)
    blocked = state.availability(2, SHARED, T0 + 3)
    assert blocked.state == OUT_OF_BUDGET
    assert "account openrouter/OPENROUTER_API_KEY" in blocked.reason
    assert "3/min" in blocked.reason
    assert blocked.until == pytest.approx(T0 + 60)
    assert not state.acquire(2, SHARED, T0 + 3)
    # A model of another account is not affected; the minute's end frees the account.
    assert state.acquire(3, Limits(account="groq/GROQ_API_KEY"), T0 + 3)
    assert state.acquire(2, SHARED, T0 + 60)
    assert state.acquire(1, SHARED, T0 + 61)
    daily = state.availability(2, SHARED, T0 + 200)
    assert daily.state == OUT_OF_BUDGET
    assert "5/day" in daily.reason
    assert daily.until == next_utc_midnight(T0)
    assert state.budget(1, T0 + 200).requests_today == 3
    assert state.account_budget(1, T0 + 200) == state.account_budget(2, T0 + 200)
    assert state.account_budget(1, T0 + 200).requests_today == 5
    assert state.account_budget(3, T0) is not None
    assert LiveState().account_budget(9, T0) is None


def test_a_model_limit_and_its_account_limit_both_hold() -> None:
    state = LiveState()
    limits = replace(SHARED, requests_per_minute=1)
    assert state.acquire(1, limits, T0)
    assert "requests-per-minute budget spent (1/min)" in state.availability(1, limits, T0).reason
    assert state.acquire(2, limits, T0)
    assert state.acquire(3, limits, T0)
    assert "account" in state.availability(4, limits, T0).reason


def test_tokens_per_minute_count_what_each_request_asks_for() -> None:
    state = LiveState(minute_seconds=60.0)
    limits = Limits(tokens_per_minute=8000)
    assert state.acquire(1, limits, T0, est_tokens=3000)
    assert state.acquire(1, limits, T0 + 10, est_tokens=3000)
    # The real use is smaller, but the provider counted max_tokens up front: so do we.
    state.on_outcome(1, SUCCESS, T0 + 11, tokens=500)
    blocked = state.availability(1, limits, T0 + 20, est_tokens=2500)
    assert blocked.state == OUT_OF_BUDGET
    assert "tokens-per-minute" in blocked.reason
    assert blocked.until == pytest.approx(T0 + 60)
    assert state.availability(1, limits, T0 + 20, est_tokens=2000).state == READY
    assert state.budget(1, T0 + 20).tokens_last_minute == 6000
    assert state.acquire(1, limits, T0 + 60, est_tokens=2500)
    # A request larger than the whole minute's budget never fits.
    too_big = state.availability(1, limits, T0 + 500, est_tokens=8001)
    assert too_big.state == OUT_OF_BUDGET
    assert too_big.until is None


def test_an_account_tokens_per_minute_budget_is_shared() -> None:
    state = LiveState()
    limits = Limits(account="cerebras/KEY", account_quota=Quota(tokens_per_minute=10_000))
    assert state.acquire(1, limits, T0, est_tokens=6000)
    assert not state.acquire(2, limits, T0 + 1, est_tokens=6000)
    assert state.acquire(2, limits, T0 + 1, est_tokens=4000)
    assert state.account_budget(2, T0 + 1).tokens_last_minute == 10_000


def test_tokens_in_flight_are_released_from_the_account_for_the_model_that_ended() -> None:
    state = LiveState()
    limits = Limits(account="a/KEY", account_quota=Quota(tokens_per_day=10_000))
    assert state.acquire(1, limits, T0, est_tokens=4000)
    assert state.acquire(2, limits, T0, est_tokens=100)
    state.on_outcome(2, SUCCESS, T0 + 1, tokens=80)
    # Model 1's 4000 are still reserved on the account, model 2's 100 were replaced by its 80.
    assert state.account_budget(1, T0 + 1).tokens_today == 4080
    state.on_outcome(1, TRANSIENT, T0 + 2)
    assert state.account_budget(1, T0 + 2).tokens_today == 80


def _siblings(state: LiveState, now: float) -> None:
    for model_id in (1, 2, 3):
        state.availability(model_id, SHARED, now)
    state.availability(4, Limits(account="groq/GROQ_API_KEY"), now)


@pytest.mark.parametrize(
    ("outcome", "retry_after", "until"),
    [
        (PERMANENT, None, T0 + 86400.0),
        (QUOTA, None, next_utc_midnight(T0)),
        (QUOTA, 600.0, T0 + 600.0),
        (RATE_LIMITED, 30.0, T0 + 30.0),
    ],
)
def test_an_account_scope_outcome_cools_every_model_of_the_account(
    outcome: int, retry_after: float | None, until: float
) -> None:
    state = LiveState()
    _siblings(state, T0)
    state.take_dirty()
    state.on_outcome(1, outcome, T0, retry_after=retry_after, http_status=401, scope=Scope.ACCOUNT)
    for model_id in (1, 2, 3):
        cooled = state.availability(model_id, SHARED, T0 + 1)
        assert cooled.state == COOLING, model_id
        assert cooled.until == pytest.approx(until)
        assert "every model of account openrouter/OPENROUTER_API_KEY" in cooled.reason
    assert state.take_dirty() == {1, 2, 3}
    assert state.availability(4, Limits(account="groq/GROQ_API_KEY"), T0 + 1).state == READY
    # A model that joins the account later is cooled too.
    assert state.availability(5, SHARED, T0 + 2).state == COOLING


def test_a_401_on_one_model_names_the_key_on_all() -> None:
    state = LiveState()
    _siblings(state, T0)
    state.on_outcome(1, PERMANENT, T0, http_status=401, scope=Scope.ACCOUNT)
    assert "API key rejected" in state.availability(3, SHARED, T0).reason


def test_a_model_scope_outcome_cools_only_that_model() -> None:
    state = LiveState()
    _siblings(state, T0)
    state.on_outcome(1, QUOTA, T0)
    assert state.availability(1, SHARED, T0 + 1).state == COOLING
    assert state.availability(2, SHARED, T0 + 1).state == READY


def test_an_account_wide_short_wait_never_cuts_a_siblings_own_longer_wait() -> None:
    state = LiveState()
    _siblings(state, T0)
    state.on_outcome(2, RATE_LIMITED, T0, retry_after=120.0)
    state.on_outcome(1, RATE_LIMITED, T0 + 1, retry_after=5.0, scope=Scope.ACCOUNT)
    assert state.availability(1, SHARED, T0 + 7).state == READY
    assert state.availability(2, SHARED, T0 + 7).until == pytest.approx(T0 + 120.0)


PACIFIC = Limits(requests_per_day=20, zone="America/Los_Angeles")


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


@pytest.mark.parametrize(
    ("before", "midnight"),
    [
        # Standard time: 00:00 PST is 08:00 UTC.
        ("2026-12-01T07:59:59+00:00", "2026-12-01T08:00:00+00:00"),
        # Summer: 00:00 PDT is 07:00 UTC.
        ("2026-07-01T06:59:59+00:00", "2026-07-01T07:00:00+00:00"),
        # The day clocks go forward (2026-03-08 is 23 hours long) and back (2026-11-01, 25 hours).
        ("2026-03-09T06:59:59+00:00", "2026-03-09T07:00:00+00:00"),
        ("2026-11-02T07:59:59+00:00", "2026-11-02T08:00:00+00:00"),
    ],
)
def test_a_pacific_daily_budget_resets_at_pacific_midnight(before: str, midnight: str) -> None:
    state = LiveState()
    start, reset = _epoch(before), _epoch(midnight)
    state.seed_budget(
        1, limits=PACIFIC, requests_last_minute=0, requests_today=20, tokens_today=0, now=start
    )
    blocked = state.availability(1, PACIFIC, start)
    assert blocked.state == OUT_OF_BUDGET
    assert blocked.until == reset
    # UTC midnight passed long ago (or is hours away): it changes nothing.
    assert state.availability(1, PACIFIC, reset - 0.5).state == OUT_OF_BUDGET
    assert state.acquire(1, PACIFIC, reset)
    assert state.budget(1, reset).requests_today == 1
    # The next day is a Pacific day too: its budget lasts until the following Pacific midnight.
    for _ in range(19):
        assert state.acquire(1, PACIFIC, reset + 3600)
    pacific = ZoneInfo("America/Los_Angeles")
    tomorrow = datetime.fromtimestamp(reset, pacific).date() + timedelta(days=1)
    following = datetime.combine(tomorrow, datetime.min.time(), tzinfo=pacific).timestamp()
    assert state.availability(1, PACIFIC, reset + 3600).until == following


def test_a_quota_without_a_wait_cools_until_the_providers_midnight() -> None:
    state = LiveState()
    now = _epoch("2026-11-01T12:00:00+00:00")  # 05:00 PDT on the 25-hour day
    state.availability(1, PACIFIC, now)
    state.on_outcome(1, QUOTA, now)
    assert state.availability(1, PACIFIC, now).until == _epoch("2026-11-02T08:00:00+00:00")


def test_the_share_of_the_providers_day_that_passed_is_reported() -> None:
    state = LiveState()
    nine_am_pacific = _epoch("2026-12-01T17:00:00+00:00")
    availability = state.availability(1, PACIFIC, nine_am_pacific)
    assert availability.day_elapsed == pytest.approx(9 / 24)
    assert state.availability(2, NONE, nine_am_pacific).day_elapsed == pytest.approx(17 / 24)


def test_seeding_a_model_raises_its_account_by_what_the_model_went_up() -> None:
    state = LiveState()
    for model_id, today in ((1, 30), (2, 15)):
        state.seed_budget(
            model_id,
            limits=SHARED,
            requests_last_minute=1,
            requests_today=today,
            tokens_today=100,
            now=T0,
        )
    account = state.account_budget(1, T0)
    assert (account.requests_today, account.requests_last_minute, account.tokens_today) == (
        45,
        2,
        200,
    )
    state.seed_budget(
        1, limits=SHARED, requests_last_minute=1, requests_today=30, tokens_today=100, now=T0
    )
    assert state.account_budget(1, T0).requests_today == 45


def test_a_declared_per_minute_budget_paces_429s_of_a_model_that_answers() -> None:
    state = LiveState(min_rate_limit_seconds=2.0, minute_seconds=60.0)
    paced = Limits(requests_per_minute=1000)
    assert state.acquire(1, paced, T0)
    state.on_outcome(1, SUCCESS, T0 + 0.5, started=T0)
    now = T0 + 1.0
    while now < T0 + 59.0:
        assert state.acquire(1, paced, now)
        state.on_outcome(1, RATE_LIMITED, now + 0.1, started=now)
        now += 1.0
        assert state.availability(1, paced, now).state == READY  # no pause: the budget paces
    # Nothing answered for a minute: the 429s back off now.
    now = T0 + 61.0
    assert state.acquire(1, paced, now)
    state.on_outcome(1, RATE_LIMITED, now + 0.1, started=now)
    assert state.availability(1, paced, now + 1.0).state == COOLING


def test_without_a_success_a_429_without_delay_backs_off_even_with_a_budget() -> None:
    state = LiveState(min_rate_limit_seconds=2.0)
    paced = Limits(requests_per_minute=1000)
    assert state.acquire(1, paced, T0)
    state.on_outcome(1, RATE_LIMITED, T0 + 0.1, started=T0)
    assert state.availability(1, paced, T0 + 1.0).state == COOLING


def test_after_learning_a_limit_a_429_without_delay_costs_no_pause() -> None:
    state = LiveState(min_rate_limit_seconds=2.0, minute_seconds=60.0)
    for index in range(5):
        assert state.acquire(1, NONE, T0 + index)
    state.on_outcome(1, RATE_LIMITED, T0 + 5, started=T0 + 4)
    # Four accepted in the minute: the learned 4/min says when the next may go, no cooldown.
    blocked = state.availability(1, NONE, T0 + 5.5)
    assert blocked.state == OUT_OF_BUDGET
    assert "4/min" in blocked.reason
    assert blocked.until == pytest.approx(T0 + 60)
