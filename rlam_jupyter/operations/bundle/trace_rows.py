"""The bundle's trace tables as plain rows: newest state per step and run, artifacts by id.

PROV, RO-Crate, verification and import all read the same rows, so they agree on
what a step's final state is (the record with the highest ``event_no``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import pyarrow as pa

from rlam_jupyter.store.schema import decode_json_column

OK_STATUSES = ("succeeded", "cached")


def latest(table: pa.Table, key: str) -> list[dict[str, Any]]:
    """The newest record per ``key`` (highest ``event_no``, ties: last row), in key order."""
    import duckdb

    con = duckdb.connect(":memory:")
    try:
        con.register("records", table.append_column("_row", pa.array(range(table.num_rows))))
        newest = con.sql(
            f"SELECT * EXCLUDE (_row) FROM records QUALIFY row_number() OVER ("
            f'PARTITION BY "{key}" ORDER BY coalesce(event_no, 0) DESC, _row DESC) = 1 '
            f'ORDER BY "{key}"'
        )
        rows: list[dict[str, Any]] = arrow_table(newest).to_pylist()
    finally:
        con.close()
    return rows


def arrow_table(relation: Any) -> pa.Table:
    """A DuckDB relation as one Arrow table (the method name changed across DuckDB versions)."""
    to_table = getattr(relation, "to_arrow_table", None) or relation.fetch_arrow_table
    table: pa.Table = to_table()
    return table


def json_field(row: dict[str, Any], name: str, default: Any) -> Any:
    """A JSON-encoded column of ``row``, or ``default`` when empty or unreadable."""
    return decode_json_column(row.get(name), default)


def iso(value: Any) -> str | None:
    """An ISO 8601 UTC time (``...Z``) from a timestamp column value."""
    if value is None:
        return None
    if isinstance(value, int):
        value = datetime.fromtimestamp(value / 1e6, tz=timezone.utc)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        text: str = value.astimezone(timezone.utc).isoformat()
        return text.replace("+00:00", "Z")
    return str(value)


def end_time(step: dict[str, Any]) -> str | None:
    start = step.get("started_at")
    duration = step.get("duration_ms")
    if not isinstance(start, datetime) or duration is None:
        return None
    return iso(start + timedelta(milliseconds=float(duration)))


@dataclass
class TraceRows:
    """Rows of a bundle's trace, decoded once."""

    runs: list[dict[str, Any]]
    steps: list[dict[str, Any]]
    artifacts: dict[str, dict[str, Any]]
    edges: list[dict[str, Any]]
    environments: dict[str, dict[str, Any]]
    llm_calls: dict[str, dict[str, Any]]
    step_ids: set[str] = field(default_factory=set)

    @classmethod
    def from_tables(cls, tables: dict[str, pa.Table]) -> TraceRows:
        steps = latest(tables["steps"], "step_id")
        steps.sort(key=lambda s: (s["run_id"], s["seq"]))
        artifacts: dict[str, dict[str, Any]] = {}
        for row in tables["artifacts"].to_pylist():
            # the first record of an id wins: later records of the same bytes add nothing
            artifacts.setdefault(row["artifact_id"], row)
        environments = {row["env_id"]: row for row in tables["environments"].to_pylist()}
        llm_calls = {row["call_id"]: row for row in tables["llm_calls"].to_pylist()}
        return cls(
            runs=latest(tables["runs"], "run_id"),
            steps=steps,
            artifacts=artifacts,
            edges=tables["edges"].to_pylist(),
            environments=environments,
            llm_calls=llm_calls,
            step_ids={s["step_id"] for s in steps},
        )
