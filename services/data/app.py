"""Starts a ModelStore in-process: migrate, apply the catalog, serve. Used by __main__ and tests."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from aiselector.v1 import model_store_pb2_grpc
from services.common.server import GrpcServer, Registration, start_grpc_server
from services.data import db
from services.data.catalog import Catalog, apply_catalog, load_catalog
from services.data.server import SERVICE_NAME, ModelStoreServicer

log = logging.getLogger(__name__)


@dataclass
class RunningModelStore:
    """A serving ModelStore; `address` is what clients dial."""

    server: GrpcServer
    engine: AsyncEngine
    address: str

    @property
    def port(self) -> int:
        """The bound TCP port."""
        return self.server.port

    async def stop(self, grace: float = 0) -> None:
        """Stops serving (in-flight calls get `grace` seconds) and closes the connection pool."""
        await self.server.stop(grace)
        await self.engine.dispose()


async def prepare_database(engine: AsyncEngine, catalog_path: Path | None) -> Catalog | None:
    """Migrates to head and, when given, applies the catalog file (CatalogError if invalid);
    returns the catalog applied."""
    # Imported here: Alembic (and Mako) cost the process about 11 MB that a server that was
    # migrated by `python -m services.data migrate` never needs.
    from services.data import migrate

    catalog = load_catalog(catalog_path) if catalog_path is not None else None
    await migrate.upgrade(engine)
    if catalog is not None:
        sessions = db.session_factory(engine)
        async with sessions() as session, session.begin():
            changes = await apply_catalog(session, catalog.models)
        log.info(
            "catalog applied",
            extra={
                "path": str(catalog_path),
                "models_created": len(changes.created),
                "models_updated": len(changes.updated),
                "models_deactivated": list(changes.deactivated),
            },
        )
    return catalog


def _dial_address(listen_address: str, port: int) -> str:
    host = listen_address.rsplit(":", 1)[0]
    if host in ("", "0.0.0.0", "[::]", "::"):
        host = "127.0.0.1"
    return f"{host}:{port}"


async def start_model_store(
    database_url: str,
    listen_address: str = "127.0.0.1:0",
    catalog_path: Path | None = None,
    *,
    prepared: bool = False,
) -> RunningModelStore:
    """Migrates the database, applies `catalog_path` if given, and serves on `listen_address`;
    `prepared`: both were done already (by `python -m services.data migrate`), only serve."""
    engine = db.create_engine(database_url)
    try:
        if prepared:
            catalog = load_catalog(catalog_path) if catalog_path is not None else None
        else:
            catalog = await prepare_database(engine, catalog_path)
        servicer = ModelStoreServicer(db.session_factory(engine), catalog=catalog)
        server = await start_grpc_server(
            [
                Registration(
                    SERVICE_NAME, model_store_pb2_grpc.add_ModelStoreServicer_to_server, servicer
                )
            ],
            listen_address,
        )
    except BaseException:
        await engine.dispose()
        raise
    return RunningModelStore(server, engine, _dial_address(listen_address, server.port))
