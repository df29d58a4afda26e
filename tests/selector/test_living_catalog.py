"""Model discovery against the simulator's model lists, with the real Selector and ModelStore:
unlisted models set aside and back, failing lists that change nothing, new free models reported
and (on opt-in) added to survive a restart, and the demo run's catalog listed whole."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
import pytest

from aiselector.v1 import common_pb2, model_store_pb2, selector_pb2, selector_pb2_grpc
from services.common.channels import open_channel
from services.selector.app import start_selector
from services.selector.settings import SelectorSettings
from services.simulator import start_simulator
from tests.stacks import ADMIN_TOKEN, PROVIDERS, Stack

ADMIN = (("authorization", f"Bearer {ADMIN_TOKEN}"),)
# The catalog's models as the simulator serves them: alpha/m1, alpha/m2, beta/m1, gamma/m1.
TWO_AT_ALPHA = {"alpha/m2": {}}


async def discover(stack: Stack) -> dict[str, selector_pb2.ProviderDiscovery]:
    reply = await stack.stub().DiscoverModels(
        selector_pb2.DiscoverModelsRequest(), metadata=ADMIN, timeout=15
    )
    return {report.provider: report for report in reply.providers}


async def stats(stack: Stack) -> dict[str, selector_pb2.ModelStats]:
    reply = await stack.stub().GetModelStats(selector_pb2.GetModelStatsRequest(), timeout=5)
    return {model.name: model for model in reply.models}


def serve(stack: Stack, **models: list[Any]) -> None:
    """Every test provider serves (and lists) `m1`, or what `models` says for it."""
    for provider in PROVIDERS:
        stack.sim.set_models(provider, models.get(provider, ["m1"]))


async def test_a_model_the_provider_stops_listing_is_set_aside_until_it_is_listed_again(
    make_stack,
):
    stack = await make_stack(models=TWO_AT_ALPHA)
    serve(stack, alpha=["m1", "m2"])
    first = await discover(stack)
    assert {p: (r.listed_models, list(r.unlisted), r.error) for p, r in first.items()} == {
        "alpha": (2, [], ""),
        "beta": (1, [], ""),
        "gamma": (1, [], ""),
    }

    stack.sim.retire_model("alpha", "m2")
    gone = await discover(stack)

    [unlisted] = gone["alpha"].unlisted
    assert unlisted.model == "alpha/m2"
    assert unlisted.reason.startswith("not listed by alpha since ")
    assert unlisted.reason.endswith(" UTC — update catalog.yaml")
    model = (await stats(stack))["alpha/m2"]
    assert model.state == selector_pb2.MODEL_STATE_UNLISTED
    assert model.state_reason == unlisted.reason
    assert model.is_active
    assert model.rank == 0
    stack.sim.clear_log()
    answer = await stack.ask(model_name="alpha/m2")
    assert answer.selected_model != "alpha/m2"
    assert unlisted.reason in answer.pin_note
    assert all(entry["model"] != "m2" for entry in stack.sim.log())

    # Saved in ModelStore: a restarted Selector keeps it aside, and a second run keeps its time.
    await stack.restart_selector()
    assert (await stats(stack))["alpha/m2"].state == selector_pb2.MODEL_STATE_UNLISTED
    again = await discover(stack)
    assert list(again["alpha"].unlisted) == [unlisted]

    serve(stack, alpha=["m1", "m2"])
    back = await discover(stack)

    assert list(back["alpha"].relisted) == ["alpha/m2"]
    assert list(back["alpha"].unlisted) == []
    model = (await stats(stack))["alpha/m2"]
    assert (model.state, model.state_reason) == (selector_pb2.MODEL_STATE_READY, "")
    assert (await stack.ask(model_name="alpha/m2")).selected_model == "alpha/m2"


async def test_probes_skip_a_model_its_provider_no_longer_lists(make_stack):
    stack = await make_stack(models=TWO_AT_ALPHA)
    serve(stack, alpha=["m1"])
    await discover(stack)

    reply = await stack.stub().TestProviders(
        selector_pb2.TestProvidersRequest(), metadata=ADMIN, timeout=10
    )

    row = next(r for r in reply.results if r.model == "alpha/m2")
    assert row.status == selector_pb2.TEST_STATUS_SKIPPED
    assert row.error.startswith("not probed: not listed by alpha")
    assert all(entry["model"] != "m2" for entry in stack.sim.log())


@pytest.mark.parametrize(
    ("fault", "settings", "error"),
    [
        (500, {}, "model list: HTTP 500 from alpha"),
        ("silence", {"model_list_timeout_seconds": 0.5}, "did not come within 0.5 s"),
        ([], {}, "alpha listed no chat model; nothing was changed"),
    ],
)
async def test_a_list_that_cannot_be_read_changes_nothing(make_stack, fault, settings, error):
    stack = await make_stack(models=TWO_AT_ALPHA, **settings)
    serve(stack, alpha=["m1"])
    await discover(stack)  # alpha/m2 is aside now
    if fault == []:
        serve(stack, alpha=[])  # an empty list (alpha/m1 "missing" too)
    else:
        outage = {"start": 0, "end": 3600, "behaviour": fault}
        stack.sim.set_scripts(
            {
                "default": {"latency": 0.01},
                "providers": {p: {"models": ["m1", "m2"]} for p in PROVIDERS},
                "scripts": {"alpha/*": {"outage": outage}},
            }
        )
    before = await stats(stack)

    report = (await discover(stack))["alpha"]

    assert error in report.error
    assert (list(report.unlisted), list(report.relisted)) == ([], [])
    after = await stats(stack)
    for name in ("alpha/m1", "alpha/m2"):
        assert (after[name].state, after[name].state_reason) == (
            before[name].state,
            before[name].state_reason,
        )
    assert after["alpha/m2"].state == selector_pb2.MODEL_STATE_UNLISTED


async def test_a_result_modelstore_cannot_save_changes_nothing(make_stack):
    stack = await make_stack(models=TWO_AT_ALPHA)
    serve(stack, alpha=["m1"])
    await stack.stop_store()

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await discover(stack)

    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "nothing changed" in (caught.value.details() or "")
    assert (await stats(stack))["alpha/m2"].state == selector_pb2.MODEL_STATE_READY


async def test_providers_without_a_key_are_not_read(make_stack):
    stack = await make_stack(keys=("alpha",))
    serve(stack)

    reports = await discover(stack)

    assert reports["alpha"].error == ""
    assert reports["beta"].error == "not read: BETA_API_KEY is not set"
    assert reports["gamma"].listed_models == 0


@pytest.mark.parametrize(
    ("listed", "words"),
    [
        ({"id": "m1:free", "free": False}, "no longer free at alpha since "),
        (
            {"id": "m1:free", "expires": "2020-01-01"},
            "past its expiration date 2020-01-01 at alpha",
        ),
    ],
)
async def test_an_openrouter_style_model_no_longer_free_or_expired_is_set_aside(
    make_stack, listed, words
):
    stack = await make_stack(
        {"alpha/*": {"profile": "openrouter"}},
        models={"alpha/m1": {"provider_model_id": "m1:free"}},
    )
    serve(stack, alpha=[listed])

    [unlisted] = (await discover(stack))["alpha"].unlisted

    assert words in unlisted.reason
    assert (await stats(stack))["alpha/m1"].state == selector_pb2.MODEL_STATE_UNLISTED


async def test_a_groq_style_inactive_model_is_set_aside(make_stack):
    stack = await make_stack({"beta/*": {"profile": "groq"}})
    serve(stack, beta=[{"id": "m1", "active": False}])

    [unlisted] = (await discover(stack))["beta"].unlisted

    assert unlisted.reason.startswith("listed as inactive by beta since ")


FREE_AT_ALPHA = {
    "alpha": [
        "m1:free",
        {"id": "vendor/new:free", "context": 32768},
        {"id": "vendor/paid", "free": False},
    ]
}


async def _openrouter_stack(make_stack, **settings: Any) -> Stack:
    stack = await make_stack(
        {"alpha/*": {"profile": "openrouter"}},
        models={"alpha/m1": {"provider_model_id": "m1:free"}},
        providers={"alpha": {"limits": {"timeout_ms": 2000, "max_output": 256, "context": 65536}}},
        **settings,
    )
    serve(stack, **FREE_AT_ALPHA)
    return stack


async def test_a_new_free_model_is_reported_and_not_added_by_default(make_stack):
    stack = await _openrouter_stack(make_stack)

    report = (await discover(stack))["alpha"]

    assert [(m.provider_model_id, m.context_tokens, m.added) for m in report.new_free_models] == [
        ("vendor/new:free", 32768, False)
    ]
    assert report.new_free_models[0].note == "not added: CATALOG_AUTO_ADD is off"
    assert list(report.unlisted) == []
    assert "alpha/vendor/new:free" not in await stats(stack)


async def test_with_auto_add_a_new_free_model_is_added_routed_and_survives_a_restart(make_stack):
    stack = await _openrouter_stack(make_stack, catalog_auto_add=True)

    [new] = (await discover(stack))["alpha"].new_free_models

    assert (new.added, new.model, new.note) == (True, "alpha/vendor/new:free", "")
    added = (await stats(stack))["alpha/vendor/new:free"]
    assert added.state == selector_pb2.MODEL_STATE_READY
    assert list(added.tags) == []
    answer = await stack.ask(model_name="alpha/vendor/new:free")
    assert answer.selected_model == "alpha/vendor/new:free"
    assert (await discover(stack))["alpha"].new_free_models == []  # in the catalog now

    # ModelStore applies the catalog file again at its start: the discovered model stays.
    await stack.stop_store()
    await stack.start_store()
    await stack.restart_selector()
    model = (
        await stack.store_stub().GetModel(
            model_store_pb2.GetModelRequest(name="alpha/vendor/new:free"), timeout=5
        )
    ).model
    assert model.is_active
    assert model.origin == common_pb2.MODEL_ORIGIN_DISCOVERED
    assert not model.supports_json
    assert model.limits.context_tokens == 32768  # the list's, under the provider's 65,536
    assert model.limits.max_output_tokens == 256  # the provider's default
    assert (await stats(stack))["alpha/vendor/new:free"].state == selector_pb2.MODEL_STATE_READY


@pytest.mark.parametrize(
    ("metadata", "code"),
    [
        ((), grpc.StatusCode.UNAUTHENTICATED),
        ((("authorization", "Bearer wrong"),), grpc.StatusCode.PERMISSION_DENIED),
    ],
)
async def test_discovery_is_an_admin_method(make_stack, metadata, code):
    stack = await make_stack()

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stack.stub().DiscoverModels(
            selector_pb2.DiscoverModelsRequest(), metadata=metadata, timeout=5
        )

    assert caught.value.code() == code


DEMO = Path(__file__).resolve().parents[2] / "services" / "simulator" / "scenarios" / "demo.yaml"


async def test_the_demo_run_lists_every_active_model_of_the_repo_catalog(model_store):
    """`make run` without keys: the simulator lists the catalog's models in each provider's shape
    (Gemini, Cloudflare and OpenRouter included), so discovery sets nothing aside."""
    simulator = await start_simulator(DEMO)
    settings = SelectorSettings(
        _env_file=None,
        selector_listen_address="127.0.0.1:0",
        model_store_address=model_store.address,
        admin_api_token=ADMIN_TOKEN,
    )
    selector = await start_selector(settings, simulator.provider_environ())
    try:
        await selector.wait_ready(10)
        async with open_channel(selector.address, private=True) as channel:
            reply = await selector_pb2_grpc.SelectorStub(channel).DiscoverModels(
                selector_pb2.DiscoverModelsRequest(), metadata=ADMIN, timeout=15
            )
    finally:
        await selector.stop()
        await simulator.close()

    reports = {r.provider: r for r in reply.providers}
    assert set(reports) == {"gemini", "groq", "cerebras", "cloudflare", "openrouter"}
    for provider, report in reports.items():
        assert (report.error, list(report.unlisted)) == ("", []), provider
        assert report.listed_models >= 2, provider
        assert list(report.new_free_models) == [], provider
