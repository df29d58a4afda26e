"""Selector settings from the environment."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator

from services.common.settings import ServiceSettings


class SelectorSettings(ServiceSettings):
    """What the Selector reads from the environment (provider keys: per catalog entry)."""

    selector_listen_address: str = "127.0.0.1:50051"
    model_store_address: str = "127.0.0.1:50052"
    selector_metrics_port: int = 0
    # Deadline of a ProcessPrompt call when the client sets none, in seconds.
    request_deadline_seconds: float = Field(default=60.0, gt=0, le=600)
    # Bearer token for admin RPCs (TestProviders); unset disables them.
    admin_api_token: SecretStr | None = None
    # Prompt of probes: TestProviders, and the background trial of each half-open circuit.
    synthetic_test_prompt: str = "Hello! Please respond with 'OK'"
    # Output tokens asked for by a probe.
    probe_max_output_tokens: int = 16
    # Probes run at once.
    probe_concurrency: int = 4
    # How often the catalog and statistics snapshot is refreshed from ModelStore, in seconds.
    snapshot_refresh_seconds: float = 30.0
    # Records (attempts + history rows) kept in memory while ModelStore is unreachable; from half
    # of it they are spilled to the spool; beyond it (no spool, or the spool full) the oldest are
    # dropped (counted, logged, exported).
    record_buffer_size: int = Field(default=50_000, ge=1)
    # How often buffered records are flushed to ModelStore, in seconds.
    record_flush_seconds: float = 0.25
    # The data folder `make run` passes to every service; the spool defaults to a folder in it.
    data_dir: Path | None = None
    # Folder of records not yet delivered to ModelStore (ADR 6); default `$DATA_DIR/spool/selector`,
    # none when neither is set (records that cannot be delivered at shutdown are then lost).
    selector_spool_dir: Path | None = None
    # Disk the spool may fill with records spilled while ModelStore is unreachable, in MiB.
    selector_spool_max_mb: int = Field(default=1024, ge=0)
    # Statistics window, in hours.
    stats_window_hours: int = 168
    # Consecutive failures that open a model's circuit.
    circuit_failure_threshold: int = 3
    # Seconds a circuit stays open before a background probe makes its single trial; each failed
    # trial doubles it.
    circuit_open_seconds: float = 10.0
    # Longest a circuit stays open, in seconds: a provider that is back is probed, and so in use
    # again, within this time (plus the probe's answer and one second of the probe loop).
    circuit_max_open_seconds: float = 20.0
    # Cooldown after a 429 that gave no wait, in seconds.
    default_rate_limit_seconds: float = 60.0
    # Cooldown after a permanent error (401/402/403/404/410), in seconds.
    permanent_cooldown_seconds: float = 86_400.0
    # Length of the "per minute" budget window, in seconds (tests scale it down).
    budget_minute_seconds: float = 60.0
    # Longest provider Retry-After (or budget window) worth waiting for when no other model is
    # eligible, in seconds; taken only when the deadline has room for it and an attempt after it.
    max_retry_wait_seconds: float = 30.0
    # A streamed answer's first token (answer or reasoning) must come this soon after the
    # connection is ours (at most the model's own timeout), in seconds; else the next model.
    stream_first_token_timeout_seconds: float = Field(default=15.0, gt=0)
    # Longest silence between two events of a streamed answer, in seconds: before the first text
    # the next model is tried, after it the stream ends with an error.
    stream_idle_timeout_seconds: float = Field(default=10.0, gt=0)
    # Connections open to providers at most, over all providers. A request waiting for a free one
    # is not blamed on the model (its timeout starts once it has one), so this only guards the
    # process's file descriptors (a common soft limit is 1024); free tiers allow far fewer
    # requests in flight per model.
    provider_max_connections: int = Field(default=512, ge=1)
    # Model discovery (DiscoverModels): add the free models a provider lists but the catalog lacks,
    # with conservative settings (ADR 0010); off: they are only reported.
    catalog_auto_add: bool = False
    # Longest wait for one provider's model list (all its pages), in seconds.
    model_list_timeout_seconds: float = Field(default=20.0, gt=0)

    # Client keys (ADR 0012): true serves requests without a key, false requires one; unset
    # requires one when the API listens beyond loopback (this Selector's or Envoy's address) or
    # once any key exists.
    allow_anonymous: bool | None = None
    # The host Envoy publishes the API on (`make run` passes its ENVOY_LISTEN_HOST).
    envoy_listen_host: str = "127.0.0.1"
    # How long a key's check is remembered, in seconds: a revoked key is refused by every replica
    # within this time.
    client_key_cache_seconds: float = Field(default=5.0, gt=0, le=300)

    # Shared state of replicas (ADR 0016): budgets leased in slices from ModelStore, cooldowns and
    # circuits published to every replica, one replica per half-open trial. Off: this replica
    # counts budgets and learns on its own (one replica only).
    shared_state: bool = True
    # How often a replica exchanges with the shared state, in seconds: what another replica
    # learned (a Retry-After, an open circuit) holds here within this time plus one call.
    shared_state_interval_seconds: float = Field(default=0.5, gt=0, le=60)
    # How long a leased budget slice may be spent, in seconds; what a replica that died held
    # comes back at most this long plus the budget's window (a minute) later.
    shared_lease_seconds: float = Field(default=5.0, ge=0.1, le=300)

    @field_validator("data_dir", "selector_spool_dir", "allow_anonymous", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @property
    def spool_dir(self) -> Path | None:
        """The spool folder, or None when neither SELECTOR_SPOOL_DIR nor DATA_DIR is set."""
        if self.selector_spool_dir is not None:
            return self.selector_spool_dir
        return self.data_dir / "spool" / "selector" if self.data_dir is not None else None
