"""The rendered Envoy config: only public routes, loopback admin, limits and timeouts set."""

from __future__ import annotations

from pathlib import Path

import yaml

from aiselector.v1 import selector_pb2
from services.stack.envoy_config import EnvoyConfig, render, split_address


def rendered(**overrides: object) -> dict:
    return yaml.safe_load(render(EnvoyConfig(selector_address="selector:50051", **overrides)))


def connection_manager(config: dict) -> dict:
    listener = config["static_resources"]["listeners"][0]
    return listener["filter_chains"][0]["filters"][0]["typed_config"]


def filters(config: dict) -> dict[str, dict]:
    return {
        f["name"]: f.get("typed_config", {}) for f in connection_manager(config)["http_filters"]
    }


def test_routes_are_exactly_the_public_selector_methods_with_the_grpc_matcher():
    routes = connection_manager(rendered())["route_config"]["virtual_hosts"][0]["routes"]

    service = selector_pb2.DESCRIPTOR.services_by_name["Selector"]
    # Issue 14 phase 2 routes the streaming and OpenAI methods, once the Selector serves them.
    unrouted = {"StreamPrompt", "ChatCompletions", "ListOpenAIModels"}
    expected = {f"/{service.full_name}/{m.name}" for m in service.methods if m.name not in unrouted}
    assert {r["match"]["path"] for r in routes} == expected
    assert all(r["match"]["grpc"] == {} for r in routes)
    assert all(r["route"]["cluster"] == "selector" for r in routes)


def test_route_timeout_outlasts_the_selector_deadline():
    routes = connection_manager(rendered(request_deadline_seconds=60))["route_config"][
        "virtual_hosts"
    ][0]["routes"]

    assert {r["route"]["timeout"] for r in routes} == {"65s"}


def test_admin_listens_on_loopback_even_when_the_public_listener_does_not():
    config = rendered(listen_host="0.0.0.0")

    assert config["admin"]["address"]["socket_address"]["address"] == "127.0.0.1"
    listener = config["static_resources"]["listeners"][0]["address"]["socket_address"]
    assert listener["address"] == "0.0.0.0"


def test_transcoder_keeps_field_names_prints_defaults_and_rejects_unknowns():
    transcoder = filters(rendered(descriptor_path=Path("/etc/envoy/aiselector.pb")))[
        "envoy.filters.http.grpc_json_transcoder"
    ]

    assert transcoder["proto_descriptor"] == "/etc/envoy/aiselector.pb"
    assert transcoder["services"] == ["aiselector.v1.Selector"]
    assert transcoder["convert_grpc_status"] is True
    assert transcoder["print_options"]["preserve_proto_field_names"] is True
    assert transcoder["print_options"]["always_print_primitive_fields"] is True
    assert transcoder["request_validation_options"] == {
        "reject_unknown_method": True,
        "reject_unknown_query_parameters": True,
    }


def test_limits_are_set():
    config = rendered()

    assert filters(config)["envoy.filters.http.buffer"]["max_request_bytes"] == 1024 * 1024
    monitor = config["overload_manager"]["resource_monitors"][0]
    assert monitor["typed_config"]["max_active_downstream_connections"] == 1000
    [thresholds] = config["static_resources"]["clusters"][0]["circuit_breakers"]["thresholds"]
    assert thresholds["max_requests"] == 256
    assert thresholds["max_pending_requests"] == 256
    assert connection_manager(config)["http2_protocol_options"]["max_concurrent_streams"] == 100


def test_the_edge_generates_and_returns_the_request_id():
    manager = connection_manager(rendered())

    assert manager["generate_request_id"] is True
    assert manager["preserve_external_request_id"] is False
    assert manager["always_set_request_id_in_response"] is True
    assert manager["local_reply_config"]["body_format"]["json_format"]["code"] == "%RESPONSE_CODE%"


def test_split_address_accepts_names_ipv4_and_ipv6():
    assert split_address("selector:50051") == ("selector", 50051)
    assert split_address("127.0.0.1:1") == ("127.0.0.1", 1)
    assert split_address("[::1]:8000") == ("::1", 8000)
