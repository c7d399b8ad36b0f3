"""DuckDB query layer over the journals and compacted Parquet files.

``connect()`` opens an in-memory DuckDB, so no file lock is ever held and any number
of kernels, the Jupyter server and the CLI can read while kernels write. Each call
sees a consistent snapshot: the journals as they were when it read them.
"""

from __future__ import annotations

import os
from collections import defaultdict
from typing import Any

import duckdb
import pyarrow as pa

from rlam_jupyter.errors import StoreReadError
from rlam_jupyter.store.journal import JournalReadReport, iter_records
from rlam_jupyter.store.layout import StoreLayout, resolve_store
from rlam_jupyter.store.schema import LATEST_BY, SCHEMA_VERSION, TABLES

_TIMESTAMP_COLUMNS = {
    name: [f.name for f in schema if pa.types.is_timestamp(f.type)]
    for name, schema in TABLES.items()
}


def read_journals(layout: StoreLayout) -> tuple[dict[str, pa.Table], JournalReadReport]:
    """Every intact journal record, as one Arrow table per trace table."""
    report = JournalReadReport()
    rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for path in layout.journal_files():
        for record in iter_records(path, report):
            kind = record.get("_t")
            if kind in TABLES:
                rows[str(kind)].append(record)
    newer = {v for v in report.schema_versions if v > SCHEMA_VERSION}
    if newer:
        raise StoreReadError(
            f"the store at {layout.root} was written by a newer rlam-jupyter "
            f"(schema {max(newer)}, this version reads {SCHEMA_VERSION}); "
            "upgrade with `pip install -U rlam-jupyter`."
        )
    tables = {name: _to_arrow(name, rows.get(name, [])) for name in TABLES}
    return tables, report


def _to_arrow(table: str, records: list[dict[str, Any]]) -> pa.Table:
    schema = TABLES[table]
    if not records:
        return schema.empty_table()
    columns = {}
    for field in schema:
        values = [r.get(field.name) for r in records]
        if field.name in _TIMESTAMP_COLUMNS[table]:
            columns[field.name] = pa.array(values, type=pa.int64()).cast(field.type)
        else:
            columns[field.name] = pa.array(values, type=field.type)
    return pa.table(columns, schema=schema)


def _parquet_glob(layout: StoreLayout, table: str) -> str | None:
    folder = layout.parquet_dir / table
    if folder.is_dir() and any(folder.rglob("*.parquet")):
        return str(folder / "**" / "*.parquet")
    return None


def connect(store: str | os.PathLike[str] | StoreLayout | None = None) -> duckdb.DuckDBPyConnection:
    """Open a read-only DuckDB view of a trace store.

    Views: ``runs``, ``steps`` (one row per step, its newest state), ``step_events``
    (every state change), ``artifacts``, ``edges``, ``environments``, ``llm_calls``,
    ``approvals``; table macro ``run_steps(run_id)`` lists a run's steps including
    the prefix a fork shares with its parent. The journal read report is available
    as the ``journal_problems`` table (torn tails, corrupt records).
    """
    layout = store if isinstance(store, StoreLayout) else resolve_store(store)
    tables, report = read_journals(layout)
    con = duckdb.connect(":memory:")
    for name, table in tables.items():
        con.register(f"_journal_{name}", table)
        glob = _parquet_glob(layout, name)
        source = f"SELECT * FROM _journal_{name}"
        if glob is not None:
            columns = ", ".join(f'"{f.name}"' for f in TABLES[name])
            source = (
                f"SELECT {columns} FROM read_parquet('{glob}', union_by_name=true) "
                f"UNION ALL BY NAME {source}"
            )
        events = f"{name[:-1]}_events" if name in LATEST_BY else f"_{name}_all"
        con.execute(f"CREATE VIEW {events} AS {source}")
        if name in LATEST_BY:
            key = LATEST_BY[name]
            con.execute(
                f"CREATE VIEW {name} AS SELECT * EXCLUDE (rn) FROM ("
                f"SELECT *, row_number() OVER (PARTITION BY {key} ORDER BY event_no DESC) AS rn "
                f"FROM {events}) WHERE rn = 1"
            )
        else:
            con.execute(f"CREATE VIEW {name} AS SELECT DISTINCT ON (*) * FROM {events}")
    con.execute(_RUN_STEPS_MACRO)
    problems = pa.table(
        {
            "file": [p[0] for p in report.skipped],
            "line": pa.array([p[1] for p in report.skipped], type=pa.int64()),
            "problem": [p[2] for p in report.skipped],
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
