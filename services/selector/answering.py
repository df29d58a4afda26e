"""How an answer reaches a face as it streams: failovers, the commit point, pieces, a cut-off."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from aiselector.v1 import common_pb2, selector_pb2
from services.common import errors, outcomes

# A cut-off answer may be asked again at once: another model will likely take it.
RETRY_CUT_OFF_SECONDS = 1.0


class Listener(Protocol):
    """A face that streams the answer to its caller.

    Before `commit` nothing has reached the caller and a failed model is replaced by the next one
    (`failover`); `commit` comes with the first piece of answer text, and from then on the answer
    is the committed model's or a failure reported in the stream. A listener whose caller has gone
    raises CallerGone (or is cancelled).
    """

    async def failover(
        self, failed: selector_pb2.AttemptSummary, next_model: str, next_provider: str
    ) -> None:
        """`failed` ended before any text; `next_model` is tried now."""
        ...

    async def commit(self, model: str, provider: str, attempts: int) -> None:
        """The first text of `model`'s answer follows; `attempts` counts this one."""
        ...

    async def delta(self, text: str) -> None:
        """The next piece of the answer."""
        ...


class CallerGone(Exception):
    """The face could not hand the answer on: its caller went away."""


@dataclass
class Committer:
    """Hands one attempt's answer text to the listener, committing at the first piece."""

    listener: Listener
    model: str
    provider: str
    attempts: int
    pieces: list[str] = field(default_factory=list)

    @property
    def committed(self) -> bool:
        """Whether any of this attempt's text reached the listener."""
        return bool(self.pieces)

    @property
    def text(self) -> str:
        """The text handed on so far."""
        return "".join(self.pieces)

    async def __call__(self, text: str) -> None:
        if not self.pieces:
            await self.listener.commit(self.model, self.provider, self.attempts)
        self.pieces.append(text)
        await self.listener.delta(text)


def cut_off(
    attempt: selector_pb2.AttemptSummary, sent: str, *, deadline_spent: bool
) -> errors.ServiceError:
    """The error that ends a stream whose model failed after `sent` reached the caller."""
    message = (
        f"the answer from {attempt.model} was cut off after {len(sent)} characters: {attempt.error}"
    )
    if attempt.outcome in outcomes.PROMPT_OUTCOMES:
        return errors.InvalidArgument(
            [("prompt", message)], reason=common_pb2.ERROR_REASON_PROMPT_REJECTED
        )
    if deadline_spent:
        return errors.DeadlineExceeded(message)
    return errors.Unavailable(message, retry_after_seconds=RETRY_CUT_OFF_SECONDS)


@dataclass(frozen=True)
class Answered:
    """A whole answer: the reply ProcessPrompt gives, and why the model stopped (`stop` or
    `length`, in OpenAI's words)."""

    reply: selector_pb2.ProcessPromptResponse
    finish_reason: str = "stop"
