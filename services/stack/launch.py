"""`python -I -S launch.py <parent pid> <command…>`: runs a command that dies with the supervisor.

The supervisor starts every child through this script instead of a `preexec_fn` (unsafe in a
process with gRPC's threads): it asks Linux to send SIGTERM when the parent dies
(`PR_SET_PDEATHSIG`, kept across `exec`), then becomes the command. If the parent is already gone
by then, the signal would never come, so it exits instead. Elsewhere there is no such call: a
killed supervisor's children are then stopped by the next `make run` on the same data folder.
Only the standard library is used, so it starts in milliseconds without `site`.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1
CANNOT_RUN = 127


def die_with_parent() -> None:
    """Asks the kernel for SIGTERM when the parent dies (Linux only)."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")


def main(argv: list[str]) -> int:
    parent, command = int(argv[0]), argv[1:]
    die_with_parent()
    if os.getppid() != parent:
        print(f"the supervisor (pid {parent}) is gone; not starting {command[0]}", file=sys.stderr)
        return 1
    try:
        os.execvp(command[0], command)
    except OSError as error:
        print(f"cannot run {command[0]}: {error.strerror}", file=sys.stderr)
    return CANNOT_RUN


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
