"""Append-only journal: the trace's source of truth, one file per (run, writer).

Each line is ``<crc32 hex> <json>\\n``. A record is flushed to the OS before
``append`` returns, so a killed kernel loses no completed step; a torn or corrupt
last line is detected by its checksum, skipped and reported, never fatal.
No DuckDB lock is ever taken here: many kernels write at once, each to its own file.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ulid import ULID

from rlam_jupyter.errors import StoreWriteError
from rlam_jupyter.store.layout import StoreLayout
from rlam_jupyter.store.schema import SCHEMA_VERSION, TABLES

HOST = socket.gethostname()


def now_us() -> int:
    """Wall-clock time in integer microseconds (the journal's time unit)."""
    return time.time_ns() // 1000


def _frame(record: Mapping[str, Any]) -> bytes:
    payload = json.dumps(record, separators=(",", ":"), default=str).encode()
    return b"%08x " % zlib.crc32(payload) + payload + b"\n"


class JournalWriter:
    """The single writer of one journal file.

    ``append`` is thread-safe; it raises :class:`StoreWriteError` (and remembers the
    record as unwritten) when the disk refuses, so callers can keep the user's value
    and report the missing record instead of losing it silently.
    """

    def __init__(self, layout: StoreLayout, run_id: str, writer_id: str | None = None) -> None:
        self.layout = layout
        self.run_id = run_id
        self.writer_id = writer_id or str(ULID())
        self.path = layout.journal_file(run_id, self.writer_id)
        self._lock = threading.Lock()
        self._file: IO[bytes] | None = None
        self._last_event = 0
        self.unwritten: list[dict[str, Any]] = []
        self.fsync = os.environ.get("RLAM_FSYNC", "0") == "1"

    def _open(self) -> IO[bytes]:
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fresh = not self.path.exists()
            self._file = open(self.path, "ab")  # noqa: SIM115 - kept open for the writer's life
            if fresh:
                header = {
                    "_t": "header",
                    "schema_version": SCHEMA_VERSION,
                    "run_id": self.run_id,
                    "writer": self.writer_id,
                    "host": HOST,
                    "pid": os.getpid(),
                    "created_us": now_us(),
                }
                self._file.write(_frame(header))
        return self._file

    def next_event_no(self) -> int:
        """Monotonic across this writer and roughly ordered across writers (time based)."""
        stamp = time.time_ns()
        self._last_event = max(self._last_event + 1, stamp)
        return self._last_event

    def append(self, kind: str, record: Mapping[str, Any]) -> None:
        if kind not in TABLES:
            raise ValueError(f"unknown journal record kind {kind!r}")
        with self._lock:
            full = dict(record)
            full["_t"] = kind
            full.setdefault("event_no", self.next_event_no())
            try:
                handle = self._open()
                handle.write(_frame(full))
                handle.flush()
                if self.fsync:
                    os.fsync(handle.fileno())
            except OSError as exc:
                self.unwritten.append(full)
                self._file = None
                raise StoreWriteError(
                    f"could not write the trace record to {self.path}: {exc.strerror or exc}. "
                    "The step's result is kept in the notebook, but the trace is missing this "
                    "record; free disk space or make the store writable, then run "
                    "`%rlam status` to write the pending records."
                ) from exc

    def retry_unwritten(self) -> int:
        """Write records that failed earlier; returns how many are still pending."""
        pending, self.unwritten = self.unwritten, []
        for record in pending:
            kind = record.pop("_t")
            try:
                self.append(kind, record)
            except StoreWriteError:
                self.unwritten.extend(pending[pending.index(record) + 1 :])
                break
        return len(self.unwritten)

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


@dataclass
class JournalReadReport:
    """What a read found besides good records: torn tails and corrupt lines, by file."""

    files: int = 0
    records: int = 0
    skipped: list[tuple[str, int, str]] = field(default_factory=list)
    schema_versions: set[int] = field(default_factory=set)


def iter_records(path: Path, report: JournalReadReport) -> Iterator[dict[str, Any]]:
    """Yield the intact records of one journal file, reporting anything skipped."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:  # compacted and removed between listing and reading
        return
    report.files += 1
    lines = data.split(b"\n")
    torn_tail = lines[-1]
    for lineno, line in enumerate(lines[:-1], start=1):
        record = _decode(line)
        if record is None:
            report.skipped.append((str(path), lineno, "checksum or JSON mismatch"))
            continue
        if record.get("_t") == "header":
            report.schema_versions.add(int(record.get("schema_version", 0)))
            continue
        report.records += 1
        yield record
    if torn_tail:
        report.skipped.append(
            (str(path), len(lines), "torn last record (writer stopped mid-write)")
        )


def _decode(line: bytes) -> dict[str, Any] | None:
    if len(line) < 10 or line[8:9] != b" ":
        return None
    payload = line[9:]
    try:
        if int(line[:8], 16) != zlib.crc32(payload):
            return None
        record = json.loads(payload)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None
