"""A run index on disk: an Arrow IPC file, ``index/<run_id>.arrow``, read memory-mapped.

Written when a run ends, stamped with the sizes of the run's journal files; a stamp that
no longer matches (records appended later) makes :func:`load_saved` refuse it, so a stale
index is never used. Read back, it is queried column-wise (:class:`SavedRunIndex`).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from rlam_jupyter.store.index.model import (
    ENTRY_FIELDS,
    ArtifactRef,
    StepEntry,
    StepIndex,
    VisibleBinding,
)
from rlam_jupyter.store.layout import StoreLayout

FORMAT = 2


class SavedRunIndex:
    """A saved index read back as Arrow columns; entries are built only when asked for."""

    def __init__(self, table: pa.Table, meta: Mapping[str, Any]) -> None:
        run = meta["run"]
        self.run_id: str = run["run_id"]
        self.name: str = run["name"]
        self.seed: int = int(run["seed"])
        self.parent_run_id: str | None = run["parent_run_id"]
        self.fork_seq: int | None = run["fork_seq"]
        self.status: str = run["status"]
        self.env_id: str | None = run["env_id"]
        self.envs: dict[str, dict[str, Any]] = dict(meta["envs"])
        self.table = table
        self._steps: list[StepEntry] | None = None
        self._artifacts: dict[str, ArtifactRef] | None = None

    @property
    def steps(self) -> list[StepEntry]:
        if self._steps is None:
            self._steps = _entries(self.table.select(list(ENTRY_FIELDS)))
        return self._steps

    def step(self, seq: int) -> StepEntry | None:
        position = pc.index(self.table["seq"], pa.scalar(seq, pa.int64())).as_py()
        if position < 0:
            return None
        return _entries(self.table.slice(position, 1).select(list(ENTRY_FIELDS)))[0]

    def count_before(self, limit: int) -> int:
        return int(pc.sum(pc.less(self.table["seq"], limit)).as_py() or 0)

    def entries_from(self, seq: int) -> list[StepEntry]:
        table = self.table.filter(pc.greater_equal(self.table["seq"], seq))
        return _entries(table.select(list(ENTRY_FIELDS)))

    def artifact(self, artifact_id: str) -> ArtifactRef | None:
        if self._artifacts is None:
            columns = [
                pc.list_flatten(self.table[name]).to_pylist()
                for name in ("b_artifacts", "b_kinds", "b_paths", "b_notes")
            ]
            self._artifacts = {row[0]: ArtifactRef(*row) for row in zip(*columns, strict=True)}
        return self._artifacts.get(artifact_id)

    def visible(self, limit: int) -> list[VisibleBinding]:
        """The newest binding of each name made by a step with ``seq < limit`` (column-wise:
        flatten the bindings of the earlier steps, keep the last row of each name)."""
        table = self.table.filter(pc.less(self.table["seq"], limit))
        if table.num_rows == 0:
            return []
        parents = pc.list_parent_indices(table["b_names"])
        flat = pa.table(
            {
                "name": pc.list_flatten(table["b_names"]),
                "row": pa.array(range(len(parents)), pa.int64()),
            }
        )
        if flat.num_rows == 0:
            return []
        last = flat.group_by("name").aggregate([("row", "max")])["row_max"]
        step_ids = pc.take(table["step_id"], pc.take(parents, last))
        columns = [pc.take(pc.list_flatten(table[n]), last) for n in _BOUND_COLUMNS]
        names, outputs, artifacts, kinds, paths = (c.to_pylist() for c in columns)
        return [
            VisibleBinding(*row)
            for row in zip(
                names, outputs, artifacts, step_ids.to_pylist(), kinds, paths, strict=True
            )
        ]


def index_table(index: StepIndex) -> pa.Table:
    """The steps as columns (dicts as JSON text) plus, per ok step, parallel lists of
    the names it bound and where each artifact is."""
    columns: dict[str, list[Any]] = {name: [] for name in _ARROW_SCHEMA.names}
    for entry in index.steps:
        for name in ENTRY_FIELDS:
            value = getattr(entry, name)
            if name in _JSON_FIELDS:
                value = json.dumps(value if name != "targets" else list(value))
            columns[name].append(value)
        bound = entry.bindings()
        refs = [index.artifact(artifact_id) for _, _, artifact_id in bound]
        columns["b_names"].append([name for name, _, _ in bound])
        columns["b_outputs"].append([output for _, output, _ in bound])
        columns["b_artifacts"].append([artifact_id for _, _, artifact_id in bound])
        columns["b_kinds"].append([r.kind if r else "opaque" for r in refs])
        columns["b_paths"].append([r.object_path if r else None for r in refs])
        columns["b_notes"].append([r.note if r else None for r in refs])
    meta = {
        "format": FORMAT,
        "run": {
            "run_id": index.run_id,
            "name": index.name,
            "seed": index.seed,
            "parent_run_id": index.parent_run_id,
            "fork_seq": index.fork_seq,
            "status": index.status,
            "env_id": index.env_id,
        },
        "envs": index.envs,
    }
    table = pa.table(columns, schema=_ARROW_SCHEMA)
    return table.replace_schema_metadata({b"rlam": json.dumps(meta).encode()})


def save_index(index: StepIndex, layout: StoreLayout) -> None:
    """Write ``index`` atomically, stamped with the journal sizes it reflects."""
    table = index_table(index)
    meta = json.loads(table.schema.metadata[b"rlam"])
    meta["stamp"] = journal_stamp(layout, index.run_id)
    table = table.replace_schema_metadata({b"rlam": json.dumps(meta).encode()})
    target = index_path(layout, index.run_id)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".part")
    os.close(fd)
    try:
        with pa.OSFile(temp, "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


_BOUND_COLUMNS = ("b_names", "b_outputs", "b_artifacts", "b_kinds", "b_paths")
_JSON_FIELDS = ("params", "inputs", "input_ids", "targets", "outputs")


_STRING_LIST = pa.list_(pa.string())
_ARROW_SCHEMA = pa.schema(
    [(name, pa.int64() if name in ("seq", "seed") else pa.string()) for name in ENTRY_FIELDS]
    + [(name, _STRING_LIST) for name in (*_BOUND_COLUMNS, "b_notes")]
)


def _entries(table: pa.Table) -> list[StepEntry]:
    rows = table.to_pylist()
    for row in rows:
        for name in _JSON_FIELDS:
            row[name] = json.loads(row[name]) if row[name] else {}
        row["targets"] = tuple(row["targets"] or ())
    return [StepEntry(**row) for row in rows]


def index_path(layout: StoreLayout, run_id: str) -> Path:
    return layout.index_dir / f"{run_id}.arrow"


def journal_stamp(layout: StoreLayout, run_id: str) -> list[list[Any]]:
    """Name and size of each journal file of the run: changes whenever a record is added."""
    folder = layout.run_journal_dir(run_id)
    if not folder.is_dir():
        return []
    return sorted([p.name, p.stat().st_size] for p in folder.glob("*.jsonl"))


def load_saved(layout: StoreLayout, run_id: str) -> SavedRunIndex | None:
    """The saved index of a run, or None when missing, unreadable or stale."""
    path = index_path(layout, run_id)
    try:
        with pa.memory_map(str(path)) as source:
            table = pa.ipc.open_file(source).read_all()
        meta = json.loads((table.schema.metadata or {})[b"rlam"])
    except (OSError, ValueError, KeyError, pa.ArrowException):
        return None
    if meta.get("format") != FORMAT or meta.get("stamp") != journal_stamp(layout, run_id):
        return None
    return SavedRunIndex(table, meta)
