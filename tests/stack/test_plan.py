"""What `make run` would start: order, environment, demo mode, admin token, Envoy config."""

from __future__ import annotations

import shutil
import stat
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from services.stack.app import keys_banner, try_it
from services.stack.plan import build_stack, client_target
from services.stack.settings import StackSettings, default_replicas

ROOT = Path(__file__).resolve().parent.parent.parent


@pytest.fixture
def root(tmp_path: Path) -> Path:
    shutil.copy(ROOT / "catalog.yaml", tmp_path / "catalog.yaml")
    return tmp_path


def settings(**overrides: object) -> StackSettings:
    overrides.setdefault("selector_replicas", 1)
    return StackSettings(_env_file=None, **overrides)  # type: ignore[call-arg]


def names(stack) -> list[str]:
    return [s.name for s in stack.services]


def test_without_provider_keys_the_simulator_starts_first_and_serves_every_provider(root):
    stack = build_stack(settings(), {}, root=root, simulator_port=4321)

    assert stack.demo
    assert names(stack) == ["simulator", "data", "selector", "health", "envoy"]
    simulator = stack.services[0]
    assert simulator.argv[-4:] == [
        "--scenario",
        "services/simulator/scenarios/demo.yaml",
        "--port",
        "4321",
    ]
    env = stack.services[1].env
    assert env["GROQ_BASE_URL"] == "http://127.0.0.1:4321/groq/v1"
    assert env["GEMINI_BASE_URL"] == "http://127.0.0.1:4321/gemini/v1beta"
    assert env["CLOUDFLARE_BASE_URL"] == "http://127.0.0.1:4321/cloudflare/v1"
    assert env["GROQ_API_KEY"] == "simulated"
    assert env["GOOGLE_AI_STUDIO_API_KEY"] == "simulated"
    assert env["CLOUDFLARE_API_TOKEN"] == "simulated"
    assert env["CLOUDFLARE_ACCOUNT_ID"] == "simulated"


def test_a_real_key_turns_demo_mode_off_and_keeps_real_urls(root):
    stack = build_stack(settings(), {"GROQ_API_KEY": "gsk_real_key_value"}, root=root)

    assert not stack.demo
    assert names(stack) == ["data", "selector", "health", "envoy"]
    env = stack.services[0].env
    assert env["GROQ_API_KEY"] == "gsk_real_key_value"
    assert "GROQ_BASE_URL" not in env
    assert "GEMINI_BASE_URL" not in env


def test_dotenv_is_read_and_the_real_environment_wins(root):
    (root / ".env").write_text(
        "GROQ_API_KEY=from-dotenv\nCEREBRAS_API_KEY=cerebras-from-dotenv\n"
        "TELEGRAM_BOT_TOKEN=123:abc\n"
    )

    stack = build_stack(settings(), {"GROQ_API_KEY": "from-shell"}, root=root)

    env = stack.services[0].env
    assert env["GROQ_API_KEY"] == "from-shell"
    assert env["CEREBRAS_API_KEY"] == "cerebras-from-dotenv"
    assert names(stack)[-1] == "bot"


def test_an_empty_key_in_the_shell_hides_the_dotenv_key(root):
    (root / ".env").write_text("GROQ_API_KEY=from-dotenv\n")

    stack = build_stack(settings(), {"GROQ_API_KEY": ""}, root=root, simulator_port=1)

    assert stack.demo


def test_a_list_of_keys_is_a_key_and_a_list_of_nothing_is_none(root):
    listed = build_stack(settings(), {"GROQ_API_KEY": "gsk_one_key,gsk_two_key"}, root=root)
    assert not listed.demo
    assert listed.services[0].env["GROQ_API_KEY"] == "gsk_one_key,gsk_two_key"

    blank = build_stack(settings(), {"GROQ_API_KEY": " , "}, root=root, simulator_port=1)
    assert blank.demo


