"""Base of every service's settings: environment variables, optionally from a `.env` file."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    """Settings shared by every service."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    log_level: str = "INFO"
    # Address the Prometheus metrics endpoint binds; 0.0.0.0 lets a scraper on another host in.
    metrics_host: str = "127.0.0.1"
    # Port of the Prometheus metrics endpoint; 0 disables it.
    metrics_port: int = 0
    # Seconds given to in-flight calls on SIGTERM before the server stops.
    shutdown_grace_seconds: float = 5.0
