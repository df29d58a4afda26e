"""The status page in a real headless Chromium, served by the real Envoy in front of the real
Selector, ModelStore (PostgreSQL) and the provider simulator."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from aiselector.v1 import common_pb2, model_store_pb2
from services.selector.app import start_selector
from services.selector.settings import SelectorSettings
from tests.data.rpc import attempt
from tests.stacks import ADMIN_TOKEN
from tests.web.browser import Browser, poll

MODELS = ["alpha/m1", "beta/m1", "gamma/m1"]
# Declared free-tier limits, so the page draws budget bars against them.
LIMITED = {
    p: {"limits": {"timeout_ms": 2000, "max_output": 256, "rpm": 30, "rpd": 500, "tpd": 200_000}}
    for p in ("alpha", "beta", "gamma")
}
# Seconds between the page's refreshes in these tests (`?refresh=`); the page's default is 10.
REFRESH = 1
# One refresh, plus the time a slow machine may take to make and draw it.
ONE_REFRESH = REFRESH + 4


# Every model card as {name: {state, label, reason, failures, successes, bars}}.
CARDS = """JSON.stringify(Object.fromEntries([...document.querySelectorAll('.model')].map(c => [
        c.dataset.model, {
          state: c.dataset.state,
          label: c.querySelector('[data-field=state]').textContent,
          reason: c.querySelector('[data-field=reason]').textContent,
          failures: Number(c.querySelector('svg.chart').dataset.failures),
          successes: Number(c.querySelector('svg.chart').dataset.successes),
          bars: Object.fromEntries([...c.querySelectorAll('.budget')].map(b => [
            b.dataset.budget, b.querySelector('.bar div')?.style.width ?? null])),
        }])))"""


def percent(width: str) -> float:
    """A bar's CSS width as a number ("12.5%" → 12.5)."""
    assert width.endswith("%"), width
    return float(width[:-1])


async def page_models(browser: Browser) -> dict[str, dict]:
    return json.loads(await browser.evaluate(CARDS))


async def api_states(http) -> dict[str, str]:
    stats = (await http.get("/api/v1/models/stats")).json()
    return {m["name"]: m["state"] for m in stats["models"]}


async def test_the_page_shows_every_model_with_its_state_and_logs_no_error(
    front, browser, tmp_path: Path
):
    stack, envoy, http = await front(providers=LIMITED)
    for _ in range(3):
        reply = await http.post("/api/v1/prompts/process", json={"prompt": "Hi"})
        assert reply.status_code == 200
    await stack.selector.recorder.flush()  # in ModelStore before the page's first read
    await browser.viewport(1280, 900)

    await browser.open(f"{envoy.url}/?refresh={REFRESH}")
    await browser.wait_for("document.querySelectorAll('.model').length === 3", timeout=10)

    shown = await page_models(browser)
    assert {name: m["state"] for name, m in shown.items()} == await api_states(http)
    assert all(m["label"] == "ready" for m in shown.values())
    assert sum(m["successes"] for m in shown.values()) == 3
    stats = {m["name"]: m for m in (await http.get("/api/v1/models/stats")).json()["models"]}
    for name, model in shown.items():
        budget, bars = stats[name]["budget"], model["bars"]
        assert percent(bars["requests today"]) == pytest.approx(
            100 * budget["requests_today"] / 500, abs=0.05
        )
        assert percent(bars["requests this minute"]) == pytest.approx(
            100 * budget["requests_last_minute"] / 30, abs=0.05
        )
        assert model["bars"]["tokens today"] is not None
    totals = await browser.evaluate(
        "['total-prompts', 'total-answered', 'total-failovers', 'total-ready']"
        ".map(id => document.getElementById(id).textContent)"
    )
    assert totals == ["3", "3", "0", "3 / 3"]
    assert await browser.evaluate("document.getElementById('down').hidden") is True
    text = await browser.evaluate("document.body.innerText")
    assert "Hi" not in text.split()  # no prompt text on the page
    await browser.screenshot(tmp_path / "status-page.png")
    assert browser.errors == []


