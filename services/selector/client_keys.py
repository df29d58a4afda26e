"""Client keys in the Selector: who is calling (once per request, from a short cache of hashes),
whether keys are required, each key's limits counted in leased slices, and the admin methods."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import ipaddress
import logging
import math
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TypeVar

import grpc

from aiselector.v1 import common_pb2, model_store_pb2, model_store_pb2_grpc, selector_pb2
from services.common import errors

log = logging.getLogger(__name__)

# Every key starts with this, so a key is recognisable in a leaked file (and a secret scanner can
# match it); 32 random bytes follow (256 bits, base64url).
KEY_PREFIX = "fais_"
# Characters of a key kept (and shown) to recognise it: the prefix and 4 random characters.
SHOWN_CHARS = len(KEY_PREFIX) + 4
NAME_MAX_CHARS = 100
# Longest wait for ModelStore while checking a key, in seconds.
STORE_TIMEOUT_SECONDS = 2.0
# Retry-After when ModelStore cannot be asked about a key, in seconds.
STORE_RETRY_SECONDS = 2.0
# Most requests one lease may take at once.
MAX_SLICE = 50
# Key hashes remembered at most (the cache holds unknown ones too, so a flood of wrong keys costs
# one lookup per key and cache time, never an unbounded memory).
MAX_CACHED = 10_000

T = TypeVar("T")


def new_key() -> str:
    """A fresh client key."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def key_sha256(key: str) -> str:
    """What ModelStore keeps of a key: SHA-256 in lowercase hex. The key has 256 random bits, so a
    fast hash suffices (no password to stretch; ADR 0012)."""
    return hashlib.sha256(key.encode()).hexdigest()


def bearer(authorization: str) -> str:
    """The token of an `authorization: Bearer <token>` value; empty when there is none."""
    scheme, _, token = authorization.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def is_loopback(host: str) -> bool:
    """Whether `host` (an address, `[v6]`, or `localhost`) reaches this machine only."""
    host = host.strip().strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def listen_host(address: str) -> str:
    """The host of a `host:port` listen address."""
    return address.rsplit(":", 1)[0] if ":" in address else address


