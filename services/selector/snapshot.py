"""In-memory snapshot of the catalog and statistics, refreshed from ModelStore off the hot path."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from functools import cached_property

from google.protobuf import timestamp_pb2

from aiselector.v1 import common_pb2, model_store_pb2, model_store_pb2_grpc
from services.selector.conduct import Seat
from services.selector.policy import ModelSpec
from services.selector.providers import (
    MissingCredentials,
    Target,
    daily_reset_zone,
    output_limit,
    resolve_targets,
)
from services.selector.providers.waits import local_day
from services.selector.state import Limits, LiveState, Quota
from services.selector.stats import HOUR, Bucket, StatsBook

log = logging.getLogger(__name__)

RPC_TIMEOUT = 10.0
DEFAULT_TIMEOUT_S = 30.0
# Statistics are read over at least this many hours, so that today's counts of every provider's
# day (at most 25 hours long, in a zone whose midnight may fall inside an hour) can be summed.
MIN_STATISTICS_HOURS = 26


@dataclass(frozen=True)
class Entry:
    """One catalog model as the selector uses it."""

    spec: ModelSpec
    model: common_pb2.Model
    # One per provider key, in key order (`spec.limits.keys`); empty without credentials.
    targets: tuple[Target, ...]
    credentials_error: str

    @property
    def target(self) -> Target | None:
        """The target with the first key; None without credentials."""
        return self.targets[0] if self.targets else None

    def target_for(self, key: int) -> Target:
        """The target with provider key `key` (its position in `spec.limits.keys`)."""
        return self.targets[key] if 0 <= key < len(self.targets) else self.targets[0]


@dataclass(frozen=True)
class Catalog:
    """The models the selector knows, by id and by name."""

    entries: dict[int, Entry]
    by_name: dict[str, int]
    known_tags: frozenset[str]

    @cached_property
    def seats(self) -> dict[int, Seat]:
        """Every model as conduct sees it."""
        return {
            model_id: Seat(e.spec, e.credentials_error, e.model.api_key_env)
            for model_id, e in self.entries.items()
        }

    @classmethod
    def build(cls, models: list[common_pb2.Model], environ: Mapping[str, str]) -> Catalog:
        entries: dict[int, Entry] = {}
        for model in models:
            targets: tuple[Target, ...] = ()
            try:
                targets, problem = resolve_targets(model, environ), ""
            except MissingCredentials as missing:
                problem = str(missing)
            key_ids = tuple(t.key_id for t in targets if t.key_id)
            entries[model.id] = Entry(to_spec(model, key_ids), model, targets, problem)
        tags = frozenset(t for e in entries.values() if e.spec.is_active for t in e.spec.tags)
        return cls(entries, {e.spec.name: i for i, e in entries.items()}, tags)


def account_name(model: common_pb2.Model) -> str:
    """The account a model is counted on: its provider and key variable."""
    return f"{model.provider}/{model.api_key_env}" if model.api_key_env else model.provider


def _quota(limits: common_pb2.ModelLimits) -> Quota:
    return Quota(
        requests_per_minute=limits.requests_per_minute,
        requests_per_day=limits.requests_per_day,
        tokens_per_minute=limits.tokens_per_minute,
        tokens_per_day=limits.tokens_per_day,
    )


def to_limits(model: common_pb2.Model, key_ids: tuple[str, ...] = ()) -> Limits:
    """A model's budgets, its account's, and the zone of its provider's day; with several
    provider keys (`key_ids`, e.g. `GROQ_API_KEY#1`) the account of each (`groq/GROQ_API_KEY#1`)."""
    return Limits(
        **asdict(_quota(model.limits)),
        account=account_name(model),
        account_quota=_quota(model.account_limits),
        zone=daily_reset_zone(model.provider, model.api_format),
        keys=tuple(f"{model.provider}/{key_id}" for key_id in key_ids) if len(key_ids) > 1 else (),
    )


def to_spec(model: common_pb2.Model, key_ids: tuple[str, ...] = ()) -> ModelSpec:
    """The policy's view of a catalog model (with the ids of its provider keys); its output limit
    is what requests ask for."""
    limits = model.limits
    return ModelSpec(
        model_id=model.id,
        name=model.name,
        provider=model.provider,
        is_active=model.is_active,
        tags=frozenset(model.tags),
        supports_json=model.supports_json,
        context_tokens=limits.context_tokens,
        max_output_tokens=output_limit(limits.max_output_tokens, reasoning=model.reasoning),
        timeout_s=(limits.timeout_ms / 1000) if limits.timeout_ms else DEFAULT_TIMEOUT_S,
        limits=to_limits(model, key_ids),
        unlisted=model.listing.unlisted_reason,
    )


def _epoch(ts: timestamp_pb2.Timestamp) -> float | None:
    return ts.seconds + ts.nanos / 1e9 if ts.seconds or ts.nanos else None


async def load_models(stub: model_store_pb2_grpc.ModelStoreStub) -> list[common_pb2.Model]:
    """Every catalog model, all pages."""
    models: list[common_pb2.Model] = []
    token = ""
    while True:
        page = await stub.ListModels(
            model_store_pb2.ListModelsRequest(page_size=1000, page_token=token),
            timeout=RPC_TIMEOUT,
        )
        models.extend(page.models)
        token = page.next_page_token
        if not token:
            return models


async def load_statistics(
    stub: model_store_pb2_grpc.ModelStoreStub, window_hours: int, now: float
) -> model_store_pb2.GetModelStatisticsResponse:
    """Statistics of every model over the window ending now (at least MIN_STATISTICS_HOURS)."""
    start = timestamp_pb2.Timestamp()
    start.FromSeconds(int(now - max(window_hours, MIN_STATISTICS_HOURS) * HOUR))
    return await stub.GetModelStatistics(
        model_store_pb2.GetModelStatisticsRequest(start_time=start), timeout=RPC_TIMEOUT
    )


def apply_statistics(book: StatsBook, reply: model_store_pb2.GetModelStatisticsResponse) -> None:
    """Replaces every model's history in the book with the store's buckets."""
    for stats in reply.statistics:
        book.load(
            stats.model_id,
            [
                Bucket(
                    start=float(b.start_time.seconds),
                    counts={c.outcome: c.count for c in b.outcome_counts},
                    success_latency_ms_sum=b.success_latency_ms_sum,
                    histogram=list(b.success_latency_histogram),
                    tokens=b.tokens,
                )
                for b in stats.buckets
            ],
        )


def restore_live_state(
    live: LiveState,
    models: list[common_pb2.Model],
    reply: model_store_pb2.GetModelStatisticsResponse,
    now: float,
    catalog: Catalog | None = None,
) -> None:
    """At start: cooldowns, circuits and today's budget counts as persisted before a restart.

    "Today" is each provider's day, summed from the hourly buckets (an hour that holds the
    provider's midnight counts whole: the safe side); an account's counts are its models' sums.
    The limits (with the provider keys) are the `catalog`'s when given.
    """
    for model in models:
        availability = model.availability
        live.restore(
            model.id,
            cooldown_until=_epoch(availability.cooldown_until),
            cooldown_reason=availability.cooldown_reason,
            cooldown_outcome=availability.cooldown_outcome,
            consecutive_failures=availability.consecutive_failures,
            circuit_opened_at=_epoch(availability.circuit_opened_at),
        )
    limits = {model.id: to_limits(model) for model in models}
    if catalog is not None:
        limits |= {model_id: e.spec.limits for model_id, e in catalog.entries.items()}
    for stats in reply.statistics:
        if stats.model_id not in limits:
            continue
        day_start = local_day(now, limits[stats.model_id].zone)[0]
        today = [b for b in stats.buckets if b.start_time.seconds > day_start - HOUR]
        live.seed_budget(
            stats.model_id,
            limits=limits[stats.model_id],
            requests_last_minute=stats.requests_last_minute,
            requests_today=sum(c.count for b in today for c in b.outcome_counts),
            tokens_today=sum(b.tokens for b in today),
            now=now,
        )


def availability_message(live: LiveState, model_id: int) -> common_pb2.ModelAvailability:
    """The persisted form of one model's live state."""
    snap = live.snapshot(model_id)
    message = common_pb2.ModelAvailability(
        model_id=model_id,
        cooldown_reason=snap["cooldown_reason"],
        cooldown_outcome=snap["cooldown_outcome"],
        consecutive_failures=snap["consecutive_failures"],
    )
    if snap["cooldown_until"]:
        message.cooldown_until.FromNanoseconds(int(snap["cooldown_until"] * 1e9))
    if snap["circuit_opened_at"]:
        message.circuit_opened_at.FromNanoseconds(int(snap["circuit_opened_at"] * 1e9))
    return message
