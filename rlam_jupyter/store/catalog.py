"""DuckDB query layer over the journals and compacted Parquet files.

``connect()`` opens an in-memory DuckDB, so no file lock is ever held and any number
of kernels, the Jupyter server and the CLI can read while kernels write. Each call
sees a consistent snapshot: the Parquet parts published when it looked, and the
journal records those parts do not cover. It also judges the writers of runs that have
not ended (:mod:`rlam_jupyter.store.liveness`): a step in flight in a run whose every
writer is dead reads as ``interrupted``, and so does the run, until ``rlam repair``
records it so.
"""

from __future__ import annotations

import os
import stat
import threading
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa

from rlam_jupyter.errors import UnknownRunError
from rlam_jupyter.store.journal_format import decode_line
from rlam_jupyter.store.journal_reader import JournalChunk, header_id_of, parse_journal
from rlam_jupyter.store.layout import StoreLayout
from rlam_jupyter.store.liveness import DEAD, Liveness, judge
from rlam_jupyter.store.manifest import Coverage, Manifest, load_manifests
from rlam_jupyter.store.resolve import resolve_store
from rlam_jupyter.store.schema import (
    IN_FLIGHT_STATUSES,
    INTERRUPTED,
    LATEST_BY,
    SCHEMA_VERSION,
    TABLES,
)
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
            journal[name] = pa.concat_tables(pieces) if pieces else schema.empty_table()
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


def _sql_list(paths: list[Path]) -> str:
    return "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths) + "]"


def connect(store: str | os.PathLike[str] | StoreLayout | None = None) -> duckdb.DuckDBPyConnection:
    """Open a read-only DuckDB view of a trace store.

    Views: ``runs``, ``steps`` (one row per step, its newest state), ``step_events``
    (every state change), ``artifacts``, ``edges``, ``environments``, ``llm_calls``,
    ``approvals``; table macro ``run_steps(run_id)`` lists a run's steps including
    the prefix a fork shares with its parent. The journal read report is available
    as the ``journal_problems`` table (torn tails, corrupt records), the verdict on the
    writers of runs not ended as the ``writers`` table (``state`` alive, dead or
    unknown, and why). A run not ended whose every writer is dead reads as
    ``interrupted`` in ``runs``, and so do its steps in flight in ``steps``;
    ``step_events`` keeps what was recorded.

    Compacted runs are read from Parquet partitioned by run, so a query for one run
    opens only that run's files; open runs come from their journals.
    """
    layout = store if isinstance(store, StoreLayout) else resolve_store(store)
    return connect_snapshot(take_snapshot(layout))


def connect_snapshot(snapshot: Snapshot) -> duckdb.DuckDBPyConnection:
    """The views of :func:`connect` over ``snapshot`` (e.g. from a :class:`SnapshotReader`);
    the journal records are registered as they are, without copying."""
    con = duckdb.connect(":memory:")
    con.execute("SET enable_progress_bar = false")
    register_journal(con, snapshot)
    dead = bool(snapshot.dead_runs)  # else the views stay plain (and as fast as ever)
    for name, schema in TABLES.items():
        columns = ", ".join(f'"{f.name}"' for f in schema)
        source = f"SELECT * FROM _journal_{name}"
        if snapshot.parts[name]:
            # Parts of the current schema all have the same columns: reading every
            # file's footer to unify them (union_by_name) would cost a read per file.
            unify = "true" if snapshot.mixed_versions else "false"
            source = (
                f"SELECT {columns} FROM (SELECT * FROM read_parquet("
                f"{_sql_list(snapshot.parts[name])}, union_by_name = {unify}, "
                "hive_partitioning = true, hive_types = {'run_id': VARCHAR}) "
                f"UNION ALL BY NAME {source})"
            )
        events = f"{name[:-1]}_events" if name in LATEST_BY else f"_{name}_all"
        con.execute(f"CREATE VIEW {events} AS {source}")
        if name == "runs":
            status = (
                f"* EXCLUDE (rn) REPLACE ({_INTERRUPTED_RUN} AS status)"
                if dead
                else "* EXCLUDE (rn)"
            )
            con.execute(
                f"CREATE VIEW {name} AS SELECT {status} FROM ("
                "SELECT *, row_number() OVER (PARTITION BY run_id "
                f"ORDER BY event_no DESC) AS rn FROM {events}) WHERE rn = 1"
            )
        elif name in LATEST_BY:
            # The newest record per key, as a semi-join on its event number: for a whole
            # table it costs about one scan (a window would sort every column), and a
            # filter on run_id reaches both sides, so one run reads only its own files.
            # Event numbers are unique per key: one writer records a step.
            key = LATEST_BY[name]
            chosen = f"e.* REPLACE ({_INTERRUPTED_STEP} AS status)" if dead else "e.*"
            con.execute(
                f"CREATE VIEW {name} AS SELECT {chosen} FROM {events} e SEMI JOIN ("
                f"SELECT run_id, {key}, max(event_no) AS newest FROM {events} GROUP BY ALL) n "
                f"ON e.run_id = n.run_id AND e.{key} = n.{key} AND e.event_no = n.newest"
            )
        else:
            con.execute(f"CREATE VIEW {name} AS SELECT DISTINCT ON (*) * FROM {events}")
    con.execute(_RUN_STEPS_MACRO)
    return con


