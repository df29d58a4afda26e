"""The spool format and folder: whole files or quarantine, private files, one reader per file."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aiselector.v1 import common_pb2
from services.selector.spool import MAGIC, STALE_TEMP_SECONDS, Records, Spool, decode, encode

REPO = Path(__file__).resolve().parents[2]


def sample(n: int = 3) -> Records:
    return Records(
        attempts=[common_pb2.Attempt(attempt_id=f"a{i}", model_id=i + 1) for i in range(n)],
        prompts=[common_pb2.PromptRecord(record_id=f"p{i}", prompt_text="é" * i) for i in range(n)],
        availability=[common_pb2.ModelAvailability(model_id=7, consecutive_failures=2)],
    )


def test_records_round_trip():
    records, problem = decode(encode(sample()))
    assert problem == ""
    assert records == sample()


def test_a_file_of_no_records_is_whole():
    assert decode(encode(Records())) == (Records(), "")


def test_a_truncated_file_yields_the_records_before_the_cut_and_says_where():
    data = encode(sample())
    for cut in range(len(MAGIC), len(data)):
        records, problem = decode(data[:cut])
        assert problem.startswith("truncated at byte"), cut
        for got, wrote in zip(records.by_kind(), sample().by_kind(), strict=True):
            assert got == wrote[: len(got)]
    assert len(decode(data[:-9])[0]) == len(sample())


def test_a_flipped_byte_is_a_checksum_mismatch():
    data = bytearray(encode(sample()))
    data[-12] ^= 0xFF
    records, problem = decode(bytes(data))
    assert problem.startswith("checksum mismatch")
    assert records.attempts == sample().attempts
    assert records.availability == []


@pytest.mark.parametrize("data", [b"", b"garbage", MAGIC[:-1]])
def test_what_is_not_a_spool_file_yields_nothing(data):
    assert decode(data) == (Records(), "not a spool file")


def test_an_unknown_kind_is_reported():
    records, problem = decode(MAGIC + bytes([9, 0, 0, 0, 0, 0, 0, 0, 0]))
    assert (records, problem) == (Records(), f"unknown record kind 9 at byte {len(MAGIC)}")


def test_files_are_private_whole_and_uniquely_named(tmp_path):
    spool = Spool(tmp_path / "spool", max_bytes=1 << 20)
    first, second = spool.write(sample()), spool.write(sample(1))
    assert first != second
    assert stat.S_IMODE(first.stat().st_mode) == 0o600
    assert stat.S_IMODE(spool.folder.stat().st_mode) == 0o700
    assert spool.files() == [first, second]
    assert sorted(p.name for p in spool.folder.iterdir()) == sorted([first.name, second.name])
    assert spool.size() == first.stat().st_size + second.stat().st_size
    with spool.claim(first) as data:
        assert decode(data) == (sample(), "")


def test_a_claimed_file_is_not_claimed_twice_nor_after_it_is_settled(tmp_path):
    spool = Spool(tmp_path, max_bytes=1 << 20)
    path = spool.write(sample())
    with spool.claim(path) as data:
        assert data is not None
        with spool.claim(path) as again:
            assert again is None
        spool.settle(path, "")
    with spool.claim(path) as data:
        assert data is None
    assert spool.files() == []


def test_a_claim_dies_with_its_process(tmp_path):
    spool = Spool(tmp_path, max_bytes=1 << 20)
    path = spool.write(sample())
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; from services.selector.spool import Spool\n"
            "spool = Spool(Path(sys.argv[1]), 0)\n"
            "with spool.claim(Path(sys.argv[2])) as data:\n"
            "    print(data is not None, flush=True); sys.stdin.read()\n",
            str(tmp_path),
            str(path),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": f"{REPO}:{REPO / 'gen'}"},
    )
    try:
        assert holder.stdout.readline().strip() == "True"
        with spool.claim(path) as data:
            assert data is None
        holder.kill()
        holder.wait(timeout=10)
        with spool.claim(path) as data:
            assert decode(data) == (sample(), "")
    finally:
        holder.kill()
        holder.wait(timeout=10)


def test_a_damaged_file_is_quarantined(tmp_path):
    spool = Spool(tmp_path, max_bytes=1 << 20)
    path = spool.write(sample())
    spool.settle(path, "checksum mismatch at byte 40")
    assert spool.files() == []
    assert (tmp_path / "quarantine" / path.name).read_bytes() == encode(sample())


def test_only_a_stale_temporary_file_is_quarantined(tmp_path):
    spool = Spool(tmp_path, max_bytes=1 << 20)
    fresh, stale = tmp_path / ".fresh.spool.tmp", tmp_path / ".stale.spool.tmp"
    fresh.write_bytes(MAGIC)
    stale.write_bytes(MAGIC)
    old = time.time() - STALE_TEMP_SECONDS - 1
    os.utime(stale, (old, old))
    assert spool.files() == []
    assert fresh.exists()
    assert (tmp_path / "quarantine" / "stale.spool.tmp").exists()


def test_a_folder_that_cannot_be_created_is_an_os_error(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(NotADirectoryError):
        Spool(tmp_path / "file" / "spool", max_bytes=0)
