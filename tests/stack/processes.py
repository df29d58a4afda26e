"""Finds the processes a test started, by a marker variable every descendant inherits."""

from __future__ import annotations

import os
import uuid
from pathlib import Path


def new_marker() -> tuple[str, str]:
    """A (name, value) pair to put in a child's environment."""
    return "STACK_TEST_MARKER", uuid.uuid4().hex


def marked_processes(marker: tuple[str, str], command: bytes = b"") -> list[int]:
    """Pids of live (non-zombie) processes whose environment carries `marker`.

    With `command`, only those whose command line contains it (e.g. `b"services.data"`).
    """
    needle = f"{marker[0]}={marker[1]}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            cmdline = (entry / "cmdline").read_bytes()
        except (OSError, IndexError):
            continue
        if state != "Z" and needle in environ.split(b"\0") and command in cmdline:
            found.append(int(entry.name))
    return found