_IN_FLIGHT = ", ".join(f"'{s}'" for s in IN_FLIGHT_STATUSES)
_INTERRUPTED_RUN = (
    "CASE WHEN coalesce(status, 'open') = 'open' AND run_id IN "
    f"(SELECT run_id FROM _dead_writer_runs) THEN '{INTERRUPTED}' ELSE status END"
)
_INTERRUPTED_STEP = (
    f"CASE WHEN e.status IN ({_IN_FLIGHT}) AND e.run_id IN (SELECT run_id FROM runs "
    f"WHERE status = '{INTERRUPTED}') THEN '{INTERRUPTED}' ELSE e.status END"
)


def register_journal(con: duckdb.DuckDBPyConnection, snapshot: Snapshot) -> None:
    """Point ``con``'s views at ``snapshot``'s journal records and problem report.

    The views read them by name, so a connection made by :func:`connect_snapshot` moves
    on to a later snapshot of the same store (same manifests) by calling this again."""
    for name in TABLES:
        con.register(f"_journal_{name}", snapshot.journal[name])
    problems = pa.table(
        {
            "file": pa.array([p[0] for p in snapshot.problems], type=pa.string()),
            "line": pa.array([p[1] for p in snapshot.problems], type=pa.int64()),
            "problem": pa.array([p[2] for p in snapshot.problems], type=pa.string()),
        }
    )
    con.register("journal_problems", problems)
    dead = pa.table({"run_id": pa.array(sorted(snapshot.dead_runs), pa.string())})
    con.register("_dead_writer_runs", dead)
    verdicts = snapshot.writers
    con.register(
        "writers",
        pa.table(
            {
                "run_id": pa.array([v.run_id for v in verdicts], pa.string()),
                "writer": pa.array([_text(v.header, "writer") for v in verdicts], pa.string()),
                "host": pa.array([_text(v.header, "host") for v in verdicts], pa.string()),
                "pid": pa.array([_number(v.header, "pid") for v in verdicts], pa.int64()),
                "process_started_us": pa.array(
                    [_number(v.header, "process_started_us") for v in verdicts], pa.int64()
                ),
                "state": pa.array([v.liveness.state for v in verdicts], pa.string()),
                "reason": pa.array([v.liveness.reason for v in verdicts], pa.string()),
                "journal": pa.array([str(v.path) for v in verdicts], pa.string()),
            }
        ),
    )


def _text(header: dict[str, object] | None, key: str) -> str | None:
    value = (header or {}).get(key)
    return value if isinstance(value, str) else None


def _number(header: dict[str, object] | None, key: str) -> int | None:
    value = (header or {}).get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


_RUN_STEPS_MACRO = """
CREATE MACRO run_steps(rid) AS TABLE
WITH RECURSIVE chain(run_id, parent_run_id, fork_seq, upto, depth) AS (
    SELECT run_id, parent_run_id, fork_seq, 9223372036854775807::BIGINT, 0
    FROM runs WHERE run_id = rid
    UNION ALL
    SELECT r.run_id, r.parent_run_id, r.fork_seq, least(c.upto, c.fork_seq), c.depth + 1
    FROM runs r JOIN chain c ON r.run_id = c.parent_run_id
    WHERE c.fork_seq IS NOT NULL AND c.depth < 10000
)
SELECT s.*, c.depth AS inherited_depth
FROM steps s JOIN chain c ON s.run_id = c.run_id
WHERE s.seq < c.upto
ORDER BY s.seq
"""


def resolve_run(con: duckdb.DuckDBPyConnection, ref: str) -> str:
    """A run id from an id, a run name (newest wins) or a unique id prefix/suffix.

    Reads every result to the end (``fetchall``), so the connection stays free for the
    Arrow queries that follow. Raises :class:`UnknownRunError` naming what to do.
    """
    named = con.execute(
        "SELECT run_id FROM runs WHERE run_id = ? OR name = ? ORDER BY created_at DESC LIMIT 1",
        [ref, ref],
    ).fetchall()
    if named:
        return str(named[0][0])
    matches = con.execute(
        "SELECT run_id FROM runs WHERE starts_with(run_id, ?) OR ends_with(run_id, ?)", [ref, ref]
    ).fetchall()
    if len(matches) == 1:
        return str(matches[0][0])
    if matches:
        raise UnknownRunError(f"{ref!r} matches {len(matches)} runs; give more of the run id")
    raise UnknownRunError(f"no run {ref!r} in this store; `rlam runs` lists the runs")
