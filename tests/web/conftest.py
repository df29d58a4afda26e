"""Fixtures: Chromium (installed from the Debian package when missing) and the real stack behind
Envoy, which serves the status page."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.envoy.conftest import front
from tests.stacks import make_stack
from tests.web.browser import Browser, find_or_install_chromium

__all__ = ["front", "make_stack"]


@pytest.fixture(scope="session")
def chromium() -> str:
    """The Chromium binary; the tests are skipped, with the reason, where it cannot be installed."""
    binary, problem = find_or_install_chromium()
    if binary is None:
        pytest.skip(f"no headless browser: {problem}")
    return binary


@pytest.fixture
async def browser(chromium: str) -> AsyncIterator[Browser]:
    running = await Browser.start(chromium)
    try:
        yield running
    finally:
        await running.close()
