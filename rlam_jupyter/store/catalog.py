"""DuckDB query layer over the journals and compacted Parquet files.

``connect()`` opens an in-memory DuckDB, so no file lock is ever held and any number
of kernels, the Jupyter server and the CLI can read while kernels write. Each call
sees a consistent snapshot: the Parquet parts published when it looked, and the
journal records those parts do not cover.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa

from rlam_jupyter.store.journal_reader import JournalChunk, header_id_of, parse_journal, read_head
from rlam_jupyter.store.layout import StoreLayout, resolve_store
from rlam_jupyter.store.manifest import Manifest, load_manifests
from rlam_jupyter.store.schema import LATEST_BY, SCHEMA_VERSION, TABLES
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

    @property
    def mixed_versions(self) -> bool:
        """True when some Parquet parts were written with an older schema."""
        return any(m.schema_version != SCHEMA_VERSION for m in self.manifests.values())


def take_snapshot(layout: StoreLayout) -> Snapshot:
    """Read the store without locks.

    Journals are read *before* the manifests: compaction publishes a manifest before
    it deletes the journals it covers, so a journal gone by the time it is listed is
    covered by a manifest read afterwards, and bytes a manifest covers are skipped."""
    raw = [(path, read_head(path)) for path in layout.journal_files()]
    manifests = load_manifests(layout)
    chunks: list[JournalChunk] = []
    versions: set[int] = set()
    for path, head_data in raw:
        if head_data is None:
            continue
        head, data = head_data
        chunk = _uncovered(path, head, data, manifests.get(path.parent.name))
        if chunk.schema_version is not None:
            versions.add(chunk.schema_version)
        elif chunk.header_id is not None:
            versions.add(0)
        chunks.append(chunk)
    versions.update(m.schema_version for m in manifests.values())
    check_readable(versions, layout.root)
    journal: dict[str, pa.Table] = {}
    for name, schema in TABLES.items():
        pieces = [c.tables[name] for c in chunks if name in c.tables]
        journal[name] = pa.concat_tables(pieces) if pieces else schema.empty_table()
    parts: dict[str, list[Path]] = {name: [] for name in TABLES}
    problems: list[tuple[str, int, str]] = []
    for manifest in manifests.values():
        for table, relative in manifest.parts.items():
            if table in parts:
                parts[table].extend(layout.root / p for p in relative)
        problems.extend(manifest.problems)
    for chunk in chunks:
        problems.extend(chunk.problems)
    return Snapshot(layout, manifests, journal, parts, problems, len(chunks))


def _uncovered(path: Path, head: bytes, data: bytes, manifest: Manifest | None) -> JournalChunk:
    coverage = manifest.covered(path.name, header_id_of(head)) if manifest else None
    if coverage is None:
        return parse_journal(path, head, data)
    start = min(coverage.offset, len(data))
    return parse_journal(path, head, data[start:], start, coverage.lines + 1)


def read_journals(layout: StoreLayout) -> tuple[dict[str, pa.Table], list[tuple[str, int, str]]]:
    """Journal records not yet covered by compaction, one Arrow table per trace table."""
    snapshot = take_snapshot(layout)
    return snapshot.journal, snapshot.problems


def _sql_list(paths: list[Path]) -> str:
    return "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths) + "]"


def connect(store: str | os.PathLike[str] | StoreLayout | None = None) -> duckdb.DuckDBPyConnection:
    """Open a read-only DuckDB view of a trace store.

    Views: ``runs``, ``steps`` (one row per step, its newest state), ``step_events``
    (every state change), ``artifacts``, ``edges``, ``environments``, ``llm_calls``,
    ``approvals``; table macro ``run_steps(run_id)`` lists a run's steps including
    the prefix a fork shares with its parent. The journal read report is available
    as the ``journal_problems`` table (torn tails, corrupt records).

    Compacted runs are read from Parquet partitioned by run, so a query for one run
    opens only that run's files; open runs come from their journals.
    """
    layout = store if isinstance(store, StoreLayout) else resolve_store(store)
    snapshot = take_snapshot(layout)
    con = duckdb.connect(":memory:")
    con.execute("SET enable_progress_bar = false")
    for name, schema in TABLES.items():
        con.register(f"_journal_{name}", snapshot.journal[name])
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
            con.execute(
                f"CREATE VIEW {name} AS SELECT * EXCLUDE (rn) FROM ("
                "SELECT *, row_number() OVER (PARTITION BY run_id "
                f"ORDER BY event_no DESC) AS rn FROM {events}) WHERE rn = 1"
            )
        elif name in LATEST_BY:
            # The newest record per key, as a semi-join on its event number: for a whole
            # table it costs about one scan (a window would sort every column), and a
            # filter on run_id reaches both sides, so one run reads only its own files.
            # Event numbers are unique per key: one writer records a step.
            key = LATEST_BY[name]
            con.execute(
                f"CREATE VIEW {name} AS SELECT e.* FROM {events} e SEMI JOIN ("
                f"SELECT run_id, {key}, max(event_no) AS newest FROM {events} GROUP BY ALL) n "
                f"ON e.run_id = n.run_id AND e.{key} = n.{key} AND e.event_no = n.newest"
            )
        else:
            con.execute(f"CREATE VIEW {name} AS SELECT DISTINCT ON (*) * FROM {events}")
    con.execute(_RUN_STEPS_MACRO)
    problems = pa.table(
        {
            "file": pa.array([p[0] for p in snapshot.problems], type=pa.string()),
            "line": pa.array([p[1] for p in snapshot.problems], type=pa.int64()),
            "problem": pa.array([p[2] for p in snapshot.problems], type=pa.string()),
        }
    )
    con.register("journal_problems", problems)
    return con


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
