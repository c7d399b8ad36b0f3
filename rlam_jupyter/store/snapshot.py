"""Lock-free snapshots of a store: the Parquet parts published and the journal records
they do not cover, read again and again at the cost of what changed.

A snapshot also judges the writers of runs that have not ended
(:mod:`rlam_jupyter.store.liveness`), so the views of :mod:`rlam_jupyter.store.catalog`
can show a step in flight in a run whose every writer is dead as ``interrupted``.
"""

from __future__ import annotations

import os
import stat
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from rlam_jupyter.store.journal_format import decode_line
from rlam_jupyter.store.journal_reader import JournalChunk, header_id_of, parse_journal
from rlam_jupyter.store.layout import StoreLayout
from rlam_jupyter.store.liveness import DEAD, Liveness, judge
from rlam_jupyter.store.manifest import Coverage, Manifest, load_manifests
from rlam_jupyter.store.schema import SCHEMA_VERSION, TABLES
from rlam_jupyter.store.versioning import check_readable


@dataclass
class Snapshot:
    """A consistent view of a store: the Parquet parts its manifests list and the journal
    records those parts do not cover yet."""

    layout: StoreLayout
    manifests: dict[str, Manifest]
    journal: dict[str, pa.Table]
    parts: dict[str, list[Path]]
    problems: list[tuple[str, int, str]] = field(default_factory=list)
    journal_files: int = 0
    appended: dict[str, pa.Table] | None = None
    """When the only change since the reader's previous snapshot is records appended to
    journals: those records, by table (else None: anything may have changed)."""
    writers: list[WriterVerdict] = field(default_factory=list)
    """The verdict on each journal writer of a run that has not ended (as the journals say)."""

    @property
    def dead_runs(self) -> set[str]:
        """Runs whose every journal writer is dead: what they had in flight was interrupted."""
        by_run: dict[str, list[str]] = {}
        for verdict in self.writers:
            by_run.setdefault(verdict.run_id, []).append(verdict.liveness.state)
        return {run for run, states in by_run.items() if all(s == DEAD for s in states)}

    def liveness_changed(self) -> bool:
        """True when a writer judged alive or unknown here has died since (dead stays dead)."""
        return any(
            v.liveness.state != DEAD and judge(v.path, v.header).state != v.liveness.state
            for v in self.writers
        )

    @property
    def mixed_versions(self) -> bool:
        """True when some Parquet parts were written with an older schema."""
        return any(m.schema_version != SCHEMA_VERSION for m in self.manifests.values())


@dataclass(frozen=True)
class WriterVerdict:
    """Whether the writer of one journal file lives, as judged when the snapshot was read."""

    path: Path
    run_id: str
    header: dict[str, object] | None
    liveness: Liveness


def take_snapshot(layout: StoreLayout) -> Snapshot:
    """Read the store without locks (see :class:`SnapshotReader`, here used once)."""
    return SnapshotReader(layout).read()


@dataclass
class _JournalState:
    """What has been read of one journal file: where reading resumes and the records so far."""

    signature: tuple[int, int, int]
    """inode, size and mtime when last read: unchanged means nothing to read."""
    header_id: str | None
    schema_version: int | None
    start: int
    """First byte read: the end of what a manifest covers (0 if none)."""
    end: int
    """Byte just after the last complete line read; the next read starts here."""
    next_line: int
    header: dict[str, object] | None = None
    """The file's first record (names its writer), None when unreadable."""
    ended: bool = False
    """True once a record read says the run ended: its writers need no judging."""
    pieces: dict[str, list[pa.Table]] = field(default_factory=dict)
    problems: list[tuple[str, int, str]] = field(default_factory=list)
    torn: tuple[str, int, str] | None = None

    def add(self, chunk: JournalChunk) -> None:
        runs = chunk.tables.get("runs")
        if runs is not None and any(s not in (None, "open") for s in runs["status"].to_pylist()):
            self.ended = True
        for name, table in chunk.tables.items():
            pieces = self.pieces.setdefault(name, [])
            pieces.append(table)
            if len(pieces) > _MAX_PIECES:  # many small appends: keep scans cheap
                self.pieces[name] = [pa.concat_tables(pieces).combine_chunks()]
        self.schema_version = chunk.schema_version
        self.problems.extend(p for p in chunk.problems if p is not chunk.torn)
        self.torn = chunk.torn
        self.end = chunk.end
        self.next_line += chunk.lines

    @property
    def version(self) -> int | None:
        """The schema version the file says (0: an older file without one)."""
        if self.schema_version is not None:
            return self.schema_version
        return 0 if self.header_id is not None else None


_MAX_PIECES = 32


def _fresh_state(
    head: bytes, signature: tuple[int, int, int], coverage: Coverage | None, size: int
) -> _JournalState:
    """Nothing read yet of a file whose first line is ``head``; reading starts after ``coverage``."""
    header_id = header_id_of(head)
    record = decode_line(head[:-1]) if header_id is not None else None
    header = record if record is not None and record.get("_t") == "header" else None
    if coverage is None:
        return _JournalState(signature, header_id, None, 0, 0, 1, header)
    start = min(coverage.offset, size)
    return _JournalState(signature, header_id, None, start, start, coverage.lines + 1, header)


