"""Settings of the ModelStore process, from environment variables (see docs/team-interfaces.md)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from services.common.settings import ServiceSettings


class DataSettings(ServiceSettings):
    """`DATABASE_URL` unset → embedded PostgreSQL in `$DATA_DIR/postgres`."""

    database_url: str | None = None
    data_dir: Path = Path(".data")
    catalog_path: Path = Path("catalog.yaml")
    listen_address: str = Field("127.0.0.1:50052", validation_alias="MODEL_STORE_LISTEN_ADDRESS")
    metrics_port: int = Field(0, validation_alias="MODEL_STORE_METRICS_PORT")
