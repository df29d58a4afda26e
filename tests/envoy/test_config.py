"""The rendered Envoy config: only public routes, loopback admin, limits and timeouts set."""

from __future__ import annotations

from pathlib import Path

import pytest
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


def all_routes(config: dict) -> list[dict]:
    return connection_manager(config)["route_config"]["virtual_hosts"][0]["routes"]


def selector_routes(config: dict) -> list[dict]:
    """The routes that reach the Selector (the others answer directly)."""
    return [r for r in all_routes(config) if "route" in r]


def upstream_http_options(config: dict) -> dict:
    [cluster] = config["static_resources"]["clusters"]
    return cluster["typed_extension_protocol_options"][
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
    ]


def test_routes_are_exactly_the_public_selector_methods_with_the_grpc_matcher():
    routes = selector_routes(rendered())

    service = selector_pb2.DESCRIPTOR.services_by_name["Selector"]
    expected = {f"/{service.full_name}/{m.name}" for m in service.methods}
    assert {r["match"]["path"] for r in routes} == expected
    assert all(r["match"]["grpc"] == {} for r in routes)
    assert all(r["route"]["cluster"] == "selector" for r in routes)


def test_a_malformed_grpc_timeout_is_answered_before_routing():
    routes = all_routes(rendered())
    [guard] = [r for r in routes if r.get("direct_response", {}).get("status") == 400]

    assert guard["direct_response"]["status"] == 400
    assert "grpc-timeout" in guard["direct_response"]["body"]["inline_string"]
    present, malformed = guard["match"]["headers"]
    assert present == {"name": "grpc-timeout", "present_match": True}
    assert malformed["invert_match"] is True
    assert routes[0] is guard


def test_route_timeout_outlasts_the_selector_deadline():
    routes = selector_routes(rendered(request_deadline_seconds=60))

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
    monitors = {
        m["name"]: m["typed_config"] for m in config["overload_manager"]["resource_monitors"]
    }
    connections = monitors["envoy.resource_monitors.global_downstream_max_connections"]
    assert connections["max_active_downstream_connections"] == 1000
    heap = monitors["envoy.resource_monitors.fixed_heap"]
    assert heap["max_heap_size_bytes"] == 1024 * 1024 * 1024
    actions = {a["name"] for a in config["overload_manager"]["actions"]}
    assert "envoy.overload_actions.stop_accepting_requests" in actions
    [thresholds] = config["static_resources"]["clusters"][0]["circuit_breakers"]["thresholds"]
    assert thresholds["max_requests"] == 256
    assert thresholds["max_pending_requests"] == 256
    manager = connection_manager(config)
    assert manager["http2_protocol_options"]["max_concurrent_streams"] == 100
    assert manager["max_request_headers_kb"] == 16
    assert manager["common_http_protocol_options"]["max_headers_count"] == 100


def test_timeouts_cut_silent_and_slow_clients_but_not_long_answers():
    config = rendered(request_deadline_seconds=60)
    manager = connection_manager(config)

    assert config["static_resources"]["listeners"][0]["listener_filters_timeout"] == "5s"
    assert manager["request_headers_timeout"] == "10s"
    assert manager["request_timeout"] == "30s"
    assert manager["common_http_protocol_options"]["idle_timeout"] == "60s"
    assert manager["stream_idle_timeout"] == "65s"
    lowered = rendered(first_byte_timeout_seconds=0.5, request_timeout_seconds=2.25)
    assert lowered["static_resources"]["listeners"][0]["listener_filters_timeout"] == "0.5s"
    assert connection_manager(lowered)["request_timeout"] == "2.25s"


def test_envoys_own_503s_carry_retry_after():
    mappers = connection_manager(rendered())["local_reply_config"]["mappers"]
    unavailable = [m for m in mappers if _statuses(m) == [("EQ", 503)]]

    assert len(unavailable) == 2  # OpenAI's shape on /v1/, the JSON API's elsewhere
    for mapper in unavailable:
        [header] = mapper["headers_to_add"]
        assert header["header"] == {"key": "retry-after", "value": "5"}


