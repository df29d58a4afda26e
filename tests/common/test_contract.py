"""The contract: public HTTP mappings, per-RPC messages, enum zero values, documented elements."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.api import annotations_pb2
from google.protobuf import descriptor_pb2

ROOT = Path(__file__).resolve().parents[2]
DESCRIPTOR_SET = ROOT / "build" / "aiselector.pb"


# Deliberate exceptions to "each RPC has its own `<Method>Request` and `<Method>Response`", each
# marked `buf:lint:ignore` in selector.proto: OpenAI's raw bodies, and StreamPrompt taking
# ProcessPrompt's request.
HTTP_BODY = ".google.api.HttpBody"
SHARED_REQUESTS = {"StreamPrompt": "ProcessPromptRequest"}


def _ours(fds: descriptor_pb2.FileDescriptorSet) -> list[descriptor_pb2.FileDescriptorProto]:
    return [f for f in fds.file if f.package == "aiselector.v1"]


@pytest.fixture(scope="module")
def files() -> list[descriptor_pb2.FileDescriptorProto]:
    return _ours(descriptor_pb2.FileDescriptorSet.FromString(DESCRIPTOR_SET.read_bytes()))


def _services(files: list[descriptor_pb2.FileDescriptorProto]):
    return [(f, s) for f in files for s in f.service]


def _http_rule(method: descriptor_pb2.MethodDescriptorProto):
    return method.options.Extensions[annotations_pb2.http]


def test_descriptor_maps_exactly_the_public_endpoints(files):
    mapped = {}
    for _, service in _services(files):
        for method in service.method:
            rule = _http_rule(method)
            verb = rule.WhichOneof("pattern")
            if verb:
                mapped[(verb.upper(), getattr(rule, verb))] = f"{service.name}/{method.name}"
    assert mapped == {
        ("POST", "/api/v1/prompts/process"): "Selector/ProcessPrompt",
        ("POST", "/api/v1/prompts/stream"): "Selector/StreamPrompt",
        ("GET", "/api/v1/models/stats"): "Selector/GetModelStats",
        ("GET", "/api/v1/models/timeline"): "Selector/GetModelTimeline",
        ("POST", "/api/v1/providers/test"): "Selector/TestProviders",
        ("POST", "/api/v1/models/discover"): "Selector/DiscoverModels",
        ("POST", "/v1/chat/completions"): "Selector/ChatCompletions",
        ("GET", "/v1/models"): "Selector/ListOpenAIModels",
        ("POST", "/api/v1/admin/keys"): "Selector/CreateClientKey",
        ("GET", "/api/v1/admin/keys"): "Selector/ListClientKeys",
        ("POST", "/api/v1/admin/keys/{client_key_id}:revoke"): "Selector/RevokeClientKey",
        ("GET", "/api/v1/admin/keys/usage"): "Selector/GetClientKeyUsage",
    }


def test_streaming_methods_and_raw_bodies_are_declared_for_the_transcoder():
    fds = descriptor_pb2.FileDescriptorSet.FromString(DESCRIPTOR_SET.read_bytes())
    assert "google/api/httpbody.proto" in {f.name for f in fds.file}
    selector = next(s for _, s in _services(_ours(fds)) if s.name == "Selector")
    shapes = {
        m.name: (m.input_type, m.output_type, m.client_streaming, m.server_streaming)
        for m in selector.method
    }
    assert shapes["ChatCompletions"] == (HTTP_BODY, HTTP_BODY, False, True)
    assert shapes["ListOpenAIModels"][1:] == (HTTP_BODY, False, False)
    assert shapes["StreamPrompt"] == (
        ".aiselector.v1.ProcessPromptRequest",
        ".aiselector.v1.StreamPromptResponse",
        False,
        True,
    )


def test_model_store_has_no_http_mapping(files):
    store = [s for _, s in _services(files) if s.name == "ModelStore"]
    assert store, "ModelStore service missing"
    assert all(_http_rule(m).WhichOneof("pattern") is None for m in store[0].method)


def test_every_rpc_has_its_own_request_and_response(files):
    seen: set[str] = set()
    for _, service in _services(files):
        for method in service.method:
            if method.input_type != HTTP_BODY:
                request = method.input_type.rsplit(".", 1)[-1]
                assert request == SHARED_REQUESTS.get(method.name, f"{method.name}Request")
                if method.name not in SHARED_REQUESTS:
                    assert request not in seen
                    seen.add(request)
            if method.output_type != HTTP_BODY:
                response = method.output_type.rsplit(".", 1)[-1]
                assert response == f"{method.name}Response"
                assert response not in seen
                seen.add(response)


def _all_enums(files):
    for f in files:
        yield from f.enum_type
        for message in f.message_type:
            yield from message.enum_type


def test_every_enum_zero_value_is_unspecified(files):
    enums = list(_all_enums(files))
    assert enums
    for enum in enums:
        zero = enum.value[0]
        assert zero.number == 0
        assert zero.name.endswith("_UNSPECIFIED"), enum.name


def test_every_element_is_commented(files):
    for f in files:
        documented = {
            tuple(loc.path) for loc in f.source_code_info.location if loc.leading_comments.strip()
        }
        # path kinds: 4 = message, 5 = enum, 6 = service; 2 = field, 2 (enum) = value, 2 = method
        for i, message in enumerate(f.message_type):
            assert (4, i) in documented, message.name
            for j, field in enumerate(message.field):
                assert (4, i, 2, j) in documented, f"{message.name}.{field.name}"
        for i, enum in enumerate(f.enum_type):
            assert (5, i) in documented, enum.name
            for j, value in enumerate(enum.value):
                assert (5, i, 2, j) in documented, value.name
        for i, service in enumerate(f.service):
            assert (6, i) in documented, service.name
            for j, method in enumerate(service.method):
                assert (6, i, 2, j) in documented, method.name
