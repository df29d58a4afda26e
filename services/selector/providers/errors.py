"""Exceptions raised by the provider adapters.

ProviderError          one failed attempt: outcome, HTTP status, wait, scope, secret-free message
Scope                  what a failure says is unusable: the one model, or every model on its key
MissingCredentials     a model's key (or a variable its URL needs) is not set
"""

from __future__ import annotations

from enum import StrEnum

from aiselector.v1 import common_pb2


class Scope(StrEnum):
    """What a failure cools: the model that answered, or every model using the same account (key).

    An account-wide signal is a bad or unpaid key, or a quota the provider counts over all models
    of the account (OpenRouter's `:free` limits, Cloudflare's daily neurons).
    """

    MODEL = "model"
    ACCOUNT = "account"


class ProviderError(Exception):
    """One failed attempt to get an answer from a model, classified by outcome."""

    def __init__(
        self,
        outcome: int,
        message: str,
        *,
        http_status: int = 0,
        retry_after: float | None = None,
        scope: Scope = Scope.MODEL,
    ) -> None:
        if outcome == common_pb2.OUTCOME_SUCCESS:
            raise ValueError("a ProviderError never has the SUCCESS outcome")
        super().__init__(message)
        self.outcome = outcome
        self.message = message
        self.http_status = http_status
        self.retry_after = retry_after
        self.scope = scope

    @property
    def outcome_name(self) -> str:
        """The outcome's enum name, e.g. `OUTCOME_RATE_LIMITED`."""
        return common_pb2.Outcome.Name(self.outcome)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return (
            f"ProviderError({self.outcome_name}, {self.message!r}, "
            f"http_status={self.http_status}, retry_after={self.retry_after}, "
            f"scope={self.scope.value})"
        )


class MissingCredentials(Exception):
    """A variable the model needs (its API key, or one its URL names) is not set."""

    def __init__(self, variables: list[str]) -> None:
        self.variables = variables
        verb = "is" if len(variables) == 1 else "are"
        super().__init__(f"{', '.join(variables)} {verb} not set")
