"""Tests of the selection policy: gates, score bounds, ranking, near-tie spreading and pins."""

import random
from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from aiselector.v1 import selector_pb2
from services.selector.policy import (
    DAY,
    NEAR_TIE,
    NO_DATA_SCORE,
    Candidate,
    ModelSpec,
    Needs,
    ahead_of_pace,
    earliest_until,
    estimate_tokens,
    plan,
    prompt_room,
    score,
)
from services.selector.state import Availability, Limits, Quota
from services.selector.stats import ModelWindow

READY = Availability(selector_pb2.MODEL_STATE_READY)
NOW = 1_780_000_000.0


def spec(model_id: int, **overrides: object) -> ModelSpec:
    fields: dict = {
        "model_id": model_id,
        "name": f"p{model_id}/m{model_id}",
        "provider": f"p{model_id}",
        "is_active": True,
        "tags": frozenset({"json", "code"}),
        "supports_json": True,
        "context_tokens": 8000,
        "max_output_tokens": 1000,
        "timeout_s": 30.0,
        "limits": Limits(),
    }
    fields.update(overrides)
    return ModelSpec(**fields)


def proven(successes: float, failures: float = 0.0, latency_s: float = 1.0) -> ModelWindow:
    return ModelWindow(
        successes=successes,
        failures=failures,
        total=int(successes + failures),
        success_count=int(successes),
        failure_count=int(failures),
        rate_limited_count=0,
        mean_latency_s=latency_s,
        median_latency_s=latency_s,
    )


def candidate(model_id: int, window: ModelWindow | None = None, **kwargs: object) -> Candidate:
    availability = kwargs.pop("availability", READY)
    credentials_error = kwargs.pop("credentials_error", "")
    return Candidate(
        spec=spec(model_id, **kwargs),
        window=window or ModelWindow(),
        availability=availability,  # type: ignore[arg-type]
        credentials_error=credentials_error,  # type: ignore[arg-type]
    )


windows = st.builds(
    ModelWindow,
    successes=st.floats(min_value=0, max_value=1e9, allow_nan=False),
    failures=st.floats(min_value=0, max_value=1e9, allow_nan=False),
    total=st.integers(min_value=0, max_value=10**9),
    success_count=st.integers(min_value=0, max_value=10**9),
    failure_count=st.integers(min_value=0, max_value=10**9),
    rate_limited_count=st.integers(min_value=0, max_value=10**9),
    mean_latency_s=st.none() | st.floats(min_value=0, max_value=1e6, allow_nan=False),
    median_latency_s=st.none() | st.floats(min_value=0, allow_nan=False, allow_infinity=True),
    recent_latency_s=st.none() | st.floats(min_value=0, max_value=1e6, allow_nan=False),
    recent_weight=st.floats(min_value=0, max_value=1),
)


@given(windows)
def test_every_score_is_between_zero_and_one(window: ModelWindow) -> None:
    assert 0.0 <= score(window) <= 1.0


@given(
    successes=st.floats(min_value=5, max_value=1e6),
    failure_share=st.floats(min_value=0, max_value=0.1),
    latency_s=st.floats(min_value=0, max_value=10),
)
def test_a_model_without_data_never_outranks_a_proven_good_one(
    successes: float, failure_share: float, latency_s: float
) -> None:
    window = proven(successes, successes * failure_share, latency_s)
    assert score(window) > score(ModelWindow()) + NEAR_TIE
    result = plan([candidate(1), candidate(2, window)], Needs(), NOW, random.Random(7))
    assert [s.model_id for s in result.order] == [2, 1]


def test_a_model_without_data_is_tried_and_outranks_a_failing_one() -> None:
    failing = proven(2, 20, 1.0)
    result = plan([candidate(1, failing), candidate(2)], Needs(), NOW, random.Random(1))
    assert [s.model_id for s in result.order] == [2, 1]
    assert result.scores[2] == NO_DATA_SCORE


def test_reliability_and_speed_both_rank() -> None:
    assert score(proven(50, 0, 1.0)) > score(proven(50, 10, 1.0))
    assert score(proven(50, 0, 1.0)) > score(proven(50, 0, 12.0))
    assert score(proven(50, 0, 1.0)) > score(proven(50, 0, None))  # type: ignore[arg-type]


