"""Model discovery: each provider's model list against the catalog (ADR 0010).

A catalog model the provider no longer lists — or lists as inactive, past its expiration date, or
(OpenRouter) at a price — is set aside with a readable reason until the provider lists it again;
free models the catalog lacks are reported, and added when the operator opts in. `compare` is pure;
`Discovery.run` reads the lists through the shared provider client (only the Selector holds the
keys), saves what changed through ModelStore and reloads the catalog, so routing follows at once.
A provider whose list cannot be read changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import grpc

from aiselector.v1 import common_pb2, model_store_pb2, model_store_pb2_grpc, selector_pb2
from services.common import errors
from services.selector import metrics, snapshot
from services.selector.engine import Engine
from services.selector.providers import ProviderClient, Target
from services.selector.providers.listing import Listed, ListingError, fetch_listing

log = logging.getLogger(__name__)

HINT = "update catalog.yaml"
# ModelStore takes at most this many listings per call.
SAVE_BATCH = 1000
# Time kept back from the call's deadline for saving the result and answering, in seconds.
SAVE_RESERVE_SECONDS = 2.0


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


@dataclass(frozen=True)
class Known:
    """A catalog model as discovery sees it: its id at the provider and what was concluded last."""

    model_id: int
    name: str
    provider_model_id: str
    unlisted_reason: str = ""
    unlisted_since: datetime | None = None


@dataclass(frozen=True)
class Unlisted:
    """A catalog model the list does not offer now, with the reason and since when."""

    model: Known
    reason: str
    since: datetime

    @property
    def changed(self) -> bool:
        """Whether this differs from what was saved last."""
        return (self.reason, self.since) != (self.model.unlisted_reason, self.model.unlisted_since)


@dataclass(frozen=True)
class Verdict:
    """What one provider's list says about the catalog."""

    unlisted: tuple[Unlisted, ...] = ()
    relisted: tuple[Known, ...] = ()
    new_free: tuple[Listed, ...] = ()


def _expired(listed: Listed, today: date) -> bool:
    """Whether the list's expiration date has come (the day itself counts)."""
    return listed.expires is not None and listed.expires <= today


def _gone(provider: str, listed: Listed | None, today: date) -> str | None:
    """Why a model the list describes as `listed` (None: absent) cannot be used, as a reason with
    a `{since}` slot; None when it is offered."""
    if listed is None:
        return f"not listed by {provider} since {{since}}"
    if not listed.active:
        return f"listed as inactive by {provider} since {{since}}"
    if _expired(listed, today):
        return f"past its expiration date {listed.expires} at {provider}"
    if listed.free is False:
        return f"no longer free at {provider} since {{since}} (its list gives a price)"
    return None


def _id(provider_model_id: str) -> str:
    # Gemini's catalog ids may carry the `models/` prefix its list leaves out.
    return provider_model_id.removeprefix("models/")


def compare(
    provider: str,
    checked: Iterable[Known],
    catalog_ids: Iterable[str],
    listed: Sequence[Listed],
    now: datetime,
) -> Verdict:
    """`checked` (the provider's active catalog models) against its `listed` models.

    A model is unlisted when the list lacks it, marks it inactive, gives an expiration date that
    has come (the day itself counts), or (where the list gives prices) no longer says it is free;
    its `since` is when it was first found so (kept while it stays unlisted). A model saved as
    unlisted that is offered again is relisted. New free models are listed ones, free, active and
    not expired, whose id no catalog model of the provider has (`catalog_ids`: inactive ones too).
    """
    by_id = {model.id: model for model in listed}
    today = now.astimezone(UTC).date()
    unlisted: list[Unlisted] = []
    relisted: list[Known] = []
    for model in checked:
        gone = _gone(provider, by_id.get(_id(model.provider_model_id)), today)
        if gone is None:
            if model.unlisted_reason:
                relisted.append(model)
            continue
        since = model.unlisted_since or now
        unlisted.append(Unlisted(model, f"{gone.format(since=_when(since))} — {HINT}", since))
    known = {_id(i) for i in catalog_ids}
    new_free = tuple(
        model
        for model in listed
        if model.free and model.active and not _expired(model, today) and model.id not in known
    )
    return Verdict(tuple(unlisted), tuple(relisted), new_free)