class SnapshotReader:
    """Reads a store again and again, each time only what changed since the last read.

    Keeps, per journal file, the Arrow tables of the records read so far and the byte
    offset after the last complete line (a torn tail is read again next time, once
    complete). Manifests are read afresh every time, after the journals: compaction
    publishes a manifest before it deletes the journals it covers, so a journal gone
    by then is covered by the manifest, and bytes a manifest covers are skipped (a
    file whose coverage changed is read again from the new coverage). A long-lived
    server keeps one per store; :func:`take_snapshot` uses one once.
    """

    def __init__(self, layout: StoreLayout) -> None:
        self.layout = layout
        self._files: dict[Path, _JournalState] = {}
        self._manifests: dict[str, Manifest] = {}
        self._lock = threading.Lock()
        self._read_before = False
        self._appended: dict[str, list[pa.Table]] | None = None
        """Records read by the current read, while it only found appends."""

    def read(self) -> Snapshot:
        """A consistent snapshot of the store now (one read at a time)."""
        with self._lock:
            return self._read()

    def _read(self) -> Snapshot:
        self._appended = {} if self._read_before else None
        listed = self.layout.journal_files()
        for path in set(self._files) - set(listed):
            self._drop(path)
        for path in listed:
            self._read_tail(path)
        while True:
            manifests = load_manifests(self.layout)
            vanished = [p for p in list(self._files) if not self._apply_coverage(p, manifests)]
            if not vanished:
                break
            # Deleted by a compaction since listed: its manifest is published by now.
            for path in vanished:
                self._drop(path)
        if manifests != self._manifests:
            self._appended = None
        self._manifests = manifests
        self._read_before = True
        return self._snapshot(manifests)

    def _drop(self, path: Path) -> None:
        if self._files.pop(path, None) is not None:
            self._appended = None

    def _add(self, state: _JournalState, chunk: JournalChunk) -> None:
        state.add(chunk)
        if self._appended is not None:
            for name, table in chunk.tables.items():
                self._appended.setdefault(name, []).append(table)

    @staticmethod
    def _coverage(
        path: Path, header_id: str | None, manifests: dict[str, Manifest]
    ) -> Coverage | None:
        manifest = manifests.get(path.parent.name)
        return manifest.covered(path.name, header_id) if manifest else None

    def _read_tail(self, path: Path) -> None:
        """Read what was appended to ``path`` since last time (all of it if it is new)."""
        try:
            info = os.stat(path)
        except FileNotFoundError:
            self._drop(path)
            return
        if not stat.S_ISREG(info.st_mode):  # a device or pipe is not a journal
            self._drop(path)
            return
        signature = (info.st_ino, info.st_size, info.st_mtime_ns)
        state = self._files.get(path)
        if state is not None and state.signature == signature:
            return
        try:
            with open(path, "rb") as handle:
                head = handle.readline()
                header_id = header_id_of(head)
                if state is None or state.header_id != header_id or info.st_size < state.end:
                    if state is not None:  # replaced or cut: its records so far are void
                        self._appended = None
                    coverage = self._coverage(path, header_id, self._manifests)
                    state = _fresh_state(head, signature, coverage, info.st_size)
                handle.seek(state.end)
                data = handle.read()
        except FileNotFoundError:
            self._drop(path)
            return
        state.signature = signature
        self._add(state, parse_journal(path, head, data, state.end, state.next_line))
        self._files[path] = state

    def _apply_coverage(self, path: Path, manifests: dict[str, Manifest]) -> bool:
        """Make the file's records exclude exactly what ``manifests`` cover; False if it is gone."""
        state = self._files[path]
        coverage = self._coverage(path, state.header_id, manifests)
        if (coverage.offset if coverage else 0) == state.start:
            return True
        self._appended = None  # records move between journal and Parquet
        try:
            with open(path, "rb") as handle:
                info = os.fstat(handle.fileno())
                head = handle.readline()
                fresh = _fresh_state(
                    head, (info.st_ino, info.st_size, info.st_mtime_ns), coverage, info.st_size
                )
                handle.seek(fresh.start)
                data = handle.read()
        except FileNotFoundError:
            return False
        if fresh.header_id != state.header_id:
            return False  # replaced since listed: left out now, read afresh next time
        fresh.add(parse_journal(path, head, data, fresh.start, fresh.next_line))
        self._files[path] = fresh
        return True

    def _snapshot(self, manifests: dict[str, Manifest]) -> Snapshot:
        states = [self._files[p] for p in sorted(self._files)]
        versions = {s.version for s in states if s.version is not None}
        versions.update(m.schema_version for m in manifests.values())
        check_readable(versions, self.layout.root)
        journal: dict[str, pa.Table] = {}
        for name, schema in TABLES.items():
            pieces = [t for s in states for t in s.pieces.get(name, ())]
            # from_batches: an empty table without pyarrow's pandas import (empty_table has one)
            journal[name] = (
                pa.concat_tables(pieces) if pieces else pa.Table.from_batches([], schema)
            )
        parts: dict[str, list[Path]] = {name: [] for name in TABLES}
        problems: list[tuple[str, int, str]] = []
        for manifest in manifests.values():
            for table, relative in manifest.parts.items():
                if table in parts:
                    parts[table].extend(self.layout.root / p for p in relative)
            problems.extend(manifest.problems)
        for state in states:
            problems.extend(state.problems)
            if state.torn is not None:
                problems.append(state.torn)
        appended = None
        if self._appended is not None:
            appended = {
                name: pa.concat_tables(self._appended[name])
                for name in TABLES
                if name in self._appended
            }
        return Snapshot(
            self.layout,
            manifests,
            journal,
            parts,
            problems,
            len(states),
            appended,
            self._judge_writers(),
        )

    def _judge_writers(self) -> list[WriterVerdict]:
        """A verdict on the writers of every run whose journals do not say it ended (a
        lock test and a /proc read per file: runs that ended are never judged)."""
        ended = {p.parent.name for p, s in self._files.items() if s.ended}
        return [
            WriterVerdict(path, path.parent.name, state.header, judge(path, state.header))
            for path, state in sorted(self._files.items())
            if path.parent.name not in ended
        ]