@dataclass(frozen=True)
class Client:
    """Who a request comes from: a client key (its id and limits), or the admin token (id 0)."""

    key_id: int
    name: str
    requests_per_minute: int = 0
    requests_per_day: int = 0
    tokens_per_day: int = 0
    revoked: bool = False

    @property
    def limited(self) -> bool:
        return bool(self.requests_per_minute or self.requests_per_day or self.tokens_per_day)

    @property
    def slice(self) -> int:
        """Requests to lease at once: a small part of each limit, so that replicas share it."""
        size = MAX_SLICE
        if self.requests_per_minute:
            size = min(size, max(1, self.requests_per_minute // 20))
        if self.requests_per_day:
            size = min(size, max(1, self.requests_per_day // 100))
        return size


ADMIN = Client(0, "admin token")


def _client(key: common_pb2.ClientKey) -> Client:
    return Client(
        key.id,
        key.name,
        key.limits.requests_per_minute,
        key.limits.requests_per_day,
        key.limits.tokens_per_day,
        key.HasField("revoke_time"),
    )


@dataclass
class _Cached:
    client: Client | None
    expires: float


@dataclass
class _Lease:
    left: int = 0
    expires: float = 0.0
    day: date | None = None
    blocked_until: float = 0.0
    limit: str = ""


class ClientGate:
    """Decides who may call: `identify` once per request (401/403), `charge` once per answered
    request (429 over the key's limits), both before any provider is called.

    Keys are required when `allow_anonymous` says so, else (unset) when the API is reachable
    beyond loopback or any key exists. Known hashes are cached for `cache_seconds`, so a
    revocation reaches every replica within that time; limits are counted in ModelStore, in
    slices leased for `lease_seconds` (docs/adr/0012-client-keys.md).
    """

    def __init__(
        self,
        store: model_store_pb2_grpc.ModelStoreStub,
        *,
        admin_token: str | None,
        allow_anonymous: bool | None,
        exposed: bool,
        cache_seconds: float,
        lease_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._admin_token = admin_token.encode() if admin_token else None
        self._allow_anonymous = allow_anonymous
        self.exposed = exposed
        self._cache_seconds = cache_seconds
        self._lease_seconds = lease_seconds
        self._clock = clock
        self._cache: dict[str, _Cached] = {}
        self._lookups: dict[str, asyncio.Future[Client | None]] = {}
        self._leases: dict[int, _Lease] = {}
        self._locks: dict[int, asyncio.Lock] = {}
        # Keys valid in ModelStore when last counted (the snapshot refresh, and this replica's
        # own creations and revocations).
        self.active_keys = 0

    @property
    def required(self) -> bool:
        """Whether a request without a valid key is refused."""
        if self._allow_anonymous is not None:
            return not self._allow_anonymous
        return self.exposed or self.active_keys > 0

    def describe(self) -> str:
        """The mode in one sentence, for the log at start."""
        if self._allow_anonymous is True:
            return "client keys not required: ALLOW_ANONYMOUS=true (keys sent are still counted)"
        if self._allow_anonymous is False:
            return "client keys required: ALLOW_ANONYMOUS=false"
        if self.exposed:
            return (
                "client keys required: the API listens beyond loopback "
                "(set ALLOW_ANONYMOUS=true to serve requests without one)"
            )
        if self.active_keys:
            return f"client keys required: {self.active_keys} key(s) exist"
        return "client keys not required: the API is on loopback and no key exists yet"

    async def count_keys(self) -> None:
        """Counts the valid keys (the snapshot refresh calls it)."""
        reply = await self._store.ReadClientKeys(
            model_store_pb2.ReadClientKeysRequest(), timeout=STORE_TIMEOUT_SECONDS
        )
        self.active_keys = len(reply.client_keys)

    async def identify(self, authorization: str) -> Client | None:
        """Who sent the request (None: anonymous, allowed in this mode); raises Unauthenticated
        when a key is required and none was sent, PermissionDenied for an unknown or revoked one."""
        token = bearer(authorization)
        if token and self._admin_token and hmac.compare_digest(token.encode(), self._admin_token):
            return ADMIN
        if not token:
            if self.required:
                raise errors.Unauthenticated(
                    "a client key is required: send 'authorization: Bearer <client key>' "
                    "(an admin creates one: python -m services.selector keys create --name …)",
                    reason=common_pb2.ERROR_REASON_CLIENT_KEY_REQUIRED,
                )
            return None
        client = await self._find(token) if token.startswith(KEY_PREFIX) else None
        if client is None or client.revoked:
            if self.required:
                raise _invalid()
            return None
        return client

    async def charge(self, client: Client | None) -> None:
        """Counts one request of `client` against its limits; ResourceExhausted when over one."""
        if client is None or not client.limited:
            return
        lease = self._leases.setdefault(client.key_id, _Lease())
        if self._take(lease):
            return
        async with self._locks.setdefault(client.key_id, asyncio.Lock()):
            if self._take(lease):
                return
            now = self._clock()
            reply = await _ask(
                self._store.AcquireClientQuota(
                    model_store_pb2.AcquireClientQuotaRequest(
                        client_key_id=client.key_id, requests=client.slice
                    ),
                    timeout=STORE_TIMEOUT_SECONDS,
                )
            )
            if reply.revoked:
                self.forget(client.key_id)
                raise _invalid()
            if reply.granted == 0:
                lease.blocked_until = now + reply.retry_after_seconds
                lease.limit = reply.limit
                self._take(lease)
            lease.left = reply.granted - 1
            lease.expires = now + self._lease_seconds
            lease.day = datetime.now(UTC).date()

    def _take(self, lease: _Lease) -> bool:
        """Takes one request of the lease; False when it has none left (or is too old); raises
        while the key is blocked by a refusal."""
        now = self._clock()
        if lease.blocked_until > now:
            wait = lease.blocked_until - now
            raise errors.ResourceExhausted(
                f"this client key is over its limit of {lease.limit}; retry in {math.ceil(wait)} s",
                retry_after_seconds=wait,
                reason=common_pb2.ERROR_REASON_CLIENT_KEY_LIMIT,
            )
        if lease.left > 0 and lease.expires > now and lease.day == datetime.now(UTC).date():
            lease.left -= 1
            return True
        return False

    def forget(self, key_id: int) -> None:
        """Drops what this replica remembers of a key (it was revoked here)."""
        self._leases.pop(key_id, None)
        for digest in [d for d, c in self._cache.items() if c.client and c.client.key_id == key_id]:
            del self._cache[digest]

    async def _find(self, token: str) -> Client | None:
        digest = key_sha256(token)
        now = self._clock()
        cached = self._cache.get(digest)
        if cached is not None and cached.expires > now:
            return cached.client
        pending = self._lookups.get(digest)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Client | None] = asyncio.get_running_loop().create_future()
        self._lookups[digest] = future
        try:
            client = await self._lookup(digest, cached)
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # retrieved: no "never retrieved" warning when nobody waits
            raise
        else:
            future.set_result(client)
        finally:
            del self._lookups[digest]
        return client

    async def _lookup(self, digest: str, stale: _Cached | None) -> Client | None:
        try:
            reply = await self._store.LookupClientKey(
                model_store_pb2.LookupClientKeyRequest(key_sha256=digest),
                timeout=STORE_TIMEOUT_SECONDS,
            )
            client: Client | None = _client(reply.client_key)
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                client = None
            elif stale is not None:
                log.warning("client key lookup failed; using the cached answer")
                return stale.client
            else:
                raise _store_unavailable() from None
        if client is not None and not client.revoked:
            self.active_keys = max(self.active_keys, 1)
        if len(self._cache) >= MAX_CACHED:
            self._prune()
        self._cache[digest] = _Cached(client, self._clock() + self._cache_seconds)
        return client

    def _prune(self) -> None:
        now = self._clock()
        for digest in [d for d, c in self._cache.items() if c.expires <= now]:
            del self._cache[digest]
        if len(self._cache) >= MAX_CACHED:
            for digest in list(self._cache)[: MAX_CACHED // 2]:
                del self._cache[digest]


def _invalid() -> errors.PermissionDenied:
    return errors.PermissionDenied(
        "the client key is unknown or revoked", reason=common_pb2.ERROR_REASON_CLIENT_KEY_INVALID
    )


def _store_unavailable() -> errors.Unavailable:
    return errors.Unavailable(
        "client keys cannot be checked now: ModelStore is unreachable",
        retry_after_seconds=STORE_RETRY_SECONDS,
        reason=common_pb2.ERROR_REASON_DEPENDENCY_UNAVAILABLE,
    )


async def _ask(call: Awaitable[T]) -> T:
    """A ModelStore call; its errors as the Selector's own (NOT_FOUND, INVALID_ARGUMENT kept)."""
    try:
        return await call
    except grpc.aio.AioRpcError as error:
        if error.code() == grpc.StatusCode.NOT_FOUND:
            raise errors.NotFound(
                error.details() or "not found",
                reason=common_pb2.ERROR_REASON_CLIENT_KEY_NOT_FOUND,
            ) from None
        if error.code() == grpc.StatusCode.INVALID_ARGUMENT:
            raise errors.InvalidArgument([("request", error.details() or "invalid")]) from None
        raise _store_unavailable() from None


class ClientKeyAdmin:
    """The admin methods: create (the key shown once), list, revoke, usage."""

    def __init__(self, store: model_store_pb2_grpc.ModelStoreStub, gate: ClientGate) -> None:
        self._store = store
        self._gate = gate

    async def create(
        self, request: selector_pb2.CreateClientKeyRequest, deadline: float
    ) -> selector_pb2.CreateClientKeyResponse:
        name = request.name.strip()
        problems: list[tuple[str, str]] = []
        if not 0 < len(name) <= NAME_MAX_CHARS or not name.isprintable():
            problems.append(("name", f"must be 1..{NAME_MAX_CHARS} printable characters"))
        for field in ("requests_per_minute", "requests_per_day", "tokens_per_day"):
            if getattr(request, field) < 0:
                problems.append((field, "must be >= 0 (0 = no limit)"))
        if problems:
            raise errors.InvalidArgument(problems)
        key = new_key()
        reply = await _ask(
            self._store.AddClientKey(
                model_store_pb2.AddClientKeyRequest(
                    name=name,
                    key_prefix=key[:SHOWN_CHARS],
                    key_sha256=key_sha256(key),
                    limits=common_pb2.ClientKeyLimits(
                        requests_per_minute=request.requests_per_minute,
                        requests_per_day=request.requests_per_day,
                        tokens_per_day=request.tokens_per_day,
                    ),
                ),
                timeout=_left(deadline),
            )
        )
        self._gate.active_keys += 1
        return selector_pb2.CreateClientKeyResponse(client_key=reply.client_key, key=key)

    async def list(
        self, request: selector_pb2.ListClientKeysRequest, deadline: float
    ) -> selector_pb2.ListClientKeysResponse:
        reply = await _ask(
            self._store.ReadClientKeys(
                model_store_pb2.ReadClientKeysRequest(include_revoked=request.include_revoked),
                timeout=_left(deadline),
            )
        )
        return selector_pb2.ListClientKeysResponse(client_keys=reply.client_keys)

    async def revoke(
        self, request: selector_pb2.RevokeClientKeyRequest, deadline: float
    ) -> selector_pb2.RevokeClientKeyResponse:
        if request.client_key_id <= 0:
            raise errors.InvalidArgument([("client_key_id", "must be > 0")])
        reply = await _ask(
            self._store.MarkClientKeyRevoked(
                model_store_pb2.MarkClientKeyRevokedRequest(client_key_id=request.client_key_id),
                timeout=_left(deadline),
            )
        )
        self._gate.forget(request.client_key_id)
        with contextlib.suppress(grpc.aio.AioRpcError):
            await self._gate.count_keys()
        return selector_pb2.RevokeClientKeyResponse(client_key=reply.client_key)

    async def usage(
        self, request: selector_pb2.GetClientKeyUsageRequest, deadline: float
    ) -> selector_pb2.GetClientKeyUsageResponse:
        if request.client_key_id < 0:
            raise errors.InvalidArgument([("client_key_id", "must be >= 0 (0 = every key)")])
        if not 0 <= request.days <= 90:
            raise errors.InvalidArgument([("days", "must be 1..90 (0 means 7)")])
        reply = await _ask(
            self._store.ReadClientKeyUsage(
                model_store_pb2.ReadClientKeyUsageRequest(
                    client_key_id=request.client_key_id, days=request.days or 7
                ),
                timeout=_left(deadline),
            )
        )
        return selector_pb2.GetClientKeyUsageResponse(usages=reply.usages)


def _left(deadline: float) -> float:
    """Seconds left until `deadline` (event-loop time), at least a little."""
    return max(0.1, deadline - asyncio.get_running_loop().time())
