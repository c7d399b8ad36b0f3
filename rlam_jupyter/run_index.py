"""Compact step index of a run: what replay, fork and diff need, without reading the whole store.

The journal stays the source of truth. The engine that writes a run keeps its index
in memory and saves it as ``index/<run_id>.json`` when the run ends, stamped with the
sizes of the run's journal files. A stamp that no longer matches (records appended
later, journals compacted into Parquet) makes readers rebuild the index from the
DuckDB views, so a stale index is never used. Loading a saved index costs time in
proportion to that one run, not to the store; finding the artifacts visible at a
step costs a binary search per name, not a scan of the prefix.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from bisect import bisect_left
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlam_jupyter.errors import UnknownRunError
from rlam_jupyter.store.layout import StoreLayout

OK_STATUSES = ("succeeded", "cached")
FORMAT = 1
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
    _producers: dict[str, tuple[list[int], list[StepEntry]]] | None = field(
        default=None, repr=False
    )

    def upsert(self, entry: StepEntry, artifacts: Mapping[str, ArtifactRef] = {}) -> None:
        """Record a step's newest state (steps arrive in ``seq`` order)."""
        self.artifacts.update(artifacts)
        position = self._position.get(entry.seq)
        if position is None:
            if self.steps and entry.seq < self.steps[-1].seq:
                raise ValueError(f"step {entry.seq} arrived after step {self.steps[-1].seq}")
            self._position[entry.seq] = len(self.steps)
            self.steps.append(entry)
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

    def to_json(self) -> dict[str, Any]:
        return {
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
            "steps": [_entry_row(e) for e in self.steps],
            "artifacts": [
                [a.artifact_id, a.kind, a.object_path, a.note] for a in self.artifacts.values()
            ],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunIndex:
        run = data["run"]
        index = cls(
            run_id=run["run_id"],
            name=run["name"],
            seed=int(run["seed"]),
            parent_run_id=run["parent_run_id"],
            fork_seq=run["fork_seq"],
            status=run["status"],
            env_id=run["env_id"],
            envs=dict(data["envs"]),
            artifacts={row[0]: ArtifactRef(*row) for row in data["artifacts"]},
        )
        index.steps = [_entry_from_row(row) for row in data["steps"]]
        index._position = {e.seq: i for i, e in enumerate(index.steps)}
        return index

    def save(self, layout: StoreLayout) -> None:
        """Write atomically, stamped with the journal sizes it reflects."""
        payload = self.to_json()
        payload["stamp"] = journal_stamp(layout, self.run_id)
        target = index_path(layout, self.run_id)
        target.parent.mkdir(parents=True, exist_ok=True)
        data = json.dumps(payload, separators=(",", ":")).encode()
        fd, temp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(temp, target)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise


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


def _entry_row(entry: StepEntry) -> list[Any]:
    return [getattr(entry, name) for name in _ENTRY_FIELDS]


def _entry_from_row(row: list[Any]) -> StepEntry:
    values = dict(zip(_ENTRY_FIELDS, row, strict=True))
    values["targets"] = tuple(values["targets"])
    return StepEntry(**values)


def index_path(layout: StoreLayout, run_id: str) -> Path:
    return layout.index_dir / f"{run_id}.json"


def journal_stamp(layout: StoreLayout, run_id: str) -> list[list[Any]]:
    """Name and size of each journal file of the run: changes whenever a record is added."""
    folder = layout.run_journal_dir(run_id)
    if not folder.is_dir():
        return []
    return sorted([p.name, p.stat().st_size] for p in folder.glob("*.jsonl"))


def load_saved(layout: StoreLayout, run_id: str) -> RunIndex | None:
    """The saved index of a run, or None when missing or stale."""
    path = index_path(layout, run_id)
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    if data.get("format") != FORMAT or data.get("stamp") != journal_stamp(layout, run_id):
        return None
    return RunIndex.from_json(data)


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


_STORE_COLUMNS = (
    "seq",
    "step_id",
    "action",
    "status",
    "params",
    "inputs",
    "input_names",
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

    links: list[tuple[RunIndex, int]]

    @property
    def run(self) -> RunIndex:
        return self.links[0][0]

    def steps(self, upto: int | None = None) -> Iterator[StepEntry]:
        """Every visible step in ``seq`` order, inherited ones included."""
        limit = _NO_LIMIT if upto is None else upto + 1
        for index, link_upto in reversed(self.links):
            bound = min(link_upto, limit)
            for entry in index.steps:
                if entry.seq >= bound:
                    break
                yield entry

    def step(self, seq: int) -> tuple[RunIndex, StepEntry] | None:
        """The visible step at ``seq`` and the run that recorded it."""
        for index, upto in self.links:
            if seq < upto:
                entry = index.step(seq)
                if entry is not None:
                    return index, entry
        return None

    def names(self) -> set[str]:
        names: set[str] = set()
        for index, _upto in self.links:
            names.update(index.producers())
        return names

    def bindings_before(self, seq: int) -> dict[str, tuple[StepEntry, str]]:
        """Name → (producing step, output name) for every artifact visible just before ``seq``.

        Costs a binary search per name and ancestor, whatever ``seq`` is.
        """
        found: dict[str, tuple[StepEntry, str]] = {}
        for index, upto in self.links:
            limit = min(upto, seq)
            for name in index.producers():
                if name in found:
                    continue
                entry = index.producer_before(name, limit)
                if entry is None:
                    continue
                for target, output, _artifact in entry.bindings():
                    if target == name:
                        found[name] = (entry, output)
                        break
        return found

    def artifact(self, artifact_id: str) -> ArtifactRef | None:
        for index, _upto in self.links:
            ref = index.artifacts.get(artifact_id)
            if ref is not None:
                return ref
        return None


class IndexSource:
    """Finds run indexes: in memory (runs this kernel writes), saved, or rebuilt from DuckDB."""

    def __init__(self, layout: StoreLayout, memory: Mapping[str, RunIndex] | None = None) -> None:
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

    def index(self, run_id: str) -> RunIndex:
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
        links: list[tuple[RunIndex, int]] = []
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
        """Run ids found without reading any record (journal folders and saved indexes)."""
        ids = set(self.memory)
        if self.layout.journal_dir.is_dir():
            ids.update(p.name for p in self.layout.journal_dir.iterdir() if p.is_dir())
        if self.layout.index_dir.is_dir():
            ids.update(p.stem for p in self.layout.index_dir.glob("*.json"))
        return sorted(ids)

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None
