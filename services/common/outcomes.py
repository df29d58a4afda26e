"""What each attempt outcome means, defined once for the Selector, ModelStore and the benchmarks.

An outcome class (`common_pb2.Outcome`) says how an attempt ended; the groups below say what
follows from it: whether it counts against a model's reliability, whether it opens a circuit,
whether the provider's limits caused it, whether the request itself did.
"""

from __future__ import annotations

from aiselector.v1 import common_pb2

SUCCESS = common_pb2.OUTCOME_SUCCESS
RATE_LIMITED = common_pb2.OUTCOME_RATE_LIMITED
QUOTA_EXHAUSTED = common_pb2.OUTCOME_QUOTA_EXHAUSTED
TRANSIENT = common_pb2.OUTCOME_TRANSIENT
TIMEOUT = common_pb2.OUTCOME_TIMEOUT
PERMANENT = common_pb2.OUTCOME_PERMANENT
BAD_REQUEST = common_pb2.OUTCOME_BAD_REQUEST
BAD_ANSWER = common_pb2.OUTCOME_BAD_ANSWER
ABANDONED = common_pb2.OUTCOME_ABANDONED
WRONG_FORMAT = common_pb2.OUTCOME_WRONG_FORMAT

#: Every outcome class in the order ModelStore keeps a count column for each (never reorder:
#: the hourly buckets' columns follow it).
STORED: tuple[int, ...] = (
    SUCCESS,
    RATE_LIMITED,
    QUOTA_EXHAUSTED,
    TRANSIENT,
    TIMEOUT,
    PERMANENT,
    BAD_REQUEST,
    BAD_ANSWER,
    ABANDONED,
    WRONG_FORMAT,
)
#: The provider's limits said no: not the model's unreliability; wait, do not blame.
RATE_OUTCOMES = frozenset({RATE_LIMITED, QUOTA_EXHAUSTED})
#: The model's unreliability: what lowers its reliability score (stats and ModelStore alike).
FAILURE_OUTCOMES = frozenset({TRANSIENT, TIMEOUT, PERMANENT, BAD_ANSWER})
#: Failures that count towards opening a model's circuit (a permanent error cools it instead).
CIRCUIT_OUTCOMES = frozenset({TRANSIENT, TIMEOUT, BAD_ANSWER})
#: The request itself was refused (context length, content filter, prose to a JSON-mode request):
#: another model may take it; when every attempt ends so, the client learns why.
PROMPT_OUTCOMES = frozenset({BAD_REQUEST, WRONG_FORMAT})


def name(outcome: int) -> str:
    """`OUTCOME_RATE_LIMITED` → `rate_limited` (the name ModelStore stores)."""
    return common_pb2.Outcome.Name(outcome).removeprefix("OUTCOME_").lower()  # type: ignore[arg-type]


def value(outcome_name: str) -> int:
    """`rate_limited` → `OUTCOME_RATE_LIMITED`; the empty name is UNSPECIFIED."""
    if not outcome_name:
        return common_pb2.OUTCOME_UNSPECIFIED
    return common_pb2.Outcome.Value("OUTCOME_" + outcome_name.upper())


#: Stored names of every outcome, in STORED order.
STORED_NAMES: tuple[str, ...] = tuple(name(o) for o in STORED)
#: Stored names of the outcomes that are not a model failure.
NOT_FAILURE_NAMES: frozenset[str] = frozenset(name(o) for o in STORED if o not in FAILURE_OUTCOMES)