def _statuses(mapper: dict) -> list[tuple[str, int]]:
    """The (op, status) comparisons a local-reply mapper's filter makes."""
    found = []
    pending = [mapper["filter"]]
    while pending:
        node = pending.pop()
        if "status_code_filter" in node:
            comparison = node["status_code_filter"]["comparison"]
            found.append((comparison["op"], comparison["value"]["default_value"]))
        for group in ("and_filter", "or_filter"):
            pending += node.get(group, {}).get("filters", [])
    return found


def test_envoys_own_errors_on_the_openai_routes_have_openais_shape():
    mappers = connection_manager(rendered())["local_reply_config"]["mappers"]
    openai = [m for m in mappers if "json_format" in m.get("body_format_override", {})]

    types = {
        _statuses(m)[0]: m["body_format_override"]["json_format"]["error"]["type"] for m in openai
    }
    assert types == {
        ("EQ", 503): "server_error",
        ("EQ", 404): "not_found_error",
        ("GE", 500): "server_error",
        ("GE", 400): "invalid_request_error",
    }
    # First match wins: the exact statuses come before the ranges.
    order = [_statuses(m)[0] for m in openai]
    assert order.index(("GE", 500)) > order.index(("EQ", 503))
    assert order.index(("GE", 400)) > order.index(("GE", 500))
    for mapper in openai:
        paths = mapper["filter"]["and_filter"]["filters"][0]["or_filter"]["filters"]
        names = {p["header_filter"]["header"]["name"] for p in paths}
        assert names == {":path", "x-envoy-original-path"}


def test_the_lua_filter_rewrites_openai_errors_before_the_transcoder_sees_the_reply():
    names = list(filters(rendered()))

    assert names.index("envoy.filters.http.lua") < names.index(
        "envoy.filters.http.grpc_json_transcoder"
    )
    lua = filters(rendered())["envoy.filters.http.lua"]["default_source_code"]["inline_string"]
    assert "x-openai-error-body" in lua
    assert ':status") ~= "200"' in lua


def test_a_server_stream_is_server_sent_events():
    transcoder = filters(rendered())["envoy.filters.http.grpc_json_transcoder"]

    assert transcoder["print_options"]["stream_sse_style_delimited"] is True


def test_an_oversized_upstream_header_cannot_reset_the_shared_connection_below_256_kib():
    options = upstream_http_options(rendered())

    assert options["common_http_protocol_options"]["max_response_headers_kb"] == 256
    http2 = options["explicit_http_config"]["http2_protocol_options"]
    assert http2["max_header_field_size_kb"] == 256


def test_access_log_path_leaves_out_the_query_string():
    [log] = connection_manager(rendered())["access_log"]

    assert log["typed_config"]["log_format"]["json_format"]["path"] == "%PATH(NQ:ORIG_OR_PATH)%"


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


def test_the_status_page_files_are_direct_responses_read_from_the_web_folder(tmp_path: Path):
    config = rendered(web_dir=tmp_path)
    pages = {
        r["match"]["path"]: r
        for r in all_routes(config)
        if r.get("direct_response", {}).get("status") == 200
    }

    assert {path: r["direct_response"]["body"]["filename"] for path, r in pages.items()} == {
        "/": str(tmp_path / "index.html"),
        "/status.js": str(tmp_path / "status.js"),
        "/status.css": str(tmp_path / "status.css"),
    }
    for route in pages.values():
        [method] = route["match"]["headers"]
        assert method["string_match"]["safe_regex"]["regex"] == "GET|HEAD"
        headers = {
            h["header"]["key"]: h["header"]["value"] for h in route["response_headers_to_add"]
        }
        assert "default-src 'none'" in headers["content-security-policy"]
        assert "connect-src 'self'" in headers["content-security-policy"]
        transcoder = route["typed_per_filter_config"]["envoy.filters.http.grpc_json_transcoder"]
        assert transcoder["disabled"] is True
    # Envoy's 4 KiB default would refuse the files.
    assert (
        connection_manager(config)["route_config"]["max_direct_response_body_size_bytes"] >= 65536
    )
    # Each file keeps its body and gets its type, instead of Envoy's JSON local-reply format.
    mappers = connection_manager(config)["local_reply_config"]["mappers"]
    types = [
        m["body_format_override"]["content_type"]
        for m in mappers
        if "text_format_source" in m.get("body_format_override", {})
    ]
    assert [t.split(";")[0] for t in types] == ["text/javascript", "text/css", "text/html"]
    assert all(("EQ", 200) in _statuses(m) for m in mappers[:3])