def test_gates_exclude_with_the_matching_state_and_reason() -> None:
    cooling = Availability(selector_pb2.MODEL_STATE_COOLING_DOWN, "rate limited", NOW + 5)
    half_open = Availability(selector_pb2.MODEL_STATE_CIRCUIT_HALF_OPEN, "trial")
    busy = Availability(selector_pb2.MODEL_STATE_CIRCUIT_OPEN, "trial in flight", NOW + 9)
    budget = Availability(selector_pb2.MODEL_STATE_OUT_OF_BUDGET, "rpm spent", NOW + 3)
    candidates = [
        candidate(1, is_active=False),
        candidate(2, credentials_error="GROQ_API_KEY is not set"),
        candidate(3, tags=frozenset({"json"})),
        candidate(4, supports_json=False),
        candidate(5, context_tokens=1500),
        candidate(6, availability=cooling),
        candidate(7, availability=half_open),
        candidate(8, availability=busy),
        candidate(9, availability=budget),
        candidate(10),
        candidate(11, context_tokens=0),
    ]
    needs = Needs(tags=frozenset({"code"}), json_mode=True, prompt_tokens=600)
    result = plan(candidates, needs, NOW, random.Random(3))
    assert {s.model_id for s in result.order} == {7, 10, 11}
    state = {model_id: e.state for model_id, e in result.excluded.items()}
    assert state == {
        1: selector_pb2.MODEL_STATE_INACTIVE,
        2: selector_pb2.MODEL_STATE_NO_CREDENTIALS,
        3: selector_pb2.MODEL_STATE_UNSPECIFIED,
        4: selector_pb2.MODEL_STATE_UNSPECIFIED,
        5: selector_pb2.MODEL_STATE_UNSPECIFIED,
        6: selector_pb2.MODEL_STATE_COOLING_DOWN,
        8: selector_pb2.MODEL_STATE_CIRCUIT_OPEN,
        9: selector_pb2.MODEL_STATE_OUT_OF_BUDGET,
    }
    assert "code" in result.excluded[3].reason
    assert "GROQ_API_KEY" in result.excluded[2].reason
    assert "JSON" in result.excluded[4].reason
    assert set(result.scores) == set(range(1, 12))
    assert earliest_until(result.excluded) == NOW + 3


def test_context_fit_counts_the_answer_tokens() -> None:
    fits = plan([candidate(1, context_tokens=2000)], Needs(prompt_tokens=1000), NOW)
    too_long = plan([candidate(1, context_tokens=2000)], Needs(prompt_tokens=1001), NOW)
    assert len(fits.order) == 1
    assert too_long.order == []


def test_a_prompt_over_a_tokens_per_minute_limit_is_never_planned() -> None:
    groq = Limits(tokens_per_minute=8000)
    account = Limits(account="a/KEY", account_quota=Quota(tokens_per_minute=3000))
    candidates = [
        candidate(1, context_tokens=131_072, max_output_tokens=2048, limits=groq),
        candidate(2, context_tokens=0, limits=account),
        candidate(3, context_tokens=0),
    ]
    fits = plan(candidates, Needs(prompt_tokens=2000), NOW)
    assert sorted(s.model_id for s in fits.order) == [1, 2, 3]
    long = plan(candidates, Needs(prompt_tokens=5953), NOW)
    assert [s.model_id for s in long.order] == [3]
    assert "tokens-per-minute limit (tpm) of 8000" in long.excluded[1].reason
    assert "account_limits.tpm" in long.excluded[2].reason
    assert long.excluded[1].state == selector_pb2.MODEL_STATE_UNSPECIFIED
    assert prompt_room(candidates[0].spec) == (5952, "tokens-per-minute limit (tpm) of 8000")
    assert prompt_room(candidates[2].spec) is None


def test_pace_follows_the_providers_day_when_the_state_knows_it() -> None:
    midnight = 20_000 * DAY
    # Nine in the morning UTC, but only one hour into the provider's day.
    early = Availability(selector_pb2.MODEL_STATE_READY, day_share_used=0.9, day_elapsed=1 / 24)
    late = Availability(selector_pb2.MODEL_STATE_READY, day_share_used=0.9, day_elapsed=0.5)
    assert ahead_of_pace(early, midnight + 0.5 * DAY)
    assert not ahead_of_pace(late, midnight + 1 / 24 * DAY)


def test_near_ties_share_the_load_and_clear_leaders_do_not() -> None:
    rng = random.Random(11)
    tied = [candidate(1, proven(100, 2, 1.0)), candidate(2, proven(100, 2, 1.01))]
    firsts = Counter(plan(tied, Needs(), NOW, rng).order[0].model_id for _ in range(1000))
    assert min(firsts.values()) > 300
    clear = [candidate(1, proven(100, 0, 1.0)), candidate(2, proven(100, 40, 4.0))]
    firsts = Counter(plan(clear, Needs(), NOW, rng).order[0].model_id for _ in range(200))
    assert firsts == Counter({1: 200})