def test_every_service_gets_the_same_addresses(root):
    stack = build_stack(
        settings(
            selector_listen_address="0.0.0.0:6001", model_store_listen_address="127.0.0.1:6002"
        ),
        {"GROQ_API_KEY": "k" * 10},
        root=root,
    )

    env = stack.services[0].env
    assert env["SELECTOR_LISTEN_ADDRESS"] == "0.0.0.0:6001"
    assert env["SELECTOR_ADDRESS"] == "127.0.0.1:6001"
    assert env["MODEL_STORE_ADDRESS"] == "127.0.0.1:6002"
    assert env["HEALTH_METRICS_PORT"] == "9103"
    readiness = {s.name: s.ready.description for s in stack.services}
    assert readiness["selector"] == "gRPC health SERVING at 127.0.0.1:6001 (aiselector.v1.Selector)"
    assert readiness["data"] == "gRPC health SERVING at 127.0.0.1:6002 (aiselector.v1.ModelStore)"


def test_a_generated_admin_token_is_written_privately_and_never_printed(root):
    stack = build_stack(settings(data_dir=root / "d"), {}, root=root, simulator_port=1)

    token_file = root / "d" / "admin_token"
    token = token_file.read_text().strip()
    assert len(token) >= 32
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert stack.services[0].env["ADMIN_API_TOKEN"] == token
    lines = try_it(stack)
    assert not any(token in line for line in lines)
    assert any(f'Bearer $(cat {token_file})"' in line for line in lines)


def test_a_configured_admin_token_is_used_and_read_from_the_file(root):
    stack = build_stack(
        settings(data_dir=root / "d"), {"ADMIN_API_TOKEN": "configured-token"}, root=root
    )

    assert stack.services[0].env["ADMIN_API_TOKEN"] == "configured-token"
    token_file = root / "d" / "admin_token"
    assert token_file.read_text().strip() == "configured-token"
    assert stack.admin.shell_expression == f"$(cat {token_file})"


def test_envoy_config_is_rendered_for_the_chosen_ports(root):
    stack = build_stack(
        settings(envoy_port=18000, envoy_admin_port=19901, request_deadline_seconds=30),
        {},
        root=root,
        simulator_port=1,
    )

    envoy = stack.services[-1]
    config = yaml.safe_load(Path(envoy.argv[envoy.argv.index("-c") + 1]).read_text())
    listener = config["static_resources"]["listeners"][0]["address"]["socket_address"]
    assert listener == {"address": "127.0.0.1", "port_value": 18000}
    assert config["admin"]["address"]["socket_address"]["port_value"] == 19901
    assert envoy.ready.description == "HTTP 200 from http://127.0.0.1:19901/ready"
    assert stack.url == "http://127.0.0.1:18000"


def test_every_address_the_stack_binds_is_listed_with_its_variable(root):
    stack = build_stack(
        settings(
            selector_listen_address="0.0.0.0:6001",
            model_store_listen_address="127.0.0.1:6002",
            envoy_port=18000,
            metrics_host="0.0.0.0",
        ),
        {"TELEGRAM_BOT_TOKEN": "123:abc"},
        root=root,
        simulator_port=1,
    )

    assert {(x.variable, x.host, x.port) for x in stack.listeners} == {
        ("SELECTOR_LISTEN_ADDRESS", "0.0.0.0", 6001),
        ("MODEL_STORE_LISTEN_ADDRESS", "127.0.0.1", 6002),
        ("ENVOY_PORT", "127.0.0.1", 18000),
        ("ENVOY_ADMIN_PORT", "127.0.0.1", 9901),
        ("SELECTOR_METRICS_PORT", "0.0.0.0", 9101),
        ("MODEL_STORE_METRICS_PORT", "0.0.0.0", 9102),
        ("HEALTH_METRICS_PORT", "0.0.0.0", 9103),
        ("BOT_METRICS_PORT", "0.0.0.0", 9104),
    }


def test_the_bot_metrics_port_is_checked_only_when_the_bot_runs(root):
    stack = build_stack(settings(), {}, root=root, simulator_port=1)

    assert "BOT_METRICS_PORT" not in {listener.variable for listener in stack.listeners}


