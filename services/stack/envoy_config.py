"""Renders envoy/envoy.yaml.template into a runnable Envoy config (tests, `make run`, compose)."""

from __future__ import annotations

import argparse
import math
import string
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
TEMPLATE = ROOT / "envoy" / "envoy.yaml.template"
DESCRIPTOR = ROOT / "build" / "aiselector.pb"
# The status page's static files (served at `/`, docs/adr/0013).
WEB_DIR = ROOT / "web"
# Envoy waits this much longer than the Selector's own deadline, so the Selector's
# DEADLINE_EXCEEDED (with its JSON body) reaches the client instead of Envoy's bare 504.
DEADLINE_MARGIN_SECONDS = 5.0


@dataclass(frozen=True)
class EnvoyConfig:
    """Everything that differs between a test, `make run` and compose."""

    # The Selector replicas: one `host:port`, or several separated by commas, one endpoint each;
    # a name resolving to several addresses (compose's `selector`) is one endpoint per address.
    selector_address: str
    descriptor_path: Path = DESCRIPTOR
    web_dir: Path = WEB_DIR
    listen_host: str = "127.0.0.1"
    listen_port: int = 8000
    admin_port: int = 9901
    request_deadline_seconds: float = 60.0
    max_request_bytes: int = 1024 * 1024
    max_connections: int = 1000
    max_upstream_connections: int = 64
    max_pending_requests: int = 256
    max_requests: int = 256
    max_heap_bytes: int = 1024 * 1024 * 1024
    # Seconds a new connection may stay silent, a whole request may take to arrive, and a
    # connection may stay open between requests (docs/adr/0001 says why these values).
    first_byte_timeout_seconds: float = 5.0
    request_timeout_seconds: float = 30.0
    idle_timeout_seconds: float = 60.0
    # Retry-After, in seconds, on Envoy's own 503s (circuit breaker overflow, overload).
    overload_retry_after_seconds: int = 5
    # Replicas (docs/adr/0015): retries of a request no replica accepted, at most this many at
    # once over the cluster; gRPC health checks; how long an ejected replica stays out at first.
    num_retries: int = 2
    max_retries: int = 64
    health_check_interval_seconds: float = 1.0
    health_check_timeout_seconds: float = 2.0
    health_check_no_traffic_interval_seconds: float = 2.0
    base_ejection_seconds: float = 5.0

    @property
    def selector_addresses(self) -> tuple[str, ...]:
        """Each `host:port` of `selector_address`, in order, without duplicates."""
        parts = [part.strip() for part in self.selector_address.split(",")]
        return tuple(dict.fromkeys(part for part in parts if part))

    @property
    def route_timeout(self) -> str:
        """The route timeout: the Selector's deadline plus a margin, in Envoy's duration syntax."""
        return _duration(math.ceil(self.request_deadline_seconds + DEADLINE_MARGIN_SECONDS))


def _duration(seconds: float) -> str:
    """Seconds in Envoy's duration syntax."""
    return f"{seconds:.3f}".rstrip("0").rstrip(".") + "s"


def split_address(address: str) -> tuple[str, int]:
    """Splits `host:port` (IPv4, a name, or `[v6]:port`)."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"expected host:port, got {address!r}")
    return host.strip("[]"), int(port)


def _endpoints(addresses: tuple[str, ...]) -> str:
    """The cluster's `lb_endpoints` items, one per address."""
    if not addresses:
        raise ValueError("selector_address: expected at least one host:port")
    lines = []
    for address in addresses:
        host, port = split_address(address)
        lines += [
            "              - endpoint:",
            "                  address:",
            f"                    socket_address: {{address: {host}, port_value: {port}}}",
        ]
    return "\n".join(lines)


def render(config: EnvoyConfig, template: Path = TEMPLATE) -> str:
    """The Envoy YAML for `config`."""
    values = {k: str(v) for k, v in asdict(config).items()}
    values.update(
        descriptor_path=str(Path(config.descriptor_path).absolute()),
        web_dir=str(Path(config.web_dir).absolute()),
        route_timeout=config.route_timeout,
        first_byte_timeout=_duration(config.first_byte_timeout_seconds),
        request_timeout=_duration(config.request_timeout_seconds),
        idle_timeout=_duration(config.idle_timeout_seconds),
        overload_retry_after=str(config.overload_retry_after_seconds),
        selector_endpoints=_endpoints(config.selector_addresses),
        health_check_interval=_duration(config.health_check_interval_seconds),
        health_check_timeout=_duration(config.health_check_timeout_seconds),
        health_check_no_traffic_interval=_duration(config.health_check_no_traffic_interval_seconds),
        base_ejection_time=_duration(config.base_ejection_seconds),
    )
    return string.Template(template.read_text(encoding="utf-8")).substitute(values)


def write(config: EnvoyConfig, path: Path) -> Path:
    """Renders `config` into `path` (parents created) and returns the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(config), encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> None:
    """Command line used by the Dockerfile: render the config for a container."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--selector-address",
        default="127.0.0.1:50051",
        help="host:port of the Selector, several separated by commas, or a name DNS resolves "
        "to every replica",
    )
    parser.add_argument("--descriptor", type=Path, default=DESCRIPTOR)
    parser.add_argument("--web-dir", type=Path, default=WEB_DIR)
    parser.add_argument("--listen-host", default="127.0.0.1")
    parser.add_argument("--listen-port", type=int, default=8000)
    parser.add_argument("--admin-port", type=int, default=9901)
    parser.add_argument("--request-deadline-seconds", type=float, default=60.0)
    args = parser.parse_args(argv)
    config = EnvoyConfig(
        selector_address=args.selector_address,
        descriptor_path=args.descriptor,
        web_dir=args.web_dir,
        listen_host=args.listen_host,
        listen_port=args.listen_port,
        admin_port=args.admin_port,
        request_deadline_seconds=args.request_deadline_seconds,
    )
    print(write(config, args.out))


if __name__ == "__main__":
    main()
