"""Gather the part of a trace store that a bundle carries, through the documented views only.

A bundle holds the chosen runs and their fork ancestors (a fork's prefix lives in its
parent), every recorded state of their steps, and the artifact records their steps
used or generated, even when those were first recorded by another run (cache hits).
Rows are sorted on every column, so the same runs always give the same tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from rlam_jupyter.errors import UnknownRunError
from rlam_jupyter.operations.bundle.trace_rows import arrow_table
from rlam_jupyter.store.catalog import Connection, resolve_run
from rlam_jupyter.store.schema import TABLES


@dataclass(frozen=True)
class TraceSlice:
    """The rows of every trace table that belong to ``run_ids`` (with the trace's schemas)."""

    run_ids: tuple[str, ...]
    tables: dict[str, pa.Table]

    def column(self, table: str, name: str) -> list[Any]:
        return list(self.tables[table].column(name).to_pylist())


def with_schema(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Cast to the trace schema, filling columns the source lacks with nulls."""
    columns = []
    for field in schema:
        if field.name in table.column_names:
            columns.append(table.column(field.name).cast(field.type))
        else:
            columns.append(pa.nulls(table.num_rows, type=field.type))
    return pa.Table.from_arrays(columns, schema=schema)


def select_runs(con: Connection, refs: Sequence[str] | None) -> tuple[str, ...]:
    """Resolve run references (ids, names, prefixes) and add fork ancestors; all runs if None."""
    if refs:
        chosen = {resolve_run(con, ref) for ref in refs}
    else:
        chosen = {row[0] for row in con.execute("SELECT run_id FROM runs").fetchall()}
        if not chosen:
            raise UnknownRunError("the store has no runs to export; run some %%rlam cells first")
    parents = dict(con.execute("SELECT run_id, parent_run_id FROM runs").fetchall())
    pending = list(chosen)
    while pending:
        parent = parents.get(pending.pop())
        if parent and parent not in chosen:
            if parent not in parents:
                raise UnknownRunError(
                    f"run {parent} (the parent of a chosen fork) is not in this store; "
                    "import the bundle that holds it first"
                )
            chosen.add(parent)
            pending.append(parent)
    return tuple(sorted(chosen))


def collect(con: Connection, run_ids: Sequence[str], *, llm_content: bool = True) -> TraceSlice:
    """Every trace row of ``run_ids``, sorted deterministically."""
    con.register("_bundle_runs", pa.table({"run_id": pa.array(sorted(run_ids), pa.string())}))
    in_runs = "run_id IN (SELECT run_id FROM _bundle_runs)"
    queries = {
        "runs": f"SELECT * FROM run_events WHERE {in_runs}",
        "steps": f"SELECT * FROM step_events WHERE {in_runs}",
        "edges": f"SELECT * FROM edges WHERE {in_runs}",
        "artifacts": f"""
            SELECT * FROM artifacts WHERE {in_runs} OR artifact_id IN (
                SELECT dst FROM edges WHERE {in_runs} AND type IN ('used', 'generated'))""",
        "environments": f"""
            SELECT * FROM environments WHERE {in_runs} OR env_id IN (
                SELECT env_id FROM run_events WHERE {in_runs}
                UNION SELECT env_id FROM step_events WHERE {in_runs})""",
        "llm_calls": f"SELECT * FROM llm_calls WHERE {in_runs}",
        "approvals": f"SELECT * FROM approvals WHERE {in_runs}",
    }
    tables: dict[str, pa.Table] = {}
    for name, schema in TABLES.items():
        query = queries.get(name, f"SELECT * FROM {name} WHERE {in_runs}")
        columns = ", ".join(f'"{f.name}"' for f in schema)
        relation = con.sql(f"SELECT {columns} FROM ({query}) ORDER BY ALL")
        table = with_schema(arrow_table(relation), schema)
        if name == "llm_calls" and not llm_content:
            table = _without_llm_content(table)
        tables[name] = table
    con.unregister("_bundle_runs")
    return TraceSlice(tuple(sorted(run_ids)), tables)


def _without_llm_content(table: pa.Table) -> pa.Table:
    """Keep the hashes of prompts and responses, drop their text."""
    for column in ("request", "response"):
        index = table.schema.get_field_index(column)
        if index >= 0:
            table = table.set_column(
                index, table.schema.field(index), pa.nulls(table.num_rows, pa.string())
            )
    return table