def test_the_stack_says_whether_client_keys_are_required(root):
    loopback = build_stack(settings(data_dir=root / "d"), {}, root=root, simulator_port=1)
    exposed = build_stack(
        settings(data_dir=root / "d", envoy_listen_host="0.0.0.0"), {}, root=root, simulator_port=1
    )
    opted_out = build_stack(
        settings(data_dir=root / "d", envoy_listen_host="0.0.0.0"),
        {"ALLOW_ANONYMOUS": "true"},
        root=root,
        simulator_port=1,
    )

    assert loopback.client_keys[0] == "open"
    assert "OPEN to anyone" in keys_banner(loopback)[0]
    assert exposed.client_keys == (
        "required",
        "the API listens beyond loopback (ENVOY_LISTEN_HOST=0.0.0.0)",
    )
    assert "REQUIRED" in keys_banner(exposed)[0]
    assert "keys create --name" in keys_banner(exposed)[1]
    assert opted_out.client_keys[0] == "anonymous"
    # The Selector decides from the same host.
    assert exposed.services[0].env["ENVOY_LISTEN_HOST"] == "0.0.0.0"


def test_each_selector_replica_is_a_service_on_its_own_ports_behind_envoy(root):
    stack = build_stack(
        settings(selector_replicas=3, selector_listen_address="0.0.0.0:6001"),
        {},
        root=root,
        simulator_port=1,
    )

    replicas = [s for s in stack.services if s.name.startswith("selector")]
    assert [s.name for s in replicas] == ["selector", "selector-2", "selector-3"]
    assert names(stack) == ["simulator", "data", *[s.name for s in replicas], "health", "envoy"]
    listens = [s.env["SELECTOR_LISTEN_ADDRESS"] for s in replicas]
    assert listens == ["0.0.0.0:6001", "0.0.0.0:6011", "0.0.0.0:6021"]
    assert [s.env["SELECTOR_METRICS_PORT"] for s in replicas] == ["9101", "9111", "9121"]
    assert [s.ready.description for s in replicas] == [
        f"gRPC health SERVING at 127.0.0.1:{port} (aiselector.v1.Selector)"
        for port in (6001, 6011, 6021)
    ]
    assert stack.selectors == ("127.0.0.1:6001", "127.0.0.1:6011", "127.0.0.1:6021")
    # The health worker (and the bot) balance over every replica; so does Envoy.
    health = next(s for s in stack.services if s.name == "health")
    assert health.env["SELECTOR_ADDRESS"] == "ipv4:127.0.0.1:6001,127.0.0.1:6011,127.0.0.1:6021"
    envoy = stack.services[-1]
    config = yaml.safe_load(Path(envoy.argv[envoy.argv.index("-c") + 1]).read_text())
    [locality] = config["static_resources"]["clusters"][0]["load_assignment"]["endpoints"]
    ports = [
        e["endpoint"]["address"]["socket_address"]["port_value"] for e in locality["lb_endpoints"]
    ]
    assert ports == [6001, 6011, 6021]
    # Every replica's ports are checked before anything starts, named with their variable.
    assert {(x.variable, x.port) for x in stack.listeners} >= {
        ("SELECTOR_LISTEN_ADDRESS", 6001),
        ("SELECTOR_LISTEN_ADDRESS (+10, replica 2)", 6011),
        ("SELECTOR_LISTEN_ADDRESS (+20, replica 3)", 6021),
        ("SELECTOR_METRICS_PORT (+10, replica 2)", 9111),
        ("SELECTOR_METRICS_PORT (+20, replica 3)", 9121),
    }


def test_one_selector_keeps_the_plain_address_and_the_default_is_one_per_two_cores():
    assert [default_replicas(n) for n in (None, 1, 2, 3, 4, 16)] == [1, 1, 1, 1, 2, 8]
    assert client_target(("127.0.0.1:50051",)) == "127.0.0.1:50051"
    assert client_target(("localhost:1", "[::1]:2")).startswith(("ipv4:", "ipv6:"))
    with pytest.raises(ValidationError, match="selector_replicas"):
        StackSettings(_env_file=None, selector_replicas=0)  # type: ignore[call-arg]
