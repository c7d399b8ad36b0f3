"""Where a run's index comes from: in memory (runs this kernel writes), saved, or rebuilt."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping

from rlam_jupyter.store.catalog import Connection, connect
from rlam_jupyter.store.index.lineage import Lineage, fork_chain
from rlam_jupyter.store.index.model import StepIndex
from rlam_jupyter.store.index.rebuild import build_from_store
from rlam_jupyter.store.index.saved import load_saved
from rlam_jupyter.store.layout import StoreLayout


class IndexSource:
    """Finds run indexes: in memory (runs this kernel writes), saved, or rebuilt from DuckDB."""

    def __init__(self, layout: StoreLayout, memory: Mapping[str, StepIndex] | None = None) -> None:
        self.layout = layout
        self.memory = memory if memory is not None else {}
        self._con: Connection | None = None
        self.rebuilt: list[str] = []

    def connection(self) -> Connection:
        """A DuckDB view of the whole store, opened on first need (costs a full read)."""
        if self._con is None:
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
        """The run and the ancestors it sees, each index found as :meth:`index` finds it."""
        indexes: dict[str, StepIndex] = {}

        def parent_of(current: str) -> tuple[str | None, int | None]:
            index = indexes[current] = self.index(current)
            return index.parent_run_id, index.fork_seq

        return Lineage.from_chain(fork_chain(run_id, parent_of), indexes)

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
