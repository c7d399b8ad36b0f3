"""Rebuild a run's index from the DuckDB views, when no current saved index exists."""

from __future__ import annotations

import json
from typing import Any

from rlam_jupyter.errors import UnknownRunError
from rlam_jupyter.store.catalog import Connection
from rlam_jupyter.store.index.memory import RunIndex
from rlam_jupyter.store.index.model import ENTRY_FIELDS, ArtifactRef, StepEntry


def build_from_store(con: Connection, run_id: str) -> RunIndex:
    """Rebuild a run's index from the DuckDB views (journals and Parquet alike)."""
    row = con.execute(
        "SELECT run_id, name, seed, parent_run_id, fork_seq, status, env_id FROM runs "
        "WHERE run_id = ?",
        [run_id],
    ).fetchone()
    if row is None:
        raise UnknownRunError(f"no run {run_id!r} in this store; `rlam runs` lists the runs")
    index = RunIndex(
        run_id=row[0],
        name=row[1],
        seed=int(row[2] or 0),
        parent_run_id=row[3],
        fork_seq=row[4],
        status=row[5] or "open",
        env_id=row[6],
    )
    for env_id, text in con.execute(
        "SELECT env_id, any_value(fingerprint) FROM environments WHERE run_id = ? "
        "GROUP BY env_id ORDER BY min(recorded_at)",
        [run_id],
    ).fetchall():
        index.envs[env_id] = json.loads(text) if text else {}
    columns = ", ".join(f"s.{name}" for name in _STORE_COLUMNS)
    rows = con.execute(
        f"SELECT {columns} FROM steps s WHERE s.run_id = ? ORDER BY s.seq", [run_id]
    ).fetchall()
    referenced: set[str] = set()
    for values in rows:
        entry = _entry_from_store(dict(zip(_STORE_COLUMNS, values, strict=True)))
        index.upsert(entry)
        referenced.update(entry.outputs.values())
        referenced.update(entry.input_ids.values())
    if referenced:
        for artifact_id, kind, path, note in con.execute(
            "SELECT artifact_id, any_value(kind), any_value(object_path), any_value(note) "
            "FROM artifacts WHERE artifact_id IN (SELECT unnest(?::VARCHAR[])) "
            "GROUP BY artifact_id",
            [sorted(referenced)],
        ).fetchall():
            index.artifacts[artifact_id] = ArtifactRef(artifact_id, kind, path, note)
    return index


_STORE_COLUMNS = tuple("input_names" if f == "input_ids" else f for f in ENTRY_FIELDS)
"""The steps columns an index entry is built from: the index's own fields, with the
trace's ``input_names`` where the index has ``input_ids`` (:func:`_entry_from_store`
maps the two)."""


def _entry_from_store(row: dict[str, Any]) -> StepEntry:
    inputs = _loads(row["inputs"])
    names = _loads(row["input_names"])
    executed = row["status"] not in ("rejected", "proposed")
    return StepEntry(
        seq=int(row["seq"]),
        step_id=row["step_id"],
        action=row["action"],
        status=row["status"],
        params=_loads(row["params"]),
        # Rejected steps record the proposed names in ``inputs``; executed steps record
        # the artifact ids there and the names in ``input_names``.
        inputs=names if executed else inputs,
        input_ids=inputs if executed else {},
        targets=tuple(_loads(row["targets"]) or ()),
        outputs=_loads(row["outputs"]),
        seed=row["seed"],
        determinism=row["determinism"],
        action_version=row["action_version"],
        error_type=row["error_type"],
        error_message=row["error_message"],
        cached_from=row["cached_from"],
        recovers=row["recovers"],
        env_id=row["env_id"],
        source_text=row["source_text"],
    )


def _loads(text: str | None) -> Any:
    if not text:
        return {}
    value = json.loads(text)
    return value if value is not None else {}
