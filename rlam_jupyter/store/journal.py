"""Append-only journal: the trace's source of truth, one file per (run, writer).

Each line is one checksummed JSON object (:mod:`rlam_jupyter.store.journal_format`),
so a torn or corrupt line is detected, skipped and reported, never fatal. A record
reaches the OS in one ``write`` before ``append`` returns (``fsync`` too with
``RLAM_FSYNC=1``), so a killed kernel loses no completed step. No DuckDB
lock is ever taken: many kernels write at once, each to its own file. While its file is
open a writer holds a lease on it (see :mod:`rlam_jupyter.store.liveness`), so readers
can tell a writer that died from one that is still working. A journal has one writer
process: in a child forked from it (``multiprocessing``, ``os.fork``) the writer refuses
to write instead of interleaving the child's records with the parent's.

Measured (``benchmarks/store.py``): ~10 µs per step record, against ~160 µs for
an Arrow IPC stream batch per record, which is why the journal is JSON Lines.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import weakref
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ulid import ULID

from rlam_jupyter.errors import StoreWriteError
from rlam_jupyter.store.journal_batches import BatchBuffer
from rlam_jupyter.store.journal_format import frame, line_id
from rlam_jupyter.store.layout import StoreLayout
from rlam_jupyter.store.liveness import (
    LEASE_FLOCK,
    drop_journal_fd,
    take_lease,
    writer_identity,
)
from rlam_jupyter.store.schema import SCHEMA_VERSION, TABLES


def now_us() -> int:
    """Wall-clock time in integer microseconds (the journal's time unit)."""
    return time.time_ns() // 1000


class JournalWriter:
    """The single writer of one journal file.

    ``append`` is thread-safe. When the disk refuses a write it raises
    :class:`StoreWriteError` (the caller must not act as if recorded: a step is not
    run). Inside :meth:`holding_failures` it keeps the record in ``unwritten``
    instead and does not raise: the engine records a step's results that way, so a
    full disk never costs a computed value; :meth:`retry_unwritten` (``%rlam status``,
    or the next append) writes them later, and the trace says they are missing meanwhile.
    """

    def __init__(self, layout: StoreLayout, run_id: str, writer_id: str | None = None) -> None:
        self.layout = layout
        self.run_id = run_id
        self.writer_id = writer_id or str(ULID())
        self.path = layout.journal_file(run_id, self.writer_id)
        self._lock = threading.RLock()
        self._fd: int | None = None
        self._offset = 0
        """Size of the file after our last complete write (where the next line starts)."""
        self._batch = BatchBuffer(self.path)
        self._last_event = 0
        self._hold = 0
        self.unwritten: list[dict[str, Any]] = []
        self.last_error: str | None = None
        self.fsync = os.environ.get("RLAM_FSYNC", "0") == "1"
        self.leased = False
        """True while this writer holds its journal's lease (its fd is open and locked)."""
        self._owner_pid = os.getpid()
        """The process this journal belongs to (its header names it)."""
        _WRITERS.add(self)

    def _open(self) -> int:
        if self._owner_pid != os.getpid():
            raise StoreWriteError(
                f"this process ({os.getpid()}) was forked from process {self._owner_pid}, "
                f"which writes the journal {self.path}; a journal has one writer, and records "
                "from a forked child would interleave with its parent's under the parent's "
                "name. Record the child's work with a writer (or Engine) of its own, "
                "created in the child, or return the results to the parent."
            )
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            self.leased = take_lease(fd)
            try:
                size = os.fstat(fd).st_size
                if size == 0:
                    header = frame(self._header())
                    _write_all(fd, header)
                    size = len(header)
                    self._batch.header_id = line_id(header)
                elif _last_byte(self.path, size) != b"\n":
                    # An earlier write was cut short (disk full): end that fragment so the
                    # next record starts on its own line; readers report the fragment.
                    _write_all(fd, b"\n")
                    size += 1
                if self._batch.header_id is None:  # a file this writer did not start
                    with open(self.path, "rb") as handle:
                        self._batch.header_id = line_id(handle.readline())
            except BaseException:
                drop_journal_fd(fd)
                self.leased = False
                raise
            self._fd = fd
            self._offset = size
        return self._fd

    def _header(self) -> dict[str, Any]:
        return {
            "_t": "header",
            "schema_version": SCHEMA_VERSION,
            "run_id": self.run_id,
            "writer": self.writer_id,
            **writer_identity(),
            "lease": LEASE_FLOCK if self.leased else None,
            "created_us": now_us(),
        }

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
            if self.unwritten:
                self.retry_unwritten()  # the store may be writable again
            try:
                self._write_record(full)
            except OSError as exc:
                self.last_error = exc.strerror or str(exc)
                if not self._hold:
                    # The caller learns of it and does not act on the record (a step
                    # is not run): nothing to keep.
                    raise StoreWriteError(self._refusal_message()) from exc
                self.unwritten.append(full)

    def _write_record(self, record: Mapping[str, Any]) -> None:
        line = frame(record)
        self._write(line)
        self._batch.add(str(record["_t"]), line, self._offset - len(line))

    def _write(self, data: bytes) -> None:
        fd = self._open()
        try:
            _write_all(fd, data)
        except OSError:
            self._batch.reset()  # the file may now hold a fragment: offsets are unknown
            self._drop_fd()
            raise
        self._offset += len(data)
        if self.fsync:
            try:
                os.fsync(fd)
            except OSError as exc:
                # The record is in the file; writing it again would duplicate it.
                self.last_error = f"fsync failed: {exc.strerror or exc}"
                self._drop_fd()

    def _refusal_message(self) -> str:
        pending = (
            f"; {len(self.unwritten)} record(s) of steps that ran are pending"
            if self.unwritten
            else ""
        )
        return (
            f"the trace store refused a write to {self.path} ({self.last_error}), so "
            f"nothing more runs until it can record{pending}. Free disk space or make "
            "the store writable, then run `%rlam status`"
            + (" to write the pending records." if self.unwritten else " and run the cell again.")
        )

    def _pending_message(self) -> str:
        return (
            f"the trace store refused a write ({self.last_error}): {len(self.unwritten)} "
            f"trace record(s) of run {self.run_id} are pending, not in {self.path.parent}. "
            "Values of steps that ran are kept in the notebook. Free disk space or make "
            "the store writable, then run `%rlam status` to write the pending records."
        )

    def pending_notes(self) -> list[str]:
        """A note for a step result when records are pending (empty when all are written)."""
        if not self.unwritten:
            return []
        return [f"trace incomplete: {self._pending_message()}"]

    def raise_if_pending(self) -> None:
        """Raise :class:`StoreWriteError` while records are pending (after a cell ran)."""
        if self.unwritten:
            raise StoreWriteError(self._pending_message())

    @contextlib.contextmanager
    def holding_failures(self) -> Iterator[None]:
        """Within this block a refused write is only queued in ``unwritten``."""
        with self._lock:
            self._hold += 1
        try:
            yield
        finally:
            with self._lock:
                self._hold -= 1

    def retry_unwritten(self) -> int:
        """Write records that failed earlier, oldest first; returns how many are still pending."""
        with self._lock:
            while self.unwritten:
                try:
                    self._write_record(self.unwritten[0])
                except OSError as exc:
                    self.last_error = exc.strerror or str(exc)
                    break
                self.unwritten.pop(0)
            return len(self.unwritten)

    def _drop_fd(self) -> None:
        if self._fd is not None:
            drop_journal_fd(self._fd)  # releases the lease too
            self._fd = None
            self.leased = False

    def close(self) -> None:
        with self._lock:
            if self._owner_pid == os.getpid():
                self._batch.flush()
            self._drop_fd()

    def _forget_in_child(self) -> None:
        """After a fork, in the child: the fd is the parent's (liveness closed the child's
        copy), and so are the pending lines and records; the lock may have been held by a
        thread that does not exist here."""
        self._lock = threading.RLock()
        self._fd = None
        self.leased = False
        self._batch.reset()
        self.unwritten = []


_WRITERS: weakref.WeakSet[JournalWriter] = weakref.WeakSet()
"""Every writer of this process, for :meth:`JournalWriter._forget_in_child`."""


def _forget_writers_in_child() -> None:
    for writer in list(_WRITERS):
        writer._forget_in_child()


if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    os.register_at_fork(after_in_child=_forget_writers_in_child)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _last_byte(path: Path, size: int) -> bytes:
    with open(path, "rb") as handle:
        handle.seek(size - 1)
        return handle.read(1)
