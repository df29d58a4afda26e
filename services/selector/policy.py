"""The selection policy: (candidates with statistics and live state, request needs, now) → plan."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from aiselector.v1 import selector_pb2
from services.selector.providers.messages import Message
from services.selector.state import Availability, Limits
from services.selector.stats import ModelWindow

UNSUITABLE = selector_pb2.MODEL_STATE_UNSPECIFIED
INACTIVE = selector_pb2.MODEL_STATE_INACTIVE
NO_CREDENTIALS = selector_pb2.MODEL_STATE_NO_CREDENTIALS
UNLISTED = selector_pb2.MODEL_STATE_UNLISTED

#: Latency (seconds) at which the speed factor is one half: speed = 1 / (1 + latency / this).
SPEED_REFERENCE_S = 2.0
#: Share of the score that speed decides: score = reliability · (1 − this + this · speed).
SPEED_WEIGHT = 0.75
#: Speed factor of a model without latency data: that of a model twice the reference latency.
UNKNOWN_SPEED = 1.0 / 3.0
#: Scores closer than this are near-ties: their order is drawn at random to spread load.
NEAR_TIE = 0.02
#: Score of a model with no data: reliability prior 1/2 times the unknown-latency speed factor.
NO_DATA_SCORE = 0.5 * (1.0 - SPEED_WEIGHT + SPEED_WEIGHT * UNKNOWN_SPEED)

#: A model may use its daily budget this far ahead of an even spread over its day before its
#: ranking key drops by PACE_PENALTY: 1 puts it behind every model on pace (it stays in the plan).
PACE_SLACK = 0.7
PACE_PENALTY = 1.0
DAY = 86400.0
#: A model with a request unanswered for this many times its usual latency (and at least
#: STALL_MIN_S) may have gone silent: its ranking key drops by STALL_PENALTY until that ends.
STALL_FACTOR = 3.0
STALL_MIN_S = 5.0
STALL_PENALTY = 0.5

_RNG = random.Random()


@dataclass(frozen=True)
class ModelSpec:
    """What the policy needs to know about a catalog model."""

    model_id: int
    name: str
    provider: str
    is_active: bool
    tags: frozenset[str]
    supports_json: bool
    context_tokens: int
    max_output_tokens: int
    timeout_s: float
    limits: Limits = field(default_factory=Limits)
    # Why the provider's model list no longer offers the model (model discovery); "" = listed.
    unlisted: str = ""


@dataclass(frozen=True)
class Needs:
    """What a request needs from the model that answers it."""

    tags: frozenset[str] = frozenset()
    json_mode: bool = False
    prompt_tokens: int = 0
    #: Models to try first, in this order, when they can take the request now.
    preferred: tuple[int, ...] = ()
    #: Only the preferred models may answer (an OpenAI `models` list).
    only_preferred: bool = False


@dataclass(frozen=True)
class Candidate:
    """A model with its statistics window and live availability, as seen at planning time."""

    spec: ModelSpec
    window: ModelWindow
    availability: Availability
    credentials_error: str = ""


@dataclass(frozen=True)
class Exclusion:
    """Why a model is not in the plan.

    `state` is a `selector_pb2.ModelState`: the availability state when the model cannot be used
    now, INACTIVE, UNLISTED or NO_CREDENTIALS, or MODEL_STATE_UNSPECIFIED when the model is fine but
    unsuitable for this request (tags, JSON mode, context size).
    """

    state: int
    reason: str
    until: float | None = None


@dataclass(frozen=True)
class Plan:
    """Models to try in order, every candidate's score, and why the others were left out."""

    order: list[ModelSpec]
    scores: dict[int, float]
    excluded: dict[int, Exclusion]
    pin_note: str = ""


def estimate_tokens(text: str) -> int:
    """A conservative token count for `text` (about three characters per token, rounded up)."""
    return len(text) // 3 + 1


def conversation_tokens(messages: Sequence[Message]) -> int:
    """A conservative token count for a conversation: its system text (even when empty, as a
    prompt without a system prompt has always been counted) plus each other turn."""
    system = "\n\n".join(m.content for m in messages if m.role == "system")
    turns = [m.content for m in messages if m.role != "system"]
    return estimate_tokens(system) + sum(estimate_tokens(text) for text in turns)


