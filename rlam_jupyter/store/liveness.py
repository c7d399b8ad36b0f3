"""Is a journal's writer still alive? Leases that readers can test, and a careful verdict.

A writer holds an exclusive ``flock`` on its journal file for as long as the file is
open; the OS drops the lock when the process dies, ``kill -9`` included. A reader tests
it with a non-blocking shared lock: refused means the writer is alive. Each journal's
header also names its writer (host, pid, process start time, boot id), which decides
where the lock cannot: a free lock on the writer's own host with the process gone (or
its pid now another process) means dead; anything that cannot be established — another
host, a remote store's local copy, a platform without locks — is ``unknown``, never
dead: an unknown writer's steps stay in flight rather than being called interrupted.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # Windows: no flock; the header's pid and start time still tell
    fcntl = None  # type: ignore[assignment]

HOST = socket.gethostname()
LEASE_FLOCK = "flock"

ALIVE = "alive"
DEAD = "dead"
UNKNOWN = "unknown"

_START_TOLERANCE_US = 1_500_000
"""``btime`` in /proc/stat is whole seconds and may move by one between reads."""


@cache
def boot_id() -> str | None:
    """This boot of this machine (Linux); a writer of another boot is gone."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip() or None
    except OSError:
        return None


@cache
def machine_id() -> str | None:
    """This machine, to tell another machine of the same host name: a digest of the
    systemd/dbus machine id (which must not leave the machine as it is, per systemd)."""
    for place in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        with contextlib.suppress(OSError):
            text = Path(place).read_text().strip()
            if text:
                return hashlib.sha256(b"rlam-jupyter writer:" + text.encode()).hexdigest()[:16]
    return None


@cache
def _boot_time_s() -> int | None:
    try:
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith("btime "):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def process_started_us(pid: int | None = None) -> int | None:
    """When process ``pid`` (default: this one) started, in epoch microseconds.

    Linux: field 22 of ``/proc/<pid>/stat`` (clock ticks after boot) plus the boot time;
    None elsewhere or when the process does not exist."""
    found = _proc_stat(pid or os.getpid())
    return found[1] if found else None


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """State letter and start time of ``pid`` from ``/proc`` (None: not Linux, or no such pid)."""
    boot = _boot_time_s()
    if boot is None:
        return None
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
        # The command name (field 2) may hold spaces and parentheses: fields after the last ')'.
        fields = text[text.rindex(")") + 2 :].split()
        state, ticks = fields[0], int(fields[19])
    except (OSError, ValueError, IndexError):
        return None
    return state, boot * 1_000_000 + ticks * 1_000_000 // os.sysconf("SC_CLK_TCK")


def writer_identity() -> dict[str, Any]:
    """The header fields that name this process as a journal's writer."""
    return {
        "host": HOST,
        "pid": os.getpid(),
        "process_started_us": process_started_us(),
        "boot_id": boot_id(),
        "machine_id": machine_id(),
    }


def take_lease(fd: int) -> bool:
    """Hold an exclusive lock on the open journal ``fd`` while it stays open (True if held).

    Non-blocking: a reader testing the lock at this instant makes it fail, and the
    writer goes on without it (the header still names the process)."""
    if fcntl is None:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def lease_held(path: Path) -> bool | None:
    """True when some process holds ``path``'s lease, False when nobody does, None when
    the lock cannot be tested (no flock here, file gone or unreadable)."""
    if fcntl is None:
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return None
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)  # closing releases the test lock, if it was taken
    return False


@dataclass(frozen=True)
class Liveness:
    """The verdict on one journal's writer, with the reason a user can read."""

    state: str
    """``alive``, ``dead`` or ``unknown``."""
    reason: str


def judge(path: Path, header: dict[str, Any] | None) -> Liveness:
    """Whether the writer of journal ``path`` (whose first record is ``header``) lives."""
    header = header or {}
    who = _describe(header)
    held = lease_held(path)
    if held:
        return Liveness(ALIVE, f"{who} holds the journal's lease")
    host = header.get("host")
    if host != HOST:
        where = f"on host {host}" if host else "on an unnamed host"
        return Liveness(UNKNOWN, f"{who} runs {where}; its lease cannot be tested from {HOST}")
    recorded_machine = header.get("machine_id")
    if recorded_machine and machine_id() and recorded_machine != machine_id():
        return Liveness(UNKNOWN, f"{who} runs on another machine named {host}")
    pid = header.get("pid")
    if not isinstance(pid, int):
        return Liveness(UNKNOWN, f"{who}: the journal does not name its process")
    recorded_boot = header.get("boot_id")
    if recorded_boot and boot_id() and recorded_boot != boot_id():
        return Liveness(DEAD, f"{who} ran before this machine restarted")
    if not _process_exists(pid):
        return Liveness(DEAD, f"{who} is gone (no process {pid})")
    found = _proc_stat(pid)
    if found is not None and found[0] in ("Z", "X"):
        return Liveness(DEAD, f"{who} is gone (process {pid} has exited)")
    recorded_start = header.get("process_started_us")
    if isinstance(recorded_start, int) and found is not None:
        if abs(found[1] - recorded_start) > _START_TOLERANCE_US:
            return Liveness(DEAD, f"{who} is gone (pid {pid} is now another process)")
        return Liveness(ALIVE, f"{who} is still running")
    if held is False and header.get("lease") == LEASE_FLOCK:
        # A writer that held the lease but no longer does, under a pid we cannot date:
        # it closed the journal (ended, or lost the lock after a write error).
        return Liveness(UNKNOWN, f"{who} no longer holds its lease, but pid {pid} exists")
    return Liveness(UNKNOWN, f"{who}: pid {pid} exists, its start time cannot be compared")


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: it exists
    except OSError:
        return True
    return True


def _describe(header: dict[str, Any]) -> str:
    writer = header.get("writer") or "?"
    return f"writer {str(writer)[-8:]} (host {header.get('host') or '?'}, pid {header.get('pid') or '?'})"