@dataclass
class _Account:
    """Catalog models read through one model list: same provider, endpoint and key."""

    provider: str
    target: Target | None
    problem: str
    entries: list[snapshot.Entry] = field(default_factory=list)


def _accounts(catalog: snapshot.Catalog) -> list[_Account]:
    """The active catalog models grouped by the list they are read through, by provider name."""
    accounts: dict[tuple[object, ...], _Account] = {}
    for entry in catalog.entries.values():
        if not entry.spec.is_active:
            continue
        model = entry.model
        key = (
            model.provider,
            model.api_format,
            model.api_endpoint,
            model.base_url_env,
            model.api_key_env,
        )
        account = accounts.setdefault(
            key, _Account(model.provider, entry.target, entry.credentials_error)
        )
        account.entries.append(entry)
    return sorted(accounts.values(), key=lambda a: a.provider)


def _known(entry: snapshot.Entry) -> Known:
    listing = entry.model.listing
    since = listing.unlisted_since.ToDatetime(tzinfo=UTC) if listing.unlisted_reason else None
    return Known(
        model_id=entry.spec.model_id,
        name=entry.spec.name,
        provider_model_id=entry.model.provider_model_id,
        unlisted_reason=listing.unlisted_reason,
        unlisted_since=since,
    )


def _listing_message(
    model_id: int, reason: str = "", since: datetime | None = None
) -> common_pb2.ModelListing:
    """A listing to save: set aside with `reason` since `since`, or (no reason) listed."""
    message = common_pb2.ModelListing(model_id=model_id, unlisted_reason=reason)
    if since is not None:
        message.unlisted_since.FromDatetime(since)
    return message


