"""The checks before `make run` starts anything: the data folder's lock and free ports."""

from __future__ import annotations

import os
import socket
import stat

import pytest

from services.stack.instance import Listener, Refused, lock_data_folder, unavailable
from services.stack.plan import free_port


def test_a_second_lock_on_the_same_folder_is_refused_naming_the_holder_and_the_lock(tmp_path):
    data_dir = tmp_path / "data"
    first = lock_data_folder(data_dir, "first-stack")
    try:
        (data_dir / "admin_token").write_text("kept\n")
        before = (data_dir / "admin_token").stat()

        with pytest.raises(Refused) as refused:
            lock_data_folder(data_dir, "second-stack")

        message = str(refused.value)
        assert f"pid {os.getpid()}" in message
        assert str(data_dir / "stack.lock") in message
        assert "DATA_DIR" in message
        assert (data_dir / "stack.lock").read_text() == f"{os.getpid()} first-stack\n"
        assert (data_dir / "admin_token").stat().st_mtime_ns == before.st_mtime_ns
    finally:
        first.release()


def test_the_lock_is_free_again_once_released_and_names_the_previous_stack(tmp_path):
    data_dir = tmp_path / "data"
    lock_data_folder(data_dir, "first-stack").release()

    second = lock_data_folder(data_dir, "second-stack")
    second.release()

    assert second.previous_stack_id == "first-stack"
    assert lock_data_folder(data_dir, "third").previous_stack_id == "second-stack"


def test_the_data_folder_and_the_lock_file_become_private(tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o755)
    data_dir.chmod(0o755)
    (data_dir / "stack.lock").write_text("")
    (data_dir / "stack.lock").chmod(0o644)

    lock_data_folder(data_dir, "stack").release()

    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((data_dir / "stack.lock").stat().st_mode) == 0o600


def test_a_taken_port_is_named_with_the_variable_that_sets_it():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        taken = listener.getsockname()[1]
        free = free_port()

        listeners = (
            Listener("ENVOY_PORT", "127.0.0.1", taken),
            Listener("ENVOY_ADMIN_PORT", "127.0.0.1", free),
        )
        problems = unavailable(listeners)

    assert len(problems) == 1
    assert problems == [
        f"cannot listen on 127.0.0.1:{taken} (set by ENVOY_PORT): Address already in use; "
        "stop what uses it, or set ENVOY_PORT to a free port"
    ]


def test_a_port_taken_on_the_wildcard_address_is_seen_from_loopback():
    with socket.socket() as listener:
        listener.bind(("0.0.0.0", 0))
        listener.listen()
        port = listener.getsockname()[1]

        assert unavailable((Listener("SELECTOR_METRICS_PORT", "127.0.0.1", port),))


def test_a_host_that_is_not_on_this_machine_is_reported():
    problems = unavailable((Listener("ENVOY_LISTEN_HOST", "192.0.2.1", free_port()),))

    assert len(problems) == 1
    assert problems[0].startswith("cannot listen on 192.0.2.1:")
    assert problems[0].endswith("(set by ENVOY_LISTEN_HOST): Cannot assign requested address")
