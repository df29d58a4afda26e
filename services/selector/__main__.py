"""`python -m services.selector`: serve the Selector until SIGTERM/SIGINT; `… keys …`: manage
client keys (see services/selector/keys_cli.py)."""

from __future__ import annotations

import asyncio
import sys

from services.common import logging as json_logging
from services.common import secrets
from services.common.metrics import serve_metrics
from services.common.server import wait_for_signal
from services.selector import keys_cli
from services.selector.app import start_selector
from services.selector.settings import SelectorSettings


async def main() -> None:
    settings = SelectorSettings()
    json_logging.configure("selector", settings.log_level)
    secrets.register_from_environment()
    serve_metrics(settings.selector_metrics_port, settings.metrics_host)
    running = await start_selector(settings)
    await wait_for_signal()
    await running.stop(settings.shutdown_grace_seconds)


if __name__ == "__main__":
    if sys.argv[1:2] == ["keys"]:
        sys.exit(keys_cli.main(sys.argv[2:]))
    asyncio.run(main())
