"""Export the trace tables as plain Parquet files that any tool reads.

``export_parquet(dest)`` writes one zstd Parquet file per table (``runs``, ``steps``
with each step's newest state, ``artifacts``, ``edges``, ``environments``,
``llm_calls``, ``approvals``; ``step_events`` with every state change on request)
to ``dest``: DuckDB,
pandas, Polars and Spark read them without rlam. Each file carries the schema
version in its metadata (``rlam.schema_version``).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from rlam_jupyter.store.catalog import connect
from rlam_jupyter.store.resolve import StoreRef, resolve_store
from rlam_jupyter.store.schema import SCHEMA_VERSION, TABLES
from rlam_jupyter.store.versioning import PARQUET_TABLE_KEY, PARQUET_VERSION_KEY

TABLE_ORDER = ("runs", "steps", *[t for t in TABLES if t not in ("runs", "steps")])


def export_parquet(
    dest: str | os.PathLike[str],
    store: StoreRef = None,
    *,
    events: bool = False,
) -> dict[str, Any]:
    """Write every trace table of ``store`` to ``dest/<table>.parquet`` (and, with
    ``events``, ``step_events.parquet``: every status change of every step); returns
    ``{"dest", "schema_version", "tables": {table: rows}, "seconds"}``.

    Each file is written under a temporary name and renamed, so a reader of ``dest``
    never sees half a file."""
    layout = resolve_store(store)
    folder = Path(dest).expanduser().resolve()
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    con = connect(layout)
    rows: dict[str, int] = {}
    try:
        for table in (*TABLE_ORDER, "step_events") if events else TABLE_ORDER:
            target = folder / f"{table}.parquet"
            temp = folder / f".tmp-{table}.parquet"
            metadata = (
                f"{{'{PARQUET_VERSION_KEY.decode()}': '{SCHEMA_VERSION}', "
                f"'{PARQUET_TABLE_KEY.decode()}': '{table}'}}"
            )
            con.execute(
                f"COPY (SELECT * FROM {table}) TO '{_quote(temp)}' "
                f"(FORMAT parquet, COMPRESSION zstd, KV_METADATA {metadata})"
            )
            os.replace(temp, target)
            count = con.execute(f"SELECT count(*) FROM '{_quote(target)}'").fetchone()
            rows[table] = int(count[0]) if count else 0
    finally:
        con.close()
    summary = {
        "dest": str(folder),
        "schema_version": SCHEMA_VERSION,
        "tables": rows,
        "seconds": round(time.perf_counter() - started, 3),
    }
    (folder / "rlam-export.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _quote(path: Path) -> str:
    return str(path).replace("'", "''")
