"""`python -m services.data [serve|migrate]`: the ModelStore process, or a one-shot migration."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from typing import TYPE_CHECKING

from services.common import logging as json_logging
from services.common import secrets
from services.common.metrics import serve_metrics
from services.common.server import wait_for_signal
from services.data import db
from services.data.app import prepare_database, start_model_store
from services.data.catalog import CatalogError
from services.data.settings import DataSettings

if TYPE_CHECKING:
    from services.data.embedded import EmbeddedPostgres

log = logging.getLogger("services.data")


async def serve(settings: DataSettings, database_url: str) -> None:
    # The migration and the catalog run in a one-shot child (`migrate` below), so the server that
    # stays up never loads Alembic: about 11 MB less resident memory for its whole life.
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.data",
        "migrate",
        env={**os.environ, "DATABASE_URL": database_url},
    )
    if code := await child.wait():
        raise SystemExit(code)  # the child logged why (2: an invalid catalog)
    store = await start_model_store(
        database_url, settings.listen_address, settings.catalog_path, prepared=True
    )
    serve_metrics(settings.metrics_port, settings.metrics_host)
    log.info("model store serving", extra={"address": store.address})
    await wait_for_signal()
    await store.stop(settings.shutdown_grace_seconds)


async def migrate_once(settings: DataSettings, database_url: str) -> None:
    engine = db.create_engine(database_url, pool_size=1)
    try:
        await prepare_database(engine, settings.catalog_path)
    finally:
        await engine.dispose()
    log.info("database migrated and catalog applied")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m services.data", description=__doc__)
    parser.add_argument("command", nargs="?", choices=("serve", "migrate"), default="serve")
    command = parser.parse_args().command
    settings = DataSettings()
    json_logging.configure("model-store", settings.log_level)
    secrets.register_from_environment()
    embedded: EmbeddedPostgres | None = None
    # Until the server's own handler takes over, SIGTERM unwinds through `finally`, so an embedded
    # PostgreSQL started here is always stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        database_url = settings.database_url
        if not database_url:
            # Imported only here: deployments with DATABASE_URL do not ship the embedded server.
            from services.data.embedded import EmbeddedPostgres

            embedded = EmbeddedPostgres(settings.data_dir / "postgres")
            database_url = embedded.start()
        run = serve if command == "serve" else migrate_once
        asyncio.run(run(settings, database_url))
    except CatalogError as error:
        log.error("invalid catalog", extra={"error": str(error)})
        return 2
    finally:
        if embedded is not None:
            embedded.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
