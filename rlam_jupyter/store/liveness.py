"""Is a journal's writer still alive? Leases that readers can test, and a careful verdict.

A writer holds an exclusive ``flock`` on its journal file for as long as the file is
open; the OS drops the lock when the process dies, ``kill -9`` included. A reader tests
it with a non-blocking shared lock: refused means the writer is alive. Each journal's
header also names its writer (host, pid, process start time, boot id, pid namespace).
On the writer's own host, boot and pid namespace the header outranks the lock: the
process gone (or its pid now another process) means dead even while the lock is held —
by a child it forked before :func:`os.register_at_fork` could close the journal there,
or a process it passed the file to. Anything that cannot be established — another host,
a remote store's local copy, a platform without locks — is ``unknown``, never dead: an
unknown writer's steps stay in flight rather than being called interrupted.

Start times are compared in clock ticks after boot (``/proc/<pid>/stat`` field 22), which
no wall-clock step moves; the epoch time derived from ``btime`` (which NTP steps and VM
resumes do move) only decides for headers written before the ticks were recorded.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import time
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

_LEASE_PATIENCE_S = 0.05
"""How long :func:`take_lease` retries while a reader's test lock is in the way (a
reader holds it for microseconds; a writer that gave up would go lease-less for life)."""

_journal_fds: set[int] = set()
"""The journal fds this process holds open (leased or not): a forked child closes them."""


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


@cache
def pid_namespace() -> str | None:
    """This process's pid namespace (Linux): a pid means this process only within it."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def process_started_us(pid: int | None = None) -> int | None:
    """When process ``pid`` (default: this one) started, in epoch microseconds.

    Linux: field 22 of ``/proc/<pid>/stat`` (clock ticks after boot) plus the boot time;
    None elsewhere or when the process does not exist."""
    found = _proc_stat(pid or os.getpid())
    return found.started_us if found else None


@dataclass(frozen=True)
class _ProcStat:
    state: str
    """The state letter (``Z`` zombie, ``X`` dead)."""
    start_ticks: int
    """Clock ticks after boot when the process started: exact, whatever the wall clock did."""
    started_us: int
    """The same instant in epoch microseconds, through today's ``btime``."""


def _proc_stat(pid: int) -> _ProcStat | None:
    """State and start time of ``pid`` from ``/proc`` (None: not Linux, or no such pid)."""
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
    return _ProcStat(state, ticks, boot * 1_000_000 + ticks * 1_000_000 // os.sysconf("SC_CLK_TCK"))


def writer_identity() -> dict[str, Any]:
    """The header fields that name this process as a journal's writer."""
    found = _proc_stat(os.getpid())
    return {
        "host": HOST,
        "pid": os.getpid(),
        "process_started_us": found.started_us if found else None,
        "process_start_ticks": found.start_ticks if found else None,
        "boot_id": boot_id(),
        "pid_ns": pid_namespace(),
        "machine_id": machine_id(),
    }


def take_lease(fd: int) -> bool:
    """Hold an exclusive lock on the open journal ``fd`` while it stays open (True if held).

    The fd is tracked from here on (close it with :func:`drop_journal_fd`) so that a
    forked child closes its copy and cannot keep the lease of a writer that died. A
    reader's test lock makes the attempt fail; it is retried for a moment, then the
    writer goes on without it (the header still names the process)."""
    _journal_fds.add(fd)
    if fcntl is None:
        return False
    deadline = time.monotonic() + _LEASE_PATIENCE_S
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.001)
        except OSError:
            return False
        else:
            return True


def drop_journal_fd(fd: int) -> None:
    """Close a journal fd given to :func:`take_lease` (which releases its lease)."""
    _journal_fds.discard(fd)  # first: a fork in between must not close a reused number
    with contextlib.suppress(OSError):
        os.close(fd)


def _close_journal_fds_in_child() -> None:
    """In a forked child: close the inherited journal fds. flock belongs to the open file
    description, which the child shares: left open, the child would hold the parent's
    lease after the parent died, and its run would read alive as long as the child lives."""
    for fd in _journal_fds:
        with contextlib.suppress(OSError):
            os.close(fd)
    _journal_fds.clear()