async def test_a_phone_in_dark_mode_gets_one_column_without_sideways_scrolling(
    front, browser, tmp_path: Path
):
    _, envoy, _ = await front()
    await browser.viewport(390, 844, dark=True)

    await browser.open(f"{envoy.url}/?refresh={REFRESH}")
    await browser.wait_for("document.querySelectorAll('.model').length === 3", timeout=10)

    assert await browser.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), (
        "the page scrolls sideways on a phone"
    )
    columns = await browser.evaluate(
        "getComputedStyle(document.getElementById('models')).gridTemplateColumns.split(' ').length"
    )
    assert columns == 1
    background = await browser.evaluate("getComputedStyle(document.body).backgroundColor")
    red, green, blue = (int(v) for v in background[4:-1].split(","))
    assert red + green + blue < 150, background
    await browser.screenshot(tmp_path / "status-page-phone-dark.png")
    assert browser.errors == []


async def test_an_outage_shows_in_the_models_row_and_chart_within_one_refresh(
    front, browser, tmp_path: Path
):
    # A long circuit, so the state the API reports holds still while the page catches up.
    stack, envoy, http = await front(
        providers=LIMITED, circuit_open_seconds=600, circuit_max_open_seconds=600
    )
    seeded_failures = await seed_a_day(stack)
    await browser.viewport(1280, 900)
    await browser.open(f"{envoy.url}/?refresh={REFRESH}")
    await browser.wait_for("document.querySelectorAll('.model').length === 3", timeout=10)
    assert (await page_models(browser))["beta/m1"]["state"] == "MODEL_STATE_READY"

    stack.sim.set_scripts(
        {"default": {"latency": 0.01}, "scripts": {"beta/m1": {"behaviour": 503}}}
    )
    for _ in range(3):  # pinned to beta: it fails, another model answers
        reply = await http.post(
            "/api/v1/prompts/process", json={"prompt": "Hi", "model_name": "beta/m1"}
        )
        assert reply.status_code == 200
    states = await api_states(http)
    assert states["beta/m1"] == "MODEL_STATE_CIRCUIT_OPEN"

    async def beta() -> dict | None:
        shown = (await page_models(browser))["beta/m1"]
        return shown if shown["state"] == states["beta/m1"] else None

    shown = await poll(beta, timeout=ONE_REFRESH)
    assert shown["label"] == "circuit open"
    assert "available in" in shown["reason"]
    shown = await poll(lambda: _failures(browser), timeout=ONE_REFRESH)
    assert shown["beta/m1"]["failures"] == 3
    assert shown["alpha/m1"]["failures"] == 0
    assert shown["gamma/m1"]["failures"] == seeded_failures
    slots = await browser.evaluate(
        "[...new Set([...document.querySelectorAll('[data-model=\"alpha/m1\"] svg.chart rect')]"
        ".map(r => Math.floor(Number(r.getAttribute('x')) / 10)))]"
    )
    assert set(slots) >= set(range(23))  # a bar in each seeded hour, oldest on the left
    await browser.screenshot(tmp_path / "status-page.png")
    assert browser.errors == []


async def seed_a_day(stack) -> int:
    """Attempts of the 23 hours before this one, recorded in ModelStore as the Selector would:
    alpha answers every hour (slower later in the day, rate limited every 4th hour), gamma
    answers twice an hour and fails every 6th. Returns gamma's failures."""
    ids = {e.spec.name: e.spec.model_id for e in stack.selector.engine.catalog.entries.values()}
    now = datetime.now(UTC)
    current = now.replace(minute=0, second=0, microsecond=0)
    attempts = []
    failures = 0
    for hours_ago in range(1, 24):
        at = current - timedelta(hours=hours_ago, minutes=-30)
        for index in range(4 + hours_ago % 5):
            attempts.append(attempt(ids["alpha/m1"], at, latency_ms=300 + 40 * hours_ago + index))
        if hours_ago % 4 == 0:
            attempts.append(attempt(ids["alpha/m1"], at, common_pb2.OUTCOME_RATE_LIMITED))
        attempts += [attempt(ids["gamma/m1"], at, latency_ms=900) for _ in range(2)]
        if hours_ago % 6 == 0:
            attempts.append(attempt(ids["gamma/m1"], at, common_pb2.OUTCOME_TRANSIENT, 2000))
            failures += 1
    await stack.store_stub().RecordAttempts(
        model_store_pb2.RecordAttemptsRequest(attempts=attempts), timeout=10
    )
    return failures


async def _failures(browser: Browser) -> dict | None:
    shown = await page_models(browser)
    return shown if shown["beta/m1"]["failures"] else None


