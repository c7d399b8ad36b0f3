"""A fork's lineage: the runs whose steps it sees, and the one walker that finds them.

A fork shares its parent's steps before the fork point by reference, and a fork of a fork
its grandparent's before the smaller of the two fork points, and so on. :func:`fork_chain`
is the only code that walks ``parent_run_id``/``fork_seq``: the saved indexes
(:meth:`~rlam_jupyter.store.index.source.IndexSource.lineage`), the trace browser's
queries and the ``run_steps`` DuckDB macro all take their chain from it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeAlias

from rlam_jupyter.store.index.model import ArtifactRef, StepEntry, StepIndex, VisibleBinding

_NO_LIMIT = 1 << 62


class ForkLink(NamedTuple):
    """One run of a lineage and the ``seq`` its visible steps stop before (None: all)."""

    run_id: str
    upto: int | None


ParentOf: TypeAlias = Callable[[str], tuple[str | None, int | None] | None]
"""A run's ``(parent_run_id, fork_seq)``, or None for a run not known."""


def fork_chain(run_id: str, parent_of: ParentOf) -> list[ForkLink]:
    """The runs whose steps ``run_id`` sees, newest first: the run itself (not cut), then
    its parent cut at the fork point, then each further ancestor cut at the smallest fork
    point on the way down to it.

    ``parent_of`` is asked once for each run of the chain, in order (so a caller can load
    each run's record as it goes). The walk ends at a run with no parent or fork point,
    at a run ``parent_of`` does not know (after listing it), and at a run already listed
    (a loop, which only a corrupt store can hold)."""
    chain = [ForkLink(run_id, None)]
    seen = {run_id}
    upto: int | None = None
    current = run_id
    while True:
        link = parent_of(current)
        if link is None:
            break
        parent, fork_seq = link
        if parent is None or fork_seq is None or parent in seen:
            break
        upto = fork_seq if upto is None else min(upto, fork_seq)
        chain.append(ForkLink(parent, upto))
        seen.add(parent)
        current = parent
    return chain


def fork_parents(runs: Iterable[Mapping[str, Any]]) -> dict[str, tuple[str | None, int | None]]:
    """``run_id`` → ``(parent_run_id, fork_seq)`` of rows of the ``runs`` view, whose
    ``.get`` is a :data:`ParentOf` for :func:`fork_chain`."""
    return {r["run_id"]: (r["parent_run_id"], r["fork_seq"]) for r in runs}


@dataclass
class Lineage:
    """A run and the ancestors whose prefixes it shares, newest first.

    ``links`` holds ``(index, upto)``: the steps of ``index`` with ``seq < upto`` are
    visible in the run (``upto`` is unlimited for the run itself).
    """

    links: list[tuple[StepIndex, int]]

    @classmethod
    def from_chain(cls, chain: Iterable[ForkLink], indexes: Mapping[str, StepIndex]) -> Lineage:
        """The lineage of a :func:`fork_chain`, each run read from ``indexes``."""
        return cls(
            [(indexes[run_id], _NO_LIMIT if upto is None else upto) for run_id, upto in chain]
        )

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
