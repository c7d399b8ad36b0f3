"""Compact step index of a run: what replay, fork and diff need, without reading the whole store.

The journal stays the source of truth. The engine that writes a run keeps its index
in memory (:class:`RunIndex`) and saves it as an Arrow IPC file, ``index/<run_id>.arrow``,
when the run ends, stamped with the sizes of the run's journal files. A stamp that no
longer matches (records appended later) makes readers rebuild the index from the
DuckDB views, so a stale index is never used. A saved index is read memory-mapped
(:class:`SavedRunIndex`) and queried column-wise: finding one step or the artifacts
visible before a step costs vectorised work over that one run, not a Python loop over
its prefix, and nothing over the rest of the store.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from bisect import bisect_left
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.compute as pc

from rlam_jupyter.errors import UnknownRunError
from rlam_jupyter.store.layout import StoreLayout

OK_STATUSES = ("succeeded", "cached")
FORMAT = 2
_NO_LIMIT = 1 << 62


@dataclass(frozen=True)
class ArtifactRef:
    """Where a recorded output's bytes are (``object_path`` is None when only hashed)."""

    artifact_id: str
    kind: str
    object_path: str | None
    note: str | None = None


@dataclass(frozen=True)
class StepEntry:
    """The newest state of one step, as recorded."""

    seq: int
    step_id: str
    action: str
    status: str
    params: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, str] = field(default_factory=dict)
    """Input parameter → the artifact *name* proposed (what a fork re-proposes)."""
    input_ids: dict[str, str] = field(default_factory=dict)
    """Input parameter → the artifact id the step received (what verify restores)."""
    targets: tuple[str, ...] = ()
    outputs: dict[str, str] = field(default_factory=dict)
    seed: int | None = None
    determinism: str | None = None
    action_version: str | None = None
    error_type: str | None = None
    error_message: str | None = None
    cached_from: str | None = None
    recovers: str | None = None
    env_id: str | None = None
    source_text: str | None = None

    @property
    def ok(self) -> bool:
        return self.status in OK_STATUSES

    @property
    def bound_names(self) -> tuple[str, ...]:
        """The names the engine bound (explicit targets, else the output names)."""
        return self.targets or tuple(self.outputs)

    def bindings(self) -> list[tuple[str, str, str]]:
        """``(name bound, output name, artifact id)`` for each output of an ok step."""
        if not self.ok:
            return []
        return [
            (target, output, self.outputs[output])
            for target, output in zip(self.bound_names, self.outputs, strict=False)
        ]


@dataclass(frozen=True)
class VisibleBinding:
    """An artifact a step can use by name: who produced it and where its bytes are."""

    name: str
    output: str
    artifact_id: str
    step_id: str
    kind: str
    object_path: str | None


class StepIndex(Protocol):
    """What :class:`Lineage` reads from one run, in memory or saved."""

    run_id: str
    name: str
    seed: int
    parent_run_id: str | None
    fork_seq: int | None
    status: str
    env_id: str | None
    envs: dict[str, dict[str, Any]]

    @property
    def steps(self) -> Sequence[StepEntry]: ...

    def step(self, seq: int) -> StepEntry | None: ...

    def count_before(self, limit: int) -> int: ...

    def entries_from(self, seq: int) -> list[StepEntry]: ...

    def visible(self, limit: int) -> list[VisibleBinding]: ...

    def artifact(self, artifact_id: str) -> ArtifactRef | None: ...


