"""Conduct (services/selector/conduct.py) on an injected clock: every rule, no sleeping.

A small scripted world answers each attempt; the test clock moves by what each attempt and wait
takes. The same module runs in the Selector (tests/selector/test_conduct_on_the_stack.py checks
it there, loosely) and in the routing benchmark.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from aiselector.v1 import common_pb2
from services.common import errors, outcomes
from services.selector.conduct import (
    FALLBACK_MIN_SECONDS,
    PROBE,
    Conduct,
    Conductor,
    GiveUp,
    Outcome,
    Seat,
    Try,
    Wait,
)
from services.selector.policy import ModelSpec, Needs
from services.selector.state import CIRCUIT_OPEN, Limits, LiveState
from services.selector.stats import StatsBook

T0 = 1_780_000_000.0
QUICK = 0.5


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@dataclass(frozen=True)
class Reply:
    """What a scripted model does with one attempt: its outcome after `seconds` (inf: never)."""

    outcome: int = outcomes.SUCCESS
    seconds: float = QUICK
    retry_after: float | None = None
    http_status: int = 0


SILENT = Reply(outcomes.TIMEOUT, float("inf"))


@dataclass
class World:
    """Scripted models: a reply (or a function of the clock) per model name; a log of sends."""

    clock: Clock
    script: dict[str, Reply | Callable[[float], Reply]]
    sent: list[tuple[float, str, int]] = field(default_factory=list)

    def reply(self, name: str) -> Reply:
        found = self.script.get(name, Reply())
        return found(self.clock.now) if callable(found) else found

    def attempt(self, spec: ModelSpec, seconds: float, source: int = 1) -> Outcome:
        """Sends one attempt of at most `seconds`; the clock moves by what it takes."""
        started = self.clock.now
        reply = self.reply(spec.name)
        kind, took = reply.outcome, reply.seconds
        if took > seconds:
            kind = outcomes.TIMEOUT if seconds >= spec.timeout_s else outcomes.ABANDONED
            took = seconds
        self.clock.now += took
        self.sent.append((started, spec.name, kind))
        return Outcome(
            spec,
            kind,
            started,
            self.clock.now,
            http_status=reply.http_status,
            retry_after=reply.retry_after if kind == reply.outcome else None,
            message=f"{outcomes.name(kind)} from {spec.name}",
            source=source,
        )

    def to(self, name: str) -> list[float]:
        return [at for at, sent, _ in self.sent if sent == name]


def spec(model_id: int, timeout: float = 10.0, **limits: int) -> ModelSpec:
    return ModelSpec(
        model_id=model_id,
        name=f"p{model_id}/m",
        provider=f"p{model_id}",
        is_active=True,
        tags=frozenset(),
        supports_json=True,
        context_tokens=100_000,
        max_output_tokens=100,
        timeout_s=timeout,
        limits=Limits(**limits),
    )


def setup(*specs: ModelSpec, **options: object) -> tuple[Clock, Conductor, dict[int, Seat]]:
    clock = Clock()
    conductor = Conductor(
        LiveState(),
        StatsBook(),
        clock=clock,
        rng=random.Random(0),
        **options,  # type: ignore[arg-type]
    )
    return clock, conductor, {s.model_id: Seat(s) for s in specs}


def ask(
    conductor: Conductor,
    seats: dict[int, Seat],
    world: World,
    *,
    deadline: float = 60.0,
    needs: Needs | None = None,
) -> tuple[Conduct, Outcome | errors.ServiceError]:
    """One request through conduct: the answering outcome, or the error it ends with."""
    conduct = conductor.begin(seats, needs or Needs(), deadline=world.clock.now + deadline)
    while True:
        step = conduct.next_step()
        if isinstance(step, GiveUp):
            return conduct, step.error
        if isinstance(step, Wait):
            world.clock.now += step.seconds
            continue
        assert isinstance(step, Try)
        outcome = world.attempt(step.spec, step.seconds)
        conduct.record(outcome)
        if outcome.succeeded:
            return conduct, outcome


def fail_three_times(conductor: Conductor, model: ModelSpec, clock: Clock) -> None:
    """Three failures in a row, one after the other: the circuit opens."""
    for _ in range(3):
        conductor.live.acquire(model.model_id, model.limits, clock.now)
        conductor.learn(Outcome(model, outcomes.TRANSIENT, clock.now, clock.now + 0.1))
        clock.now += 0.2


def answered_by(answer: Outcome | errors.ServiceError) -> ModelSpec:
    """The model that answered (fails the test when the request ended with an error)."""
    assert isinstance(answer, Outcome), answer
    return answer.spec


def prefer(*specs: ModelSpec) -> Needs:
    return Needs(preferred=tuple(s.model_id for s in specs))


def test_a_healthy_model_answers_at_once() -> None:
    clock, conductor, seats = setup(spec(1), spec(2))
    world = World(clock, {})
    conduct, answer = ask(conductor, seats, world)
    assert isinstance(answer, Outcome)
    assert len(conduct.outcomes) == 1
    assert clock.now == T0 + QUICK


def test_a_429_with_retry_after_is_respected_and_answered_elsewhere() -> None:
    one, two = spec(1), spec(2)
    clock, conductor, seats = setup(one, two)
    world = World(
        clock,
        {
            one.name: Reply(outcomes.RATE_LIMITED, 0.1, retry_after=2.0),
            two.name: Reply(seconds=0.1),
        },
    )
    _, answer = ask(conductor, seats, world, needs=prefer(one))
    assert answered_by(answer) == two
    for _ in range(5):
        clock.now += 0.2
        _, answer = ask(conductor, seats, world, needs=prefer(one))
        assert answered_by(answer) == two
    assert len(world.to(one.name)) == 1
    clock.now = world.to(one.name)[0] + 0.1 + 2.0
    world.script.clear()
    _, answer = ask(conductor, seats, world, needs=prefer(one))
    assert answered_by(answer) == one


def test_a_persistent_429_without_retry_after_is_not_hammered() -> None:
    one, two = spec(1), spec(2)
    clock, conductor, seats = setup(one, two)
    world = World(
        clock, {one.name: Reply(outcomes.RATE_LIMITED, 0.05), two.name: Reply(seconds=0.05)}
    )
    for _ in range(30):
        ask(conductor, seats, world, needs=prefer(one))
        clock.now += 0.05
    # Backoff 2 s, then 4 s: two tries in about 3 s of traffic.
    assert len(world.to(one.name)) <= 2


def test_a_silent_model_costs_one_model_timeout_then_the_next_answers() -> None:
    one, two = spec(1, timeout=1.0), spec(2)
    clock, conductor, seats = setup(one, two)
    world = World(clock, {one.name: SILENT})
    conduct, answer = ask(conductor, seats, world, needs=prefer(one), deadline=10.0)
    assert answered_by(answer) == two
    assert [o.outcome for o in conduct.outcomes] == [outcomes.TIMEOUT, outcomes.SUCCESS]
    assert clock.now == pytest.approx(T0 + 1.0 + QUICK)


def test_silent_models_never_overrun_the_deadline() -> None:
    specs = [spec(i, timeout=30.0) for i in (1, 2, 3)]
    clock, conductor, seats = setup(*specs)
    world = World(clock, {s.name: SILENT for s in specs})
    _, error = ask(conductor, seats, world, deadline=2.5)
    assert isinstance(error, errors.DeadlineExceeded)
    assert clock.now <= T0 + 2.5
    assert all(len(world.to(s.name)) <= 1 for s in specs)


def test_a_silent_first_model_leaves_a_short_deadline_room_for_the_fallback() -> None:
    primary, fallback = spec(1, timeout=30.0), spec(2, timeout=30.0)
    clock, conductor, seats = setup(primary, fallback)
    world = World(clock, {primary.name: SILENT})
    conduct, answer = ask(conductor, seats, world, needs=prefer(primary), deadline=20.0)
    assert answered_by(answer) == fallback
    first = conduct.outcomes[0]
    # Cut by its share (not its own timeout): abandoned, not blamed. A fallback with no latency
    # data is assumed to need 4 s: three times that, at most half of what is left, is kept.
    assert first.outcome == outcomes.ABANDONED
    assert first.ended - first.started == pytest.approx(20.0 - 10.0)
    assert clock.now < T0 + 20.0
    assert conductor.live.availability(1, primary.limits, clock.now).admits


def test_a_proven_quick_fallback_needs_less_of_the_deadline() -> None:
    primary, fallback = spec(1, timeout=30.0), spec(2, timeout=30.0)
    clock, conductor, seats = setup(primary, fallback)
    for index in range(20):
        at = clock.now - 100 + index
        conductor.learn(Outcome(fallback, outcomes.SUCCESS, at, at + 1.0))
    step = conductor.begin(seats, prefer(primary), deadline=clock.now + 20.0).next_step()
    assert isinstance(step, Try)
    assert step.spec == primary
    assert step.cut_short
    assert step.seconds == pytest.approx(20.0 - FALLBACK_MIN_SECONDS)


def test_without_the_share_the_silent_first_model_takes_the_whole_deadline() -> None:
    primary, fallback = spec(1, timeout=30.0), spec(2, timeout=30.0)
    clock, conductor, seats = setup(primary, fallback, fallback_share=False)
    world = World(clock, {primary.name: SILENT})
    _, error = ask(conductor, seats, world, needs=prefer(primary), deadline=20.0)
    assert isinstance(error, errors.DeadlineExceeded)
    assert world.to(fallback.name) == []


def test_the_last_eligible_model_gets_the_whole_time_left() -> None:
    only = spec(1, timeout=30.0)
    _clock, conductor, seats = setup(only)
    conduct = conductor.begin(seats, Needs(), deadline=T0 + 20.0)
    step = conduct.next_step()
    assert isinstance(step, Try)
    assert step.seconds == pytest.approx(20.0)


def test_a_short_retry_after_is_waited_for_when_nothing_else_can_answer() -> None:
    only = spec(1)
    clock, conductor, seats = setup(only)
    replies = iter([Reply(outcomes.RATE_LIMITED, 0.1, retry_after=1.0), Reply()])
    world = World(clock, {only.name: lambda now: next(replies)})
    _conduct, answer = ask(conductor, seats, world)
    assert answered_by(answer) == only
    first, second = world.to(only.name)
    assert second - first >= 0.1 + 1.0  # never during the Retry-After


def test_a_wait_longer_than_the_deadline_allows_is_resource_exhausted() -> None:
    specs = [spec(i) for i in (1, 2, 3)]
    clock, conductor, seats = setup(*specs)
    world = World(
        clock, {s.name: Reply(outcomes.RATE_LIMITED, 0.1, retry_after=30.0) for s in specs}
    )
    _conduct, error = ask(conductor, seats, world)
    assert isinstance(error, errors.ResourceExhausted)
    assert 25 <= error.retry_after_seconds <= 30
    assert len(world.sent) == 3


def test_a_request_waits_at_most_a_third_of_its_deadline_in_all() -> None:
    # A per-minute budget of 1: the next request may go when the first leaves the minute.
    only = spec(1, requests_per_minute=1)
    clock, conductor, seats = setup(only)
    world = World(clock, {})
    ask(conductor, seats, world)
    clock.now = T0 + 45.0
    conduct, error = ask(conductor, seats, world, deadline=30.0)  # may wait 10 s, needs 15
    assert isinstance(error, errors.ResourceExhausted)
    assert 14.0 <= error.retry_after_seconds <= 16.0
    assert (conduct.waited, clock.now) == (0.0, T0 + 45.0)
    conduct, answer = ask(conductor, seats, world, deadline=60.0)  # may wait 20 s
    assert isinstance(answer, Outcome)
    assert 15.0 <= conduct.waited <= 15.5  # the window, and the newest-first stagger (0.03 × 15 s)
    assert world.sent[-1][0] >= T0 + 60.0  # paced by the budget, never over it


def test_of_requests_waiting_for_one_window_the_newest_wakes_first() -> None:
    # A per-minute budget of 1, spent: two requests wait for the same window, one of them 5 s
    # longer than the other. The newer one wakes first, so in a storm the capacity that frees
    # goes to a prompt that still has time to spare (adaptive LIFO), not to the oldest.
    only = spec(1, requests_per_minute=1)
    clock, conductor, seats = setup(only)
    ask(conductor, seats, World(clock, {}))
    clock.now = T0 + 50.0
    older = conductor.begin(seats, Needs(), deadline=clock.now + 60.0)
    first_wait = older.next_step()
    assert isinstance(first_wait, Wait)
    clock.now = T0 + 55.0
    newer = conductor.begin(seats, Needs(), deadline=clock.now + 60.0)
    newer_wait = newer.next_step()
    assert isinstance(newer_wait, Wait)
    older_wakes = T0 + 50.0 + first_wait.seconds
    newer_wakes = T0 + 55.0 + newer_wait.seconds
    assert T0 + 60.0 <= newer_wakes < older_wakes  # never inside the minute's budget
    assert (
        older_wakes - newer_wakes < 1.0
    )  # and the older one is not starved: fractions of a second


def test_an_open_circuit_is_tried_by_a_probe_never_by_a_users_prompt() -> None:
    sick, healthy = spec(1), spec(2)
    clock, conductor, seats = setup(sick, healthy)
    down_until = T0 + 100.0
    world = World(
        clock,
        {
            sick.name: lambda now: (
                Reply(outcomes.TRANSIENT, 0.1, http_status=503) if now < down_until else Reply()
            )
        },
    )
    recovered_at = None
    while clock.now < T0 + 200.0:
        for due in conductor.trials_due(seats, 30):
            conductor.learn(world.attempt(due, due.timeout_s, source=PROBE))
        _, answer = ask(conductor, seats, world, needs=prefer(sick))
        assert isinstance(answer, Outcome)
        if answer.spec == sick and clock.now >= down_until and recovered_at is None:
            recovered_at = clock.now
        clock.now += 1.0
    user_tries_while_open = [
        at for at, name, kind in world.sent if name == sick.name and kind == outcomes.TRANSIENT
    ]
    # Three user failures open the circuit; after that only probes (one at a time) meet it.
    assert len(user_tries_while_open) <= 3 + 100 / 10
    assert recovered_at is not None
    assert recovered_at - down_until <= 30.0


def test_a_half_open_circuit_admits_no_user_prompt() -> None:
    sick = spec(1)
    clock, conductor, seats = setup(sick)
    fail_three_times(conductor, sick, clock)
    clock.now += 60.0
    assert conductor.availability(sick, clock.now, 0).state == CIRCUIT_OPEN
    assert "a probe tests it" in conductor.availability(sick, clock.now, 0).reason
    assert not conductor.live.acquire(1, sick.limits, clock.now, trial=False)
    assert [s.model_id for s in conductor.trials_due(seats, 30)] == [1]
    assert conductor.trials_due(seats, 30) == []  # its one trial is in flight


def test_users_make_the_trials_when_probes_do_not() -> None:
    sick = spec(1)
    clock, conductor, seats = setup(sick, trials_by_probe=False)
    fail_three_times(conductor, sick, clock)
    clock.now += 60.0
    assert conductor.trials_due(seats, 30) == []
    world = World(clock, {})
    _, answer = ask(conductor, seats, world)
    assert answered_by(answer) == sick


def test_the_only_model_earns_one_quick_retry_of_a_transient_error() -> None:
    only = spec(1)
    clock, conductor, seats = setup(only)
    replies = iter([Reply(outcomes.TRANSIENT, 0.1, http_status=500), Reply()])
    world = World(clock, {only.name: lambda now: next(replies)})
    conduct, answer = ask(conductor, seats, world)
    assert isinstance(answer, Outcome)
    assert [o.outcome for o in conduct.outcomes] == [outcomes.TRANSIENT, outcomes.SUCCESS]


def test_a_second_transient_error_or_a_timeout_gets_no_retry() -> None:
    only = spec(1, timeout=1.0)
    clock, conductor, seats = setup(only)
    world = World(clock, {only.name: Reply(outcomes.TRANSIENT, 0.1, http_status=500)})
    conduct, error = ask(conductor, seats, world)
    assert isinstance(error, errors.Unavailable)
    assert len(world.sent) == 2
    world.script[only.name] = SILENT
    clock.now += 60.0
    conduct, error = ask(conductor, seats, world, deadline=10.0)
    assert len(conduct.outcomes) == 1


def test_with_a_fallback_a_transient_error_moves_on_without_a_retry() -> None:
    one, two = spec(1), spec(2)
    clock, conductor, seats = setup(one, two)
    world = World(clock, {one.name: Reply(outcomes.TRANSIENT, 0.1, http_status=500)})
    _conduct, answer = ask(conductor, seats, world, needs=prefer(one))
    assert answered_by(answer) == two
    assert len(world.to(one.name)) == 1


def test_a_content_filter_400_is_answered_by_another_model() -> None:
    one, two = spec(1), spec(2)
    clock, conductor, seats = setup(one, two)
    world = World(clock, {one.name: Reply(outcomes.BAD_REQUEST, 0.1, http_status=400)})
    _, answer = ask(conductor, seats, world, needs=prefer(one))
    assert answered_by(answer) == two
    assert conductor.live.availability(1, one.limits, clock.now).admits  # no penalty


def test_when_every_model_refuses_the_prompt_it_is_prompt_rejected() -> None:
    specs = [spec(i) for i in (1, 2)]
    clock, conductor, seats = setup(*specs)
    world = World(clock, {s.name: Reply(outcomes.BAD_REQUEST, 0.1, http_status=400) for s in specs})
    _, error = ask(conductor, seats, world)
    assert isinstance(error, errors.InvalidArgument)
    assert error.reason == common_pb2.ERROR_REASON_PROMPT_REJECTED
    assert len(world.sent) == 2


def test_no_key_anywhere_is_no_credentials_naming_the_variables() -> None:
    clock, conductor, _ = setup()
    seats = {1: Seat(spec(1), "ALPHA_API_KEY is not set", "ALPHA_API_KEY")}
    _, error = ask(conductor, seats, World(clock, {}))
    assert isinstance(error, errors.Unavailable)
    assert error.reason == common_pb2.ERROR_REASON_NO_CREDENTIALS
    assert "ALPHA_API_KEY" in str(error)
