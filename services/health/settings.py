"""Settings of the health worker, read from the environment."""

from __future__ import annotations

from pydantic import Field, SecretStr

from services.common.settings import ServiceSettings


class HealthSettings(ServiceSettings):
    """Where the Selector and ModelStore are, the admin token, and how often each job runs."""

    selector_address: str = "127.0.0.1:50051"
    model_store_address: str = "127.0.0.1:50052"
    # Sent as `authorization: Bearer …` to Selector.TestProviders; unset → the Selector refuses.
    admin_api_token: SecretStr = SecretStr("")
    # Seconds between probe runs (the first run is at start).
    health_check_interval: float = Field(3600.0, gt=0)
    # Seconds between model discovery runs (the first run is at start): 6 hours.
    model_discovery_interval: float = Field(21600.0, gt=0)
    # Prompt history and attempts older than this many days are deleted once a day.
    history_retention_days: float = Field(30.0, gt=0)
    # Deadline of one TestProviders call, in seconds (it probes every model).
    health_probe_timeout_seconds: float = Field(120.0, gt=0)
    metrics_port: int = Field(0, validation_alias="HEALTH_METRICS_PORT")
