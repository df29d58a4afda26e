"""Container healthcheck: exit 0 when a service is ready, 1 when it is not.

Usage: `python -m services.stack.healthcheck ADDRESS|URL [SERVICE]`. ADDRESS (`host:port`) is
checked with gRPC health (optionally for one SERVICE); an `http://` URL must answer 200 (the
health worker and the bot expose only their metrics endpoint).
"""

from __future__ import annotations

import asyncio
import sys

from services.stack.readiness import GrpcServing, HttpOk, Readiness


def probe_for(target: str, service: str = "") -> Readiness:
    """The probe for a command-line target."""
    if target.startswith(("http://", "https://")):
        return HttpOk(target)
    return GrpcServing(target, service)


def main(argv: list[str]) -> int:
    if not 1 <= len(argv) <= 2:
        print(__doc__, file=sys.stderr)
        return 2
    probe = probe_for(*argv)
    ready = asyncio.run(probe())
    if not ready:
        print(f"not ready: {probe.description}", file=sys.stderr)
    return 0 if ready else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