def test_an_eligible_pin_goes_first() -> None:
    candidates = [candidate(1, proven(100)), candidate(2, proven(1, 3, 9.0))]
    result = plan(candidates, Needs(preferred=(2,)), NOW)
    assert [s.model_id for s in result.order] == [2, 1]
    assert result.pin_note == ""


def test_an_ineligible_pin_says_why_and_automatic_choice_answers() -> None:
    cooling = Availability(selector_pb2.MODEL_STATE_COOLING_DOWN, "rate limited by provider")
    candidates = [candidate(1, proven(100)), candidate(2, availability=cooling)]
    result = plan(candidates, Needs(preferred=(2,)), NOW)
    assert [s.model_id for s in result.order] == [1]
    assert "p2/m2" in result.pin_note
    assert "rate limited by provider" in result.pin_note
    unknown = plan(candidates, Needs(preferred=(99,)), NOW)
    assert "99" in unknown.pin_note


def test_preferred_models_go_first_in_their_order_and_alone_when_only_they_may_answer() -> None:
    candidates = [candidate(i, proven(100, 0, latency_s=i)) for i in (1, 2, 3, 4)]

    preferred = plan(candidates, Needs(preferred=(4, 2)), NOW)
    only = plan(candidates, Needs(preferred=(4, 2), only_preferred=True), NOW)

    assert [s.model_id for s in preferred.order] == [4, 2, 1, 3]
    assert [s.model_id for s in only.order] == [4, 2]
    assert only.excluded[1].reason == "not in the request's list of models"
    assert (preferred.pin_note, only.pin_note) == ("", "")


def test_a_preferred_model_that_cannot_answer_now_is_noted_and_the_next_one_tried() -> None:
    cooling = Availability(selector_pb2.MODEL_STATE_COOLING_DOWN, "rate limited by provider")
    candidates = [candidate(1, proven(100)), candidate(2, availability=cooling), candidate(3)]

    result = plan(candidates, Needs(preferred=(2, 3), only_preferred=True), NOW)

    assert [s.model_id for s in result.order] == [3]
    assert result.pin_note == "p2/m2 cannot be used now (rate limited by provider)"
    nothing = plan(candidates, Needs(preferred=(2,), only_preferred=True), NOW)
    assert nothing.order == []
    assert "chosen automatically" not in nothing.pin_note


def test_estimate_tokens_is_conservative() -> None:
    assert estimate_tokens("") == 1
    assert estimate_tokens("a" * 300) >= 100


def test_a_model_that_turned_slow_just_now_falls_behind() -> None:
    fast_history = proven(500, 0, 0.6)
    turned_slow = ModelWindow(
        successes=500,
        failures=3,
        total=503,
        success_count=500,
        failure_count=3,
        mean_latency_s=0.6,
        median_latency_s=0.6,
        recent_latency_s=15.0,
        recent_weight=1.0,
    )
    steady = proven(200, 2, 2.0)
    assert score(turned_slow) < score(steady) < score(fast_history)


def test_a_model_ahead_of_its_daily_pace_goes_behind_but_stays_a_fallback() -> None:
    midnight = 20_000 * DAY
    spent = Availability(selector_pb2.MODEL_STATE_READY, day_share_used=0.9)
    candidates = [
        candidate(1, proven(100, 0, 0.5), availability=spent),
        candidate(2, proven(100, 0, 3.0)),
    ]
    early = plan(candidates, Needs(), midnight + 3600, random.Random(2))
    assert [s.model_id for s in early.order] == [2, 1]
    late = plan(candidates, Needs(), midnight + 0.95 * DAY, random.Random(2))
    assert [s.model_id for s in late.order] == [1, 2]


def test_a_model_holding_a_request_far_too_long_goes_behind() -> None:
    waiting = Availability(selector_pb2.MODEL_STATE_READY, in_flight_since=NOW - 8)
    fresh = Availability(selector_pb2.MODEL_STATE_READY, in_flight_since=NOW - 1)
    fast, slower = proven(100, 0, 0.5), proven(100, 0, 3.0)
    silent = plan([candidate(1, fast, availability=waiting), candidate(2, slower)], Needs(), NOW)
    assert [s.model_id for s in silent.order] == [2, 1]
    busy = plan([candidate(1, fast, availability=fresh), candidate(2, slower)], Needs(), NOW)
    assert [s.model_id for s in busy.order] == [1, 2]