@dataclass
class RunIndex:
    """One run's own steps (a fork's inherited prefix lives in its ancestors' indexes)."""

    run_id: str
    name: str
    seed: int
    parent_run_id: str | None = None
    fork_seq: int | None = None
    status: str = "open"
    env_id: str | None = None
    envs: dict[str, dict[str, Any]] = field(default_factory=dict)
    steps: list[StepEntry] = field(default_factory=list)
    artifacts: dict[str, ArtifactRef] = field(default_factory=dict)
    _position: dict[int, int] = field(default_factory=dict, repr=False)
    _seqs: list[int] = field(default_factory=list, repr=False)
    _producers: dict[str, tuple[list[int], list[StepEntry]]] | None = field(
        default_factory=dict, repr=False
    )
    """Name → the seqs and steps that bound it, kept up to date as steps arrive."""

    def upsert(self, entry: StepEntry, artifacts: Mapping[str, ArtifactRef] = {}) -> None:
        """Record a step's newest state (steps arrive in ``seq`` order)."""
        self.artifacts.update(artifacts)
        position = self._position.get(entry.seq)
        if position is None:
            if self.steps and entry.seq < self.steps[-1].seq:
                raise ValueError(f"step {entry.seq} arrived after step {self.steps[-1].seq}")
            self._position[entry.seq] = len(self.steps)
            self.steps.append(entry)
            self._seqs.append(entry.seq)
        else:
            self.steps[position] = entry
        if self._producers is not None and entry.ok:
            for name, _output, _artifact in entry.bindings():
                seqs, entries = self._producers.setdefault(name, ([], []))
                if seqs and seqs[-1] == entry.seq:
                    entries[-1] = entry
                else:
                    seqs.append(entry.seq)
                    entries.append(entry)

    def step(self, seq: int) -> StepEntry | None:
        position = self._position.get(seq)
        return None if position is None else self.steps[position]

    def count_before(self, limit: int) -> int:
        return bisect_left(self._seqs, limit)

    def entries_from(self, seq: int) -> list[StepEntry]:
        return self.steps[bisect_left(self._seqs, seq) :]

    def artifact(self, artifact_id: str) -> ArtifactRef | None:
        return self.artifacts.get(artifact_id)

    def visible(self, limit: int) -> list[VisibleBinding]:
        """The newest binding of each name made by a step with ``seq < limit``: a binary
        search per name, or a backward scan of the earlier steps when they are fewer
        (so the cost is the smaller of the two, never the whole run)."""
        earlier = self.count_before(limit)
        producers = self.producers()
        if earlier < len(producers):
            latest: dict[str, StepEntry] = {}
            for entry in reversed(self.steps[:earlier]):
                for name in entry.bound_names if entry.ok else ():
                    latest.setdefault(name, entry)
        else:
            latest = {}
            for name in producers:
                producer = self.producer_before(name, limit)
                if producer is not None:
                    latest[name] = producer
        found = []
        for name, entry in latest.items():
            for target, output, artifact_id in entry.bindings():
                if target == name:
                    ref = self.artifacts.get(artifact_id)
                    found.append(
                        VisibleBinding(
                            name,
                            output,
                            artifact_id,
                            entry.step_id,
                            ref.kind if ref else "opaque",
                            ref.object_path if ref else None,
                        )
                    )
                    break
        return found

    def producer_before(self, name: str, limit: int) -> StepEntry | None:
        """The newest ok step of this run that bound ``name`` at a ``seq`` below ``limit``."""
        seqs, entries = self.producers().get(name, ([], []))
        position = bisect_left(seqs, limit)
        return entries[position - 1] if position else None

    def producers(self) -> dict[str, tuple[list[int], list[StepEntry]]]:
        if self._producers is None:
            producers: dict[str, tuple[list[int], list[StepEntry]]] = {}
            for entry in self.steps:
                for name, _output, _artifact in entry.bindings():
                    seqs, entries = producers.setdefault(name, ([], []))
                    seqs.append(entry.seq)
                    entries.append(entry)
            self._producers = producers
        return self._producers

    # ------------------------------------------------------------ persistence

    def to_arrow(self) -> pa.Table:
        """The steps as columns (dicts as JSON text) plus, per ok step, parallel lists of
        the names it bound and where each artifact is."""
        columns: dict[str, list[Any]] = {name: [] for name in _ARROW_SCHEMA.names}
        for entry in self.steps:
            for name in _ENTRY_FIELDS:
                value = getattr(entry, name)
                if name in _JSON_FIELDS:
                    value = json.dumps(value if name != "targets" else list(value))
                columns[name].append(value)
            bound = entry.bindings()
            refs = [self.artifacts.get(artifact_id) for _, _, artifact_id in bound]
            columns["b_names"].append([name for name, _, _ in bound])
            columns["b_outputs"].append([output for _, output, _ in bound])
            columns["b_artifacts"].append([artifact_id for _, _, artifact_id in bound])
            columns["b_kinds"].append([r.kind if r else "opaque" for r in refs])
            columns["b_paths"].append([r.object_path if r else None for r in refs])
            columns["b_notes"].append([r.note if r else None for r in refs])
        meta = {
            "format": FORMAT,
            "run": {
                "run_id": self.run_id,
                "name": self.name,
                "seed": self.seed,
                "parent_run_id": self.parent_run_id,
                "fork_seq": self.fork_seq,
                "status": self.status,
                "env_id": self.env_id,
            },
            "envs": self.envs,
        }
        table = pa.table(columns, schema=_ARROW_SCHEMA)
        return table.replace_schema_metadata({b"rlam": json.dumps(meta).encode()})

    def save(self, layout: StoreLayout) -> None:
        """Write atomically, stamped with the journal sizes it reflects."""
        table = self.to_arrow()
        meta = json.loads(table.schema.metadata[b"rlam"])
        meta["stamp"] = journal_stamp(layout, self.run_id)
        table = table.replace_schema_metadata({b"rlam": json.dumps(meta).encode()})
        target = index_path(layout, self.run_id)
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
            self._steps = _entries(self.table.select(list(_ENTRY_FIELDS)))
        return self._steps

    def step(self, seq: int) -> StepEntry | None:
        position = pc.index(self.table["seq"], pa.scalar(seq, pa.int64())).as_py()
        if position < 0:
            return None
        return _entries(self.table.slice(position, 1).select(list(_ENTRY_FIELDS)))[0]

    def count_before(self, limit: int) -> int:
        return int(pc.sum(pc.less(self.table["seq"], limit)).as_py() or 0)

    def entries_from(self, seq: int) -> list[StepEntry]:
        table = self.table.filter(pc.greater_equal(self.table["seq"], seq))
        return _entries(table.select(list(_ENTRY_FIELDS)))

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


