"""The index of a run being written, kept in memory by the engine that writes it."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from rlam_jupyter.store.index.model import ArtifactRef, StepEntry, VisibleBinding
from rlam_jupyter.store.index.saved import index_table, save_index
from rlam_jupyter.store.layout import StoreLayout


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

    def to_arrow(self) -> pa.Table:
        """The index in its saved form (see :func:`~.saved.index_table`)."""
        return index_table(self)

    def save(self, layout: StoreLayout) -> None:
        """Write atomically, stamped with the journal sizes it reflects."""
        save_index(self, layout)
