"""A run's status, and whether the process holding the run is still alive.

A record's status is only true while its process lives: a run left queued or
training by a process that died (a server stopped, a worker killed) reads
"cancelled" or "interrupted" instead. `pid`, `pid_start` and `host` in a record
name that process (this_process() gives them for the caller); orphaned() tells
whether it is gone. records.py reads and rewrites run.json with these.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

ACTIVE = ("queued", "loading", "baseline", "training", "finishing")
FINAL = ("completed", "stopped", "failed", "cancelled", "interrupted")
STATUSES = ACTIVE + FINAL

ORPHAN_MESSAGES = {
    "cancelled": "cancelled (server restarted): the server stopped before this run started",
    "interrupted": "interrupted: the process running it ended before it finished",
}


# --------------------------------------------------------------------------- process liveness


def this_process() -> dict:
    """The pid/pid_start/host fields naming the calling process: pass them to
    update_record when another process takes a run over."""
    return {"pid": os.getpid(), "pid_start": _process_start(os.getpid()), "host": socket.gethostname()}


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, start time in clock ticks since boot) from Linux /proc, or None where unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()  # the name may hold ')'
        return fields[0], int(fields[19])  # stat fields 3 and 22
    except (OSError, ValueError, IndexError):
        return None


def _process_start(pid: int) -> int | None:
    """When the process started. Together with the pid it names one process: a
    restarted server in a container often gets the same pid back, never the same start."""
    stat = _proc_stat(pid)
    return stat[1] if stat else None


def process_alive(pid, pid_start=None) -> bool:
    """Whether the process that wrote a record is still running on this machine."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, owned by another user
    except OSError:
        return False
    stat = _proc_stat(pid)
    if stat is None:  # no /proc (macOS, Windows): the pid is all we can check
        return True
    state, start = stat
    return state not in ("Z", "X") and (pid_start is None or start == pid_start)  # Z: exited, not yet reaped


def orphaned(record: dict) -> bool:
    """A non-final run whose process is gone. A record from another host is trusted
    as written: we cannot see that machine's processes."""
    if record.get("status") not in ACTIVE or record.get("host") not in (None, socket.gethostname()):
        return False
    return not process_alive(record.get("pid"), record.get("pid_start"))


def orphan_status(status: str) -> str:
    """What a run left behind by its process really is: a queued one never started."""
    return "cancelled" if status == "queued" else "interrupted"
