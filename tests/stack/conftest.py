"""Fixtures of the stack tests."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A DATA_DIR for embedded PostgreSQL, outside pytest's temporary folder.

    Run as root, PostgreSQL runs as another user that must traverse every folder above its data;
    pytest makes its own folder 0700 again whenever a session starts (also another one on this
    machine), which would cut that user off halfway through a test.
    """
    folder = Path(tempfile.mkdtemp(prefix="aiselector-stack-"))
    try:
        yield folder / "data"
    finally:
        shutil.rmtree(folder, ignore_errors=True)
