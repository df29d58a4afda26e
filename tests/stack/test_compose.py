"""compose.yaml, the Dockerfile and .env.example agree with each other and with the services."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from pydantic_settings import BaseSettings

from services.bot.config import BotSettings
from services.common.channels import channel_options
from services.data.settings import DataSettings
from services.health.settings import HealthSettings
from services.selector.settings import SelectorSettings
from services.simulator.environ import read_providers
from services.stack.envoy_config import EnvoyConfig, render
from services.stack.settings import StackSettings

ROOT = Path(__file__).resolve().parent.parent.parent
COMPOSE = ROOT / "compose.yaml"
SERVICES = {"postgres", "migrate", "data", "selector", "health", "bot", "envoy"}
# Variables of the official postgres image, documented in .env.example's compose section.
POSTGRES_IMAGE = {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"}


def documented() -> set[str]:
    """Every variable named in .env.example (set or commented out): the one list of names."""
    text = (ROOT / ".env.example").read_text()
    return set(re.findall(r"^#? ?([A-Z][A-Z0-9_]*)=", text, flags=re.MULTILINE))


def env_names(settings: type[BaseSettings]) -> set[str]:
    names = set()
    for name, info in settings.model_fields.items():
        alias = info.validation_alias
        names.add(alias.upper() if isinstance(alias, str) else name.upper())
    return names


def read_by_services() -> set[str]:
    """The variables some process reads: settings fields plus the catalog's provider variables."""
    names: set[str] = set()
    for settings in (DataSettings, SelectorSettings, HealthSettings, BotSettings, StackSettings):
        names |= env_names(settings)
    for provider in read_providers(ROOT / "catalog.yaml"):
        names |= {provider.api_key_env, provider.base_url_env, *provider.endpoint_variables}
    return (names - {""}) | POSTGRES_IMAGE


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_names_every_service(compose):
    assert set(compose["services"]) == SERVICES


def test_every_documented_variable_is_read_by_a_service():
    assert documented() - read_by_services() == set()


def test_every_variable_of_the_readme_table_is_documented():
    readme = (ROOT / "README.md").read_text()
    table = readme.split("## Configuration")[1].split("\n## ")[0]
    named = set(re.findall(r"`([A-Z][A-Z0-9_]*_[A-Z0-9_]+)`", table)) - {"TEST_DATABASE_URL"}
    assert len(named) > 30
    assert named - documented() == set()


def test_every_interpolated_variable_is_documented():
    interpolated = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", COMPOSE.read_text()))
    assert interpolated
    assert interpolated - documented() == set()


def test_every_environment_key_is_documented(compose):
    for name, service in compose["services"].items():
        keys = set(service.get("environment", {}))
        assert keys - documented() == set(), name


def test_every_long_running_service_has_a_healthcheck_and_waits_for_its_dependencies(compose):
    services = compose["services"]
    for name in SERVICES - {"migrate"}:
        assert services[name]["healthcheck"]["test"], name
    assert "pg_isready" in services["postgres"]["healthcheck"]["test"][1]
    assert services["postgres"]["volumes"]
    assert services["migrate"]["command"] == ["python", "-m", "services.data", "migrate"]
    assert services["migrate"]["restart"] == "no"
    assert services["data"]["depends_on"]["migrate"] == {
        "condition": "service_completed_successfully"
    }
    for name in ("migrate", "data", "selector", "health", "bot", "envoy"):
        conditions = {d["condition"] for d in services[name]["depends_on"].values()}
        assert conditions <= {"service_healthy", "service_completed_successfully"}, name


def test_every_long_running_service_is_restarted_when_it_dies_as_in_make_run(compose):
    for name in SERVICES - {"migrate"}:
        assert compose["services"][name]["restart"] in {"unless-stopped", "on-failure"}, name


def test_only_envoy_publishes_a_port(compose):
    published = {name for name, s in compose["services"].items() if s.get("ports")}
    assert published == {"envoy"}


def test_envoy_uses_the_official_image_with_the_rendered_config(compose):
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert compose["services"]["envoy"]["build"]["target"] == "envoy"
    assert "FROM envoyproxy/envoy:v1.40-latest AS envoy" in dockerfile
    assert "python -m services.stack.envoy_config" in dockerfile
    assert "--descriptor /etc/envoy/aiselector.pb" in dockerfile
    # The status page: rendered to be read from the folder the image copies it to.
    assert "--web-dir /etc/envoy/web" in dockerfile
    assert "COPY web /etc/envoy/web" in dockerfile


def test_python_healthchecks_use_the_probe_module(compose):
    for name in ("data", "selector", "health", "bot"):
        test = compose["services"][name]["healthcheck"]["test"]
        assert test[:4] == ["CMD", "python", "-m", "services.stack.healthcheck"], name


def test_metrics_endpoints_are_scrapeable_on_the_compose_network(compose):
    for name, service in compose["services"].items():
        environment = service.get("environment", {})
        if any(key.endswith("_METRICS_PORT") for key in environment):
            assert environment.get("METRICS_HOST") == "0.0.0.0", name


def test_the_selector_spool_is_a_volume_the_app_user_owns(compose):
    """Records spilled at shutdown (ADR 0006) survive a container's replacement."""
    selector = compose["services"]["selector"]
    folder = selector["environment"]["SELECTOR_SPOOL_DIR"]
    assert f"selector-spool:{folder}" in selector["volumes"]
    assert "selector-spool" in compose["volumes"]
    assert f"install -d -m 0700 -o app {folder}" in (ROOT / "Dockerfile").read_text()


def test_the_selector_scales_and_envoy_finds_every_replica_through_dns(compose):
    """`docker compose up --scale selector=N` (ADR 15): nothing pins the selector to one container,
    and Envoy's cluster is the DNS name of the service, balanced, health-checked, with ejection."""
    selector = compose["services"]["selector"]
    assert "container_name" not in selector
    assert "ports" not in selector
    assert selector["environment"]["SELECTOR_LISTEN_ADDRESS"] == "0.0.0.0:50051"
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "--selector-address selector:50051" in dockerfile

    config = yaml.safe_load(render(EnvoyConfig(selector_address="selector:50051")))
    [cluster] = config["static_resources"]["clusters"]
    assert cluster["type"] == "STRICT_DNS"
    [locality] = cluster["load_assignment"]["endpoints"]
    [endpoint] = locality["lb_endpoints"]
    assert endpoint["endpoint"]["address"]["socket_address"] == {
        "address": "selector",
        "port_value": 50051,
    }
    assert cluster["lb_policy"] == "LEAST_REQUEST"
    [check] = cluster["health_checks"]
    assert check["grpc_health_check"] == {"service_name": "aiselector.v1.Selector"}
    assert cluster["outlier_detection"]["consecutive_local_origin_failure"] == 2


def test_the_health_worker_and_the_bot_balance_over_every_selector_replica(compose):
    for name in ("health", "bot"):
        address = compose["services"][name]["environment"]["SELECTOR_ADDRESS"]
        assert address == "dns:///selector:50051", name
    # The channels of our services balance round robin over every address of such a target
    # (and of make run's `ipv4:a,b`); a single host:port keeps gRPC's pick_first.
    for target in ("dns:///selector:50051", "ipv4:127.0.0.1:50051,127.0.0.1:50061"):
        service_config = json.loads(dict(channel_options(target))["grpc.service_config"])
        assert service_config == {"loadBalancingConfig": [{"round_robin": {}}]}
    assert "grpc.service_config" not in dict(channel_options("127.0.0.1:50051"))