if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    os.register_at_fork(after_in_child=_close_journal_fds_in_child)


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
    leased = Liveness(ALIVE, f"{who} holds the journal's lease")
    host = header.get("host")
    if host != HOST:
        if held:
            return leased
        where = f"on host {host}" if host else "on an unnamed host"
        return Liveness(UNKNOWN, f"{who} runs {where}; its lease cannot be tested from {HOST}")
    recorded_machine = header.get("machine_id")
    if recorded_machine and machine_id() and recorded_machine != machine_id():
        return leased if held else Liveness(UNKNOWN, f"{who} runs on another machine named {host}")
    pid = header.get("pid")
    if not isinstance(pid, int):
        return (
            leased if held else Liveness(UNKNOWN, f"{who}: the journal does not name its process")
        )
    recorded_boot = header.get("boot_id")
    if recorded_boot and boot_id() and recorded_boot != boot_id():
        # No process of this boot inherited the lock from an earlier one: a holder opened
        # the file itself (a machine of the same name on a shared disk, say).
        return leased if held else Liveness(DEAD, f"{who} ran before this machine restarted")
    recorded_ns = header.get("pid_ns")
    if held and not (recorded_ns and recorded_ns == pid_namespace()):
        return leased  # the pid cannot be looked up here (another container, an old header)
    exists = _process_exists(pid)
    if exists is None:
        return (
            leased
            if held
            else Liveness(UNKNOWN, f"{who}: whether pid {pid} runs cannot be told here")
        )
    # Held by another process: a child the writer forked or a process it gave the file to.
    though = "; another process still holds the journal's lease" if held else ""
    if not exists:
        return Liveness(DEAD, f"{who} is gone (no process {pid}){though}")
    found = _proc_stat(pid)
    if found is not None and found.state in ("Z", "X"):
        return Liveness(DEAD, f"{who} is gone (process {pid} has exited){though}")
    same = _same_process(header, found)
    if same is False:
        return Liveness(DEAD, f"{who} is gone (pid {pid} is now another process){though}")
    if held:
        return leased
    if same:
        return Liveness(ALIVE, f"{who} is still running")
    if held is False and header.get("lease") == LEASE_FLOCK:
        # A writer that held the lease but no longer does, under a pid we cannot date:
        # it closed the journal (ended, or lost the lock after a write error).
        return Liveness(UNKNOWN, f"{who} no longer holds its lease, but pid {pid} exists")
    return Liveness(UNKNOWN, f"{who}: pid {pid} exists, its start time cannot be compared")


def _same_process(header: dict[str, Any], found: _ProcStat | None) -> bool | None:
    """Whether the live ``pid`` is the process that wrote ``header`` (None: cannot tell).

    Ticks after boot are exact and no clock step moves them; the epoch start of older
    headers is compared within the rounding of ``btime``."""
    if found is None:
        return None
    ticks = header.get("process_start_ticks")
    if isinstance(ticks, int) and header.get("boot_id") and header.get("boot_id") == boot_id():
        return found.start_ticks == ticks
    started = header.get("process_started_us")
    if isinstance(started, int):
        return abs(found.started_us - started) <= _START_TOLERANCE_US
    return None


def _process_exists(pid: int) -> bool | None:
    """Whether a process ``pid`` exists (None: cannot be told on this platform)."""
    if os.name == "nt":
        # Never os.kill here: on Windows signal 0 is CTRL_C_EVENT, sent to the process group.
        return _windows_process_exists(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: it exists
    except OSError:
        return True
    return True


_PROCESS_QUERY_LIMITED_INFORMATION = 0x1000
_ERROR_ACCESS_DENIED = 5
_ERROR_INVALID_PARAMETER = 87  # what OpenProcess says of a pid no process has
_STILL_ACTIVE = 259


def _windows_process_exists(pid: int) -> bool | None:
    """OpenProcess and GetExitCodeProcess (Win32); None when that API cannot answer."""
    import ctypes

    win_dll = getattr(ctypes, "WinDLL", None)
    if win_dll is None:
        return None
    try:
        kernel32 = win_dll("kernel32", use_last_error=True)
    except OSError:
        return None
    handle = kernel32.OpenProcess(_PROCESS_QUERY_LIMITED_INFORMATION, False, pid)
    if not handle:
        error = ctypes.get_last_error()  # type: ignore[attr-defined,unused-ignore]
        if error == _ERROR_INVALID_PARAMETER:
            return False
        return True if error == _ERROR_ACCESS_DENIED else None
    try:
        code = ctypes.c_ulong()
        if not kernel32.GetExitCodeProcess(handle, ctypes.byref(code)):
            return None
        return bool(code.value == _STILL_ACTIVE)
    finally:
        kernel32.CloseHandle(handle)


def _describe(header: dict[str, Any]) -> str:
    writer = header.get("writer") or "?"
    return f"writer {str(writer)[-8:]} (host {header.get('host') or '?'}, pid {header.get('pid') or '?'})"