def score(window: ModelWindow) -> float:
    """The one score used for ranking and shown by GetModelStats, in [0, 1].

    reliability = (decayed successes + 1) / (decayed successes + failures + 2), a Beta(1, 1) prior
    that a model without data starts at 1/2 and that a few results move only a little;
    speed = 1 / (1 + latency / 2 s), 1/3 without latency data (as if it took 4 s), where latency
    is the window's median blended with the recent moving average by its `recent_weight`;
    score = reliability · (1/4 + 3/4 · speed). The 2 s reference separates the fast free models
    (0.5–1.5 s) clearly, which the routing benchmark's p95 latency rewards.
    A model with no data scores NO_DATA_SCORE (0.25), below any model with a handful of recent
    successes, a high success rate and a latency under 10 s, but above a proven failing one.
    `plan` ranks by this score less its pacing and stall penalties.
    """
    successes = _finite_non_negative(window.successes)
    failures = _finite_non_negative(window.failures)
    reliability = (successes + 1.0) / (successes + failures + 2.0)
    latency = expected_latency_s(window)
    speed = UNKNOWN_SPEED if latency is None else 1.0 / (1.0 + latency / SPEED_REFERENCE_S)
    value = reliability * (1.0 - SPEED_WEIGHT + SPEED_WEIGHT * speed)
    return min(1.0, max(0.0, value))


def expected_latency_s(window: ModelWindow) -> float | None:
    """The latency ranking assumes: the median (else mean) blended with the recent average."""
    latency = window.median_latency_s
    if latency is None or math.isnan(latency):
        latency = window.mean_latency_s
    if latency is not None and math.isnan(latency):
        latency = None
    recent = window.recent_latency_s
    if recent is not None and not math.isnan(recent):
        weight = min(1.0, max(0.0, window.recent_weight))
        latency = recent if latency is None else weight * recent + (1.0 - weight) * latency
    return None if latency is None else max(0.0, latency)


def _finite_non_negative(value: float) -> float:
    if math.isnan(value) or value < 0:
        return 0.0
    return min(value, 1e12)


def gate(candidate: Candidate, needs: Needs) -> Exclusion | None:
    """Returns why the candidate cannot take this request, or None when it can."""
    spec = candidate.spec
    if not spec.is_active:
        return Exclusion(INACTIVE, "deactivated in the catalog")
    if spec.unlisted:
        return Exclusion(UNLISTED, spec.unlisted)
    if candidate.credentials_error:
        return Exclusion(NO_CREDENTIALS, candidate.credentials_error)
    if needs.only_preferred and spec.model_id not in needs.preferred:
        return Exclusion(UNSUITABLE, "not in the request's list of models")
    missing = needs.tags - spec.tags
    if missing:
        return Exclusion(UNSUITABLE, f"lacks required tags: {', '.join(sorted(missing))}")
    if needs.json_mode and not spec.supports_json:
        return Exclusion(UNSUITABLE, "does not support JSON mode")
    room = prompt_room(spec)
    if room is not None and needs.prompt_tokens > room[0]:
        return Exclusion(
            UNSUITABLE,
            f"prompt too long for the model: about {needs.prompt_tokens} tokens plus "
            f"{spec.max_output_tokens} for the answer exceed its {room[1]}",
        )
    availability = candidate.availability
    if not availability.admits:
        return Exclusion(availability.state, availability.reason, availability.until)
    return None


def prompt_room(spec: ModelSpec) -> tuple[int, str] | None:
    """(the longest prompt in tokens, the limit that sets it) the model can ever take, or None.

    Both the context window and a tokens-per-minute limit (the model's or its account's) must
    hold the prompt plus the output tokens asked for: Groq and Cerebras count both against the
    minute before they run a request, and Groq answers 413 when they exceed it.
    """
    sizes = [
        (spec.context_tokens, f"context of {spec.context_tokens}"),
        (
            spec.limits.tokens_per_minute,
            f"tokens-per-minute limit (tpm) of {spec.limits.tokens_per_minute}",
        ),
        (
            spec.limits.account_quota.tokens_per_minute,
            f"account's tokens-per-minute limit (account_limits.tpm) of "
            f"{spec.limits.account_quota.tokens_per_minute}",
        ),
    ]
    rooms = [(size - max(0, spec.max_output_tokens), why) for size, why in sizes if size > 0]
    return min(rooms, key=lambda room: room[0]) if rooms else None


