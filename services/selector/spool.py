"""The Selector's spool: records it could not deliver yet, in local files until ModelStore has them.

A spool file is `MAGIC`, frames `kind (1 byte) | length (4) | CRC-32 (4) | payload` (the payload
one serialized Attempt, PromptRecord or ModelAvailability), and an end frame (kind 0, the number of
records in place of the length, no payload), so a cut at a frame boundary shows too. A file is
written whole (a temporary file, fsync, rename, fsync of the folder; mode 0600) under a name no
other process uses, so several processes may share a folder. A reader claims a file with an
exclusive `flock`: two processes never deliver the same file at once, and the kernel releases the
claim of a reader that dies, so a file is never orphaned. A file that does not read whole is moved
to `quarantine/`.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import struct
import time
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from google.protobuf.message import DecodeError

from aiselector.v1 import common_pb2
from services.selector import metrics

log = logging.getLogger(__name__)

MAGIC = b"AISELECTOR-SPOOL\x00\x01"
SUFFIX = ".spool"
_FRAME = struct.Struct(">BII")
_END = 0
# Frame kinds 1, 2, 3, in this order.
_KINDS = (common_pb2.Attempt, common_pb2.PromptRecord, common_pb2.ModelAvailability)
# A temporary file untouched this long was left by a writer that died mid-write (a write takes
# seconds at most).
STALE_TEMP_SECONDS = 600.0


@dataclass
class Records:
    """What a spool file holds."""

    attempts: list[common_pb2.Attempt] = field(default_factory=list)
    prompts: list[common_pb2.PromptRecord] = field(default_factory=list)
    availability: list[common_pb2.ModelAvailability] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.attempts) + len(self.prompts) + len(self.availability)

    def by_kind(self) -> tuple[list, list, list]:
        """The lists in frame-kind order."""
        return self.attempts, self.prompts, self.availability


def encode(records: Records) -> bytes:
    """The bytes of a spool file holding `records`."""
    parts = [MAGIC]
    for kind, items in enumerate(records.by_kind(), start=1):
        for item in items:
            payload = item.SerializeToString()
            parts += [_FRAME.pack(kind, len(payload), zlib.crc32(payload)), payload]
    parts.append(_FRAME.pack(_END, len(records), 0))
    return b"".join(parts)


def decode(data: bytes) -> tuple[Records, str]:
    """The records of a spool file and what is wrong with it ("" when it is whole).

    A damaged file yields the records before the damage: each of those passed its checksum.
    """
    records = Records()
    if not data.startswith(MAGIC):
        return records, "not a spool file"
    lists = records.by_kind()
    offset = len(MAGIC)
    while offset + _FRAME.size <= len(data):
        kind, length, checksum = _FRAME.unpack_from(data, offset)
        start = offset + _FRAME.size
        if kind == _END:
            if length != len(records) or start != len(data):
                return records, f"damaged end at byte {offset}"
            return records, ""
        payload = data[start : start + length]
        if not 1 <= kind <= len(_KINDS):
            return records, f"unknown record kind {kind} at byte {offset}"
        if len(payload) < length:
            return records, f"truncated at byte {offset}"
        if zlib.crc32(payload) != checksum:
            return records, f"checksum mismatch at byte {offset}"
        try:
            lists[kind - 1].append(_KINDS[kind - 1].FromString(payload))
        except DecodeError:
            return records, f"unreadable record at byte {offset}"
        offset = start + length
    return records, f"truncated at byte {offset}"


class Spool:
    """One folder of spool files (created 0700 if missing; OSError when it cannot be)."""

    def __init__(self, folder: Path, max_bytes: int) -> None:
        self.folder = folder
        self.max_bytes = max_bytes
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not os.access(folder, os.W_OK | os.X_OK):
            raise PermissionError(f"spool folder {folder} is not writable")

    def write(self, records: Records) -> Path:
        """Writes `records` to a new spool file, all or nothing; returns its path."""
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        name = f"selector-{stamp}-{os.getpid()}-{uuid.uuid4().hex[:12]}{SUFFIX}"
        path = self.folder / name
        temp = self.folder / f".{name}.tmp"
        data = encode(records)
        try:
            with open(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.rename(temp, path)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        _fsync_folder(self.folder)
        return path

    def files(self) -> list[Path]:
        """Spool files in the folder, oldest first (stale temporary files go to quarantine)."""
        found = []
        now = time.time()
        for entry in os.scandir(self.folder):
            if not entry.is_file():
                continue
            if entry.name.endswith(SUFFIX):
                found.append(Path(entry.path))
            elif entry.name.endswith(".tmp"):
                with contextlib.suppress(FileNotFoundError):
                    if now - entry.stat().st_mtime > STALE_TEMP_SECONDS:
                        self.quarantine(Path(entry.path), "left by a writer that died")
        return sorted(found, key=lambda path: path.name)

    def size(self) -> int:
        """Bytes the spool files in the folder hold."""
        total = 0
        for entry in os.scandir(self.folder):
            if entry.name.endswith(SUFFIX):
                with contextlib.suppress(FileNotFoundError):
                    total += entry.stat().st_size
        return total

    @contextlib.contextmanager
    def claim(self, path: Path) -> Iterator[bytes | None]:
        """The content of `path` while this process holds it; None when another process holds it
        or it is gone. `settle` the file before leaving the block."""
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            yield None
            return
        with open(fd, "rb") as file:
            yield _lock_and_read(path, file)

    def settle(self, path: Path, problem: str) -> None:
        """Removes a claimed file once delivered; quarantines it when it was damaged (`problem`)."""
        if problem:
            self.quarantine(path, problem)
        else:
            path.unlink()

    def quarantine(self, path: Path, reason: str) -> None:
        """Moves a file that cannot be delivered out of the way, keeping it for a person to see."""
        target = self.folder / "quarantine" / path.name.lstrip(".")
        target.parent.mkdir(mode=0o700, exist_ok=True)
        os.replace(path, target)
        metrics.SPOOL_QUARANTINED.inc()
        log.error("spool file quarantined", extra={"file": str(target), "reason": reason})


def _lock_and_read(path: Path, file: BinaryIO) -> bytes | None:
    try:
        fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return None
    # Its previous holder may have delivered and removed it between our open and our lock.
    try:
        if os.stat(path).st_ino != os.fstat(file.fileno()).st_ino:
            return None
    except FileNotFoundError:
        return None
    return file.read()


def _fsync_folder(folder: Path) -> None:
    """Makes a rename in `folder` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