_BOUND_COLUMNS = ("b_names", "b_outputs", "b_artifacts", "b_kinds", "b_paths")
_JSON_FIELDS = ("params", "inputs", "input_ids", "targets", "outputs")


_ENTRY_FIELDS = (
    "seq",
    "step_id",
    "action",
    "status",
    "params",
    "inputs",
    "input_ids",
    "targets",
    "outputs",
    "seed",
    "determinism",
    "action_version",
    "error_type",
    "error_message",
    "cached_from",
    "recovers",
    "env_id",
    "source_text",
)


_STRING_LIST = pa.list_(pa.string())
_ARROW_SCHEMA = pa.schema(
    [(name, pa.int64() if name in ("seq", "seed") else pa.string()) for name in _ENTRY_FIELDS]
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


def build_from_store(con: Any, run_id: str) -> RunIndex:
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


_STORE_COLUMNS = tuple("input_names" if f == "input_ids" else f for f in _ENTRY_FIELDS)
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


@dataclass
class Lineage:
    """A run and the ancestors whose prefixes it shares, newest first.

    ``links`` holds ``(index, upto)``: the steps of ``index`` with ``seq < upto`` are
    visible in the run (``upto`` is unlimited for the run itself).
    """

    links: list[tuple[StepIndex, int]]

    @property
    def run(self) -> StepIndex:
        return self.links[0][0]

    def steps(self, upto: int | None = None) -> Iterator[StepEntry]:
        """Every visible step in ``seq`` order, inherited ones included (reads them all)."""
        limit = _NO_LIMIT if upto is None else upto + 1
        for index, link_upto in reversed(self.links):
            bound = min(link_upto, limit)
            for entry in index.steps:
                if entry.seq >= bound:
                    break
                yield entry

    def steps_after(self, seq: int) -> list[StepEntry]:
        """The visible steps with a ``seq`` above ``seq``, in order."""
        later: list[StepEntry] = []
        for index, upto in reversed(self.links):
            later += [e for e in index.entries_from(seq + 1) if e.seq < upto]
        return later

    def count_before(self, seq: int) -> int:
        """How many visible steps come before ``seq`` (without reading them)."""
        return sum(index.count_before(min(upto, seq)) for index, upto in self.links)

    def last_seq(self) -> int:
        return max((e.seq for e in self.steps()), default=0)

    def step(self, seq: int) -> tuple[StepIndex, StepEntry] | None:
        """The visible step at ``seq`` and the run that recorded it."""
        for index, upto in self.links:
            if seq < upto:
                entry = index.step(seq)
                if entry is not None:
                    return index, entry
        return None

    def bindings_before(self, seq: int) -> dict[str, VisibleBinding]:
        """Every artifact name visible just before step ``seq``, newest binding first."""
        found: dict[str, VisibleBinding] = {}
        for index, upto in self.links:
            for binding in index.visible(min(upto, seq)):
                found.setdefault(binding.name, binding)
        return found

    def artifact(self, artifact_id: str) -> ArtifactRef | None:
        for index, _upto in self.links:
            ref = index.artifact(artifact_id)
            if ref is not None:
                return ref
        return None


class IndexSource:
    """Finds run indexes: in memory (runs this kernel writes), saved, or rebuilt from DuckDB."""

    def __init__(self, layout: StoreLayout, memory: Mapping[str, StepIndex] | None = None) -> None:
        self.layout = layout
        self.memory = memory if memory is not None else {}
        self._con: Any = None
        self.rebuilt: list[str] = []

    def connection(self) -> Any:
        """A DuckDB view of the whole store, opened on first need (costs a full read)."""
        if self._con is None:
            from rlam_jupyter.store.catalog import connect

            self._con = connect(self.layout)
        return self._con

    def index(self, run_id: str) -> StepIndex:
        held = self.memory.get(run_id)
        if held is not None:
            return held
        saved = load_saved(self.layout, run_id)
        if saved is not None:
            return saved
        rebuilt = build_from_store(self.connection(), run_id)
        self.rebuilt.append(run_id)
        # A read-only store is still readable; the saved index is only a shortcut.
        with contextlib.suppress(OSError):
            rebuilt.save(self.layout)
        return rebuilt

    def lineage(self, run_id: str) -> Lineage:
        links: list[tuple[StepIndex, int]] = []
        upto = _NO_LIMIT
        seen: set[str] = set()
        current: str | None = run_id
        while current is not None and current not in seen:
            seen.add(current)
            index = self.index(current)
            links.append((index, upto))
            if index.parent_run_id is None or index.fork_seq is None:
                break
            upto = min(upto, index.fork_seq)
            current = index.parent_run_id
        return Lineage(links)

    def known_run_ids(self) -> list[str]:
        """Run ids found without reading any record: journal folders, saved indexes and
        the manifests of runs compacted into Parquet."""
        ids = set(self.memory)
        if self.layout.journal_dir.is_dir():
            ids.update(p.name for p in self.layout.journal_dir.iterdir() if p.is_dir())
        for folder in (self.layout.index_dir, self.layout.parquet_dir / "_manifests"):
            if folder.is_dir():
                ids.update(p.stem for p in folder.iterdir() if p.suffix in (".arrow", ".json"))
        return sorted(i for i in ids if not i.startswith("."))

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None