def plan(
    candidates: Sequence[Candidate],
    needs: Needs,
    now: float,
    rng: random.Random | None = None,
) -> Plan:
    """Orders the eligible candidates best first; preferred eligible models go first, in their
    order (and alone when `only_preferred`).

    Gates run before ranking. Ranking is by `score`, with a random draw of up to NEAR_TIE added to
    each score so that near-equal models share the load instead of one taking every request.
    The ranking key is the score less PACE_PENALTY for a model spending a declared daily budget
    faster than the day passes (`ahead_of_pace`), so the free budget lasts the whole day, and less
    STALL_PENALTY for a model holding a request far longer than it usually takes (`stalled`).
    Such models move down, not out: they stay in the plan as fallbacks.
    """
    draw = rng if rng is not None else _RNG
    scores = {c.spec.model_id: score(c.window) for c in candidates}
    excluded: dict[int, Exclusion] = {}
    eligible: list[ModelSpec] = []
    for candidate in candidates:
        exclusion = gate(candidate, needs)
        if exclusion is None:
            eligible.append(candidate.spec)
        else:
            excluded[candidate.spec.model_id] = exclusion
    keys = {
        c.spec.model_id: scores[c.spec.model_id]
        - (PACE_PENALTY if ahead_of_pace(c.availability, now) else 0.0)
        - (STALL_PENALTY if stalled(c, now) else 0.0)
        + draw.uniform(0.0, NEAR_TIE)
        for c in candidates
    }
    order = sorted(eligible, key=lambda spec: (-keys[spec.model_id], spec.name))
    pin_note = ""
    if needs.preferred:
        order, pin_note = _prefer(order, candidates, excluded, needs)
    return Plan(order=order, scores=scores, excluded=excluded, pin_note=pin_note)


def ahead_of_pace(availability: Availability, now: float) -> bool:
    """Whether a model used more of its daily budget than an even spread over the provider's day
    (the UTC day when the availability does not say) allows."""
    elapsed = availability.day_elapsed
    if elapsed is None:
        elapsed = (now % DAY) / DAY
    return availability.day_share_used > elapsed + PACE_SLACK


def stalled(candidate: Candidate, now: float) -> bool:
    """Whether the model holds a request unanswered far longer than it usually takes."""
    since = candidate.availability.in_flight_since
    if since is None:
        return False
    usual = expected_latency_s(candidate.window)
    limit = max(STALL_MIN_S, STALL_FACTOR * (SPEED_REFERENCE_S if usual is None else usual))
    return now - since > limit


def _prefer(
    order: list[ModelSpec],
    candidates: Sequence[Candidate],
    excluded: Mapping[int, Exclusion],
    needs: Needs,
) -> tuple[list[ModelSpec], str]:
    """The order with the eligible preferred models first, and a note on each that is not."""
    eligible = {spec.model_id: spec for spec in order}
    first = [eligible[i] for i in needs.preferred if i in eligible]
    rest = [spec for spec in order if spec.model_id not in needs.preferred]
    names = {c.spec.model_id: c.spec.name for c in candidates}
    notes = [
        f"{names[i]} cannot be used now ({excluded[i].reason})"
        if i in names
        else f"model {i} is not in the catalog"
        for i in needs.preferred
        if i not in eligible
    ]
    if notes and not first and not needs.only_preferred:
        notes.append("chosen automatically")
    return [*first, *rest], "; ".join(notes)


def earliest_until(excluded: Mapping[int, Exclusion]) -> float | None:
    """The earliest time any excluded model becomes available again, or None if none will."""
    times = [e.until for e in excluded.values() if e.until is not None]
    return min(times) if times else None