async def test_probing_with_a_wrong_token_shows_the_403_and_the_right_one_the_results(
    front, browser
):
    _, envoy, http = await front()
    await browser.open(f"{envoy.url}/?refresh={REFRESH}")
    await browser.wait_for("document.querySelectorAll('.model').length === 3", timeout=10)
    wrong = await http.post(
        "/api/v1/providers/test", json={}, headers={"authorization": "Bearer wrong"}
    )
    assert wrong.status_code == 403

    await browser.evaluate(
        "document.getElementById('probe-token').value = 'wrong';"
        "document.getElementById('probe').click()"
    )
    status = await browser.wait_for(
        "document.getElementById('probe-status').className === 'error'"
        " && document.getElementById('probe-status').textContent",
        timeout=10,
    )
    assert status == f"403: {wrong.json()['message']}"

    await browser.evaluate(
        f"document.getElementById('probe-token').value = {json.dumps(ADMIN_TOKEN)};"
        "document.getElementById('probe').click()"
    )
    rows = await browser.wait_for(
        "!document.getElementById('probe-results').hidden && [...document.querySelectorAll("
        "'#probe-results tbody tr')].map(r => [r.dataset.model, r.cells[1].textContent])",
        timeout=15,
    )
    assert sorted(rows) == [[name, "success"] for name in MODELS]
    # The 403 is the one error the browser logs: a failed load, which the page reports itself.
    assert all("403" in error for error in browser.errors), browser.errors


async def test_when_the_api_is_down_the_page_says_so_and_recovers_by_itself(front, browser):
    stack, envoy, _ = await front()
    await browser.open(f"{envoy.url}/?refresh={REFRESH}")
    await browser.wait_for("document.querySelectorAll('.model').length === 3", timeout=10)

    port = stack.selector.port
    await stack.selector.stop()
    banner = await browser.wait_for(
        "!document.getElementById('down').hidden && document.getElementById('down').textContent",
        timeout=ONE_REFRESH,
    )
    assert banner.startswith("The API is not answering (HTTP 503")
    assert "Retrying every 1 s" in banner

    stack.selector = await start_selector(
        SelectorSettings(
            _env_file=None,
            selector_listen_address=f"127.0.0.1:{port}",
            model_store_address=stack.store.address,
            admin_api_token=ADMIN_TOKEN,
        ),
        stack.environ,
    )
    await stack.selector.wait_ready(10)
    await browser.wait_for("document.getElementById('down').hidden", timeout=ONE_REFRESH + 5)
    assert await browser.evaluate("document.querySelectorAll('.model.stale').length") == 0


async def test_where_keys_are_required_the_page_asks_for_one_and_then_shows_the_models(
    front, browser
):
    _, envoy, http = await front(allow_anonymous=False)
    created = await http.post(
        "/api/v1/admin/keys",
        headers={"authorization": f"Bearer {ADMIN_TOKEN}"},
        json={"name": "status-page"},
    )
    assert created.status_code == 200, created.text
    key = created.json()["key"]
    anonymous = await http.get("/api/v1/models/stats")
    assert anonymous.status_code == 401

    await browser.open(f"{envoy.url}/?refresh={REFRESH}")
    asked = await browser.wait_for(
        "!document.getElementById('key-form').hidden"
        " && document.getElementById('key-status').textContent",
        timeout=ONE_REFRESH,
    )
    assert asked == f"401: {anonymous.json()['message']}"
    assert await browser.evaluate("document.getElementById('down').hidden") is True

    await browser.evaluate(
        "document.getElementById('client-key').value = 'fais_wrong';"
        "document.getElementById('use-key').click()"
    )
    refused = await browser.wait_for(
        "document.getElementById('key-status').textContent.startsWith('403')"
        " && document.getElementById('key-status').textContent",
        timeout=ONE_REFRESH,
    )
    assert "fais_wrong" not in refused

    await browser.evaluate(
        f"document.getElementById('client-key').value = {json.dumps(key)};"
        "document.getElementById('use-key').click()"
    )
    await browser.wait_for("document.querySelectorAll('.model').length === 3", timeout=ONE_REFRESH)
    assert await browser.evaluate("document.getElementById('key-form').hidden") is True
    assert key not in await browser.evaluate("document.body.innerText")
    # The refused loads (401, 403) are the only errors the browser logs; the page reports them.
    assert all("401" in e or "403" in e for e in browser.errors), browser.errors
