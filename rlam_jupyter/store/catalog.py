"""DuckDB query layer over the journals and compacted Parquet files.

``connect()`` opens an in-memory DuckDB, so no file lock is ever held and any number
of kernels, the Jupyter server and the CLI can read while kernels write. Each call
sees a consistent snapshot: the Parquet parts published when it looked, and the
journal records those parts do not cover (:mod:`rlam_jupyter.store.snapshot`), whose
verdict on the writers of runs not ended shows here: a step in flight in a run whose
every writer is dead reads as ``interrupted``, and so does the run, until ``rlam repair``
records it so.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeAlias

import duckdb
import pyarrow as pa

from rlam_jupyter.errors import UnknownRunError
from rlam_jupyter.store.index.lineage import fork_chain, fork_parents
from rlam_jupyter.store.resolve import StoreRef, resolve_store
from rlam_jupyter.store.schema import IN_FLIGHT_STATUSES, INTERRUPTED, LATEST_BY, TABLES
from rlam_jupyter.store.snapshot import Snapshot, take_snapshot

Connection: TypeAlias = duckdb.DuckDBPyConnection
"""An open DuckDB connection, as :func:`connect` returns (what store functions take as ``con``)."""


def rows(con: Connection, sql: str, params: Iterable[Any] = ()) -> list[dict[str, Any]]:
    """The rows of a query as dicts keyed by column name (what every reader of the views wants)."""
    cursor = con.execute(sql, list(params))
    names = [d[0] for d in cursor.description or ()]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _sql_list(paths: list[Path]) -> str:
    return "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths) + "]"


def connect(store: StoreRef = None) -> Connection:
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
    layout = resolve_store(store)
    return connect_snapshot(take_snapshot(layout))


def connect_snapshot(snapshot: Snapshot) -> Connection:
    """The views of :func:`connect` over ``snapshot`` (e.g. from a
    :class:`~rlam_jupyter.store.snapshot.SnapshotReader`); the journal records are
    registered as they are, without copying."""
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
    _register_run_steps(con)
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


def register_journal(con: Connection, snapshot: Snapshot) -> None:
    """Point ``con``'s views at ``snapshot``'s journal records and problem report.

    The views read them by name, so a connection made by :func:`connect_snapshot` moves
    on to a later snapshot of the same store (same manifests) by calling this again."""
    for name, schema in TABLES.items():
        table = snapshot.journal[name]
        _bind(con, f"_journal_{name}", schema, table.num_rows, table)
    _bind(con, "journal_problems", _PROBLEMS, len(snapshot.problems), lambda: _problems(snapshot))
    dead = sorted(snapshot.dead_runs)
    _bind(con, "_dead_writer_runs", _DEAD, len(dead), lambda: pa.table({"run_id": dead}, _DEAD))
    _bind(con, "writers", _WRITERS, len(snapshot.writers), lambda: _writers(snapshot))


def _bind(
    con: Connection,
    name: str,
    schema: pa.Schema,
    count: int,
    records: pa.Table | Callable[[], pa.Table],
) -> None:
    """``name`` as the ``count`` records (a table, or what builds it), or, when there are none, as a
    typed empty view: a compacted store's connection then neither builds an Arrow table
    from Python values nor registers one, either of which loads pandas (~0.2 s of
    ``rlam runs``)."""
    con.execute(f'DROP VIEW IF EXISTS "{name}"')
    if count:
        con.register(name, records() if callable(records) else records)
        return
    columns = ", ".join(f'NULL::{_sql_type(f.type)} AS "{f.name}"' for f in schema)
    con.execute(f'CREATE TEMP VIEW "{name}" AS SELECT {columns} WHERE false')


_SQL_TYPES = {
    pa.string(): "VARCHAR",
    pa.int64(): "BIGINT",
    pa.float64(): "DOUBLE",
    pa.bool_(): "BOOLEAN",
    pa.timestamp("us", tz="UTC"): "TIMESTAMPTZ",
}


def _sql_type(arrow: pa.DataType) -> str:
    try:
        return _SQL_TYPES[arrow]
    except KeyError:
        raise TypeError(f"no DuckDB type for Arrow {arrow}: add it to catalog._SQL_TYPES") from None


_PROBLEMS = pa.schema([("file", pa.string()), ("line", pa.int64()), ("problem", pa.string())])
_DEAD = pa.schema([("run_id", pa.string())])
_WRITERS = pa.schema(
    [
        ("run_id", pa.string()),
        ("writer", pa.string()),
        ("host", pa.string()),
        ("pid", pa.int64()),
        ("process_started_us", pa.int64()),
        ("state", pa.string()),
        ("reason", pa.string()),
        ("journal", pa.string()),
    ]
)


def _problems(snapshot: Snapshot) -> pa.Table:
    found = snapshot.problems
    return pa.table(
        {
            "file": [p[0] for p in found],
            "line": [p[1] for p in found],
            "problem": [p[2] for p in found],
        },
        _PROBLEMS,
    )


def _writers(snapshot: Snapshot) -> pa.Table:
    verdicts = snapshot.writers
    return pa.table(
        {
            "run_id": [v.run_id for v in verdicts],
            "writer": [_text(v.header, "writer") for v in verdicts],
            "host": [_text(v.header, "host") for v in verdicts],
            "pid": [_number(v.header, "pid") for v in verdicts],
            "process_started_us": [_number(v.header, "process_started_us") for v in verdicts],
            "state": [v.liveness.state for v in verdicts],
            "reason": [v.liveness.reason for v in verdicts],
            "journal": [str(v.path) for v in verdicts],
        },
        _WRITERS,
    )


def _text(header: dict[str, object] | None, key: str) -> str | None:
    value = (header or {}).get(key)
    return value if isinstance(value, str) else None


def _number(header: dict[str, object] | None, key: str) -> int | None:
    value = (header or {}).get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _register_run_steps(con: Connection) -> None:
    """The ``run_steps(run_id)`` table macro: the run's steps and the prefix its ancestors
    share, along the chain :func:`~rlam_jupyter.store.index.lineage.fork_chain` finds
    (DuckDB hands it the ``runs`` rows as one list). A Python function rather than a
    recursive CTE, so SQL and the Python readers walk a lineage with the same code."""
    con.create_function(
        "_fork_chain", _fork_chain_rows, [_VARCHAR, _RUNS_ROWS], _CHAIN, side_effects=False
    )
    con.execute(_RUN_STEPS_MACRO)


def _fork_chain_rows(run_id: str, runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The chain of ``run_id`` with each run's depth, keeping only runs the ``runs`` view
    holds (the steps of a run whose run record is missing are not shown)."""
    parents = fork_parents(runs)
    return [
        {"run_id": link.run_id, "upto": link.upto, "depth": depth}
        for depth, link in enumerate(fork_chain(run_id, parents.get))
        if link.run_id in parents
    ]


_VARCHAR = duckdb.sqltype("VARCHAR")
_RUNS_ROWS = duckdb.list_type(
    duckdb.struct_type(
        {"run_id": _VARCHAR, "parent_run_id": _VARCHAR, "fork_seq": duckdb.sqltype("BIGINT")}
    )
)
_CHAIN = duckdb.list_type(
    duckdb.struct_type(
        {"run_id": _VARCHAR, "upto": duckdb.sqltype("BIGINT"), "depth": duckdb.sqltype("INTEGER")}
    )
)
_RUN_STEPS_MACRO = """
CREATE MACRO run_steps(rid) AS TABLE
WITH chain AS (
    SELECT unnest(_fork_chain(rid, (
        SELECT list({'run_id': run_id, 'parent_run_id': parent_run_id, 'fork_seq': fork_seq})
        FROM runs
    )), recursive := true)
)
SELECT s.*, c.depth AS inherited_depth
FROM steps s JOIN chain c ON s.run_id = c.run_id
WHERE s.seq < coalesce(c.upto, 9223372036854775807)
ORDER BY s.seq
"""


def resolve_run(con: Connection, ref: str) -> str:
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