class Discovery:
    """Runs model discovery for the Selector: one run at a time."""

    def __init__(
        self,
        engine: Engine,
        providers: ProviderClient,
        stub: model_store_pb2_grpc.ModelStoreStub,
        environ: Mapping[str, str],
        *,
        auto_add: bool,
        list_timeout: float,
    ) -> None:
        self._engine = engine
        self._providers = providers
        self._stub = stub
        self._environ = environ
        self._auto_add = auto_add
        self._list_timeout = list_timeout
        self._lock = asyncio.Lock()

    async def run(self, deadline: float) -> selector_pb2.DiscoverModelsResponse:
        """Reads every list (each within the list timeout, all before `deadline`, event-loop
        time), saves what changed and reloads the catalog; the reply says, per provider, what
        its list said. Unavailable when ModelStore cannot save the result (nothing changed)."""
        async with self._lock:
            catalog = self._engine.catalog
            accounts = _accounts(catalog)
            remaining = deadline - asyncio.get_running_loop().time() - SAVE_RESERVE_SECONDS
            timeout = max(0.1, min(self._list_timeout, remaining))
            lists = await asyncio.gather(*(self._read(a, timeout) for a in accounts))
            now = datetime.now(UTC)
            reports: list[selector_pb2.ProviderDiscovery] = []
            changes: list[common_pb2.ModelListing] = []
            new_free: list[tuple[selector_pb2.ProviderDiscovery, Listed]] = []
            for account, listed in zip(accounts, lists, strict=True):
                report = selector_pb2.ProviderDiscovery(provider=account.provider)
                reports.append(report)
                if isinstance(listed, str):
                    report.error = listed
                    continue
                catalog_ids = [
                    e.model.provider_model_id
                    for e in catalog.entries.values()
                    if e.model.provider == account.provider
                ]
                verdict = compare(
                    account.provider, map(_known, account.entries), catalog_ids, listed, now
                )
                changes += self._report(report, verdict, len(listed))
                new_free += [(report, model) for model in verdict.new_free]
            await self._save(changes)
            added = [await self._add(report, model) for report, model in new_free]
            if changes or any(added):
                await self._reload()
            _export(reports)
            return selector_pb2.DiscoverModelsResponse(providers=reports)

    async def _read(self, account: _Account, timeout: float) -> list[Listed] | str:
        """The account's listed models, or why they could not be read."""
        if account.target is None:
            return f"not read: {account.problem}"
        try:
            return await fetch_listing(self._providers, account.target, timeout=timeout)
        except ListingError as error:
            log.warning(
                "model list not read: nothing changed",
                extra={"provider": account.provider, "error": str(error)},
            )
            metrics.DISCOVERY_LIST_FAILURES.labels(account.provider).inc()
            return str(error)

    def _report(
        self, report: selector_pb2.ProviderDiscovery, verdict: Verdict, listed: int
    ) -> list[common_pb2.ModelListing]:
        """Fills `report` from `verdict`, logs what changed, and returns the listings to save."""
        report.listed_models = listed
        changes = []
        for gone in verdict.unlisted:
            row = report.unlisted.add(model=gone.model.name, reason=gone.reason)
            row.since.FromDatetime(gone.since)
            if gone.changed:
                changes.append(_listing_message(gone.model.model_id, gone.reason, gone.since))
                extra = {"provider": report.provider, "model": gone.model.name}
                log.warning("model unlisted", extra={**extra, "reason": gone.reason})
        for back in verdict.relisted:
            report.relisted.append(back.name)
            changes.append(_listing_message(back.model_id))
            log.info("model listed again", extra={"provider": report.provider, "model": back.name})
        return changes

    async def _save(self, changes: list[common_pb2.ModelListing]) -> None:
        """Saves the listings that changed; Unavailable when ModelStore does not take them."""
        try:
            for start in range(0, len(changes), SAVE_BATCH):
                await self._stub.UpdateModelListings(
                    model_store_pb2.UpdateModelListingsRequest(
                        listings=changes[start : start + SAVE_BATCH]
                    ),
                    timeout=snapshot.RPC_TIMEOUT,
                )
        except grpc.aio.AioRpcError as error:
            code = error.code().name
            log.warning("discovery result not saved", extra={"code": code})
            raise errors.Unavailable(
                f"model discovery could not save its result: ModelStore answered {code}; "
                "nothing changed",
                retry_after_seconds=30,
                reason=common_pb2.ERROR_REASON_DEPENDENCY_UNAVAILABLE,
            ) from None

    async def _reload(self) -> None:
        """Routes by what was saved at once (else from the next snapshot refresh)."""
        try:
            models = await snapshot.load_models(self._stub)
        except grpc.aio.AioRpcError as error:
            log.warning("catalog not reloaded after discovery", extra={"code": error.code().name})
            return
        self._engine.catalog = snapshot.Catalog.build(models, self._environ)

    async def _add(self, report: selector_pb2.ProviderDiscovery, model: Listed) -> bool:
        """Reports a new free model and, when the operator opted in, adds it; True if added."""
        row = report.new_free_models.add(
            provider_model_id=model.id, context_tokens=model.context_tokens
        )
        if not self._auto_add:
            row.note = "not added: CATALOG_AUTO_ADD is off"
        else:
            try:
                reply = await self._stub.CreateDiscoveredModel(
                    model_store_pb2.CreateDiscoveredModelRequest(
                        provider=report.provider,
                        provider_model_id=model.id,
                        context_tokens=model.context_tokens,
                    ),
                    timeout=snapshot.RPC_TIMEOUT,
                )
                row.added, row.model = True, reply.model.name
            except grpc.aio.AioRpcError as error:
                row.note = f"not added: {error.code().name}: {error.details() or ''}".strip()
        log.info(
            "new free model",
            extra={
                "provider": report.provider,
                "provider_model_id": model.id,
                "added": row.added,
                "note": row.note,
            },
        )
        return row.added


def _export(reports: list[selector_pb2.ProviderDiscovery]) -> None:
    """The run's counts as metrics, per provider whose list was read."""
    for report in reports:
        if report.error:
            continue
        metrics.DISCOVERY_UNLISTED.labels(report.provider).set(len(report.unlisted))
        pending = sum(not row.added for row in report.new_free_models)
        metrics.DISCOVERY_NEW_FREE.labels(report.provider).set(pending)