def test_the_web_folder_holds_every_file_a_page_route_serves():
    config = rendered()
    for route in all_routes(config):
        body = route.get("direct_response", {}).get("body", {})
        if "filename" in body:
            assert Path(body["filename"]).is_file(), body["filename"]
            assert Path(body["filename"]).stat().st_size <= 65536


def selector_cluster(config: dict) -> dict:
    [cluster] = config["static_resources"]["clusters"]
    return cluster


def test_every_replica_is_an_endpoint_balanced_by_least_request_and_health_checked():
    addresses = "127.0.0.1:50051, 127.0.0.1:50061,127.0.0.1:50071"
    config = yaml.safe_load(render(EnvoyConfig(selector_address=addresses)))
    cluster = selector_cluster(config)

    [locality] = cluster["load_assignment"]["endpoints"]
    addresses = [e["endpoint"]["address"]["socket_address"] for e in locality["lb_endpoints"]]
    assert addresses == [
        {"address": "127.0.0.1", "port_value": port} for port in (50051, 50061, 50071)
    ]
    assert cluster["lb_policy"] == "LEAST_REQUEST"
    [check] = cluster["health_checks"]
    assert check["grpc_health_check"] == {"service_name": "aiselector.v1.Selector"}
    assert (check["interval"], check["timeout"], check["unhealthy_threshold"]) == ("1s", "2s", 2)
    assert check["healthy_threshold"] == 1


def test_a_dead_replica_is_ejected_but_the_selectors_own_errors_never_eject_one():
    outlier = selector_cluster(rendered())["outlier_detection"]

    assert outlier["split_external_local_origin_errors"] is True
    assert outlier["consecutive_local_origin_failure"] == 2
    assert outlier["enforcing_consecutive_local_origin_failure"] == 100
    for answer_based in (
        "enforcing_consecutive_5xx",
        "enforcing_consecutive_gateway_failure",
        "enforcing_success_rate",
    ):
        assert outlier[answer_based] == 0, answer_based
    assert outlier["max_ejection_percent"] == 100


def test_only_requests_no_replica_accepted_are_retried_and_on_another_replica():
    config = rendered()
    [host] = connection_manager(config)["route_config"]["virtual_hosts"]
    policy = host["retry_policy"]

    # Never `reset`, `5xx` or `retriable-status-codes`: a ProcessPrompt a replica accepted may
    # already have reached a provider.
    assert policy["retry_on"] == "connect-failure,refused-stream"
    assert policy["num_retries"] == 2
    [predicate] = policy["retry_host_predicate"]
    assert predicate["name"] == "envoy.retry_host_predicates.previous_hosts"
    assert not any("retry_policy" in r.get("route", {}) for r in all_routes(config))
    [thresholds] = selector_cluster(config)["circuit_breakers"]["thresholds"]
    assert thresholds["max_retries"] == 64


def test_no_selector_address_is_a_clear_error():
    with pytest.raises(ValueError, match="selector_address: expected at least one host:port"):
        render(EnvoyConfig(selector_address=" , "))
