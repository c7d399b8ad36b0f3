"""Where replay, fork and diff work: the store, the engine and (in a kernel) the session
whose runs and namespace they use, and how a run or step the user names is found."""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rlam_jupyter.actions.registry import Registry
from rlam_jupyter.engine import Engine
from rlam_jupyter.errors import RlamError
from rlam_jupyter.store.catalog import resolve_run
from rlam_jupyter.store.index.lineage import Lineage
from rlam_jupyter.store.index.model import StepEntry
from rlam_jupyter.store.index.source import IndexSource
from rlam_jupyter.store.resolve import StoreRef, resolve_store

if TYPE_CHECKING:
    from rlam_jupyter.engine.session import Session


@dataclass(frozen=True)
class ReplayContext:
    """The engine to work through, the step indexes it reads, and the kernel's session
    and namespace where there is one. ``source`` must be closed after reading."""

    engine: Engine
    source: IndexSource
    session: Session | None
    namespace: MutableMapping[str, Any] | None


def open_context(
    store: StoreRef,
    namespace: MutableMapping[str, Any] | None = None,
    session: Session | None = None,
    registry: Registry | None = None,
    engine: Engine | None = None,
) -> ReplayContext:
    """The ``session`` when the store is its store, else a fresh engine on ``store``
    (or the ``engine`` given: a script that recorded the parent forks in memory)."""
    if engine is not None:
        return ReplayContext(engine, IndexSource(engine.layout, engine.indexes()), None, namespace)
    layout = resolve_store(store)
    if (
        session is not None
        and (store is None or session.engine.layout.root == layout.root)
        and (registry is None or registry is session.engine.registry)
    ):
        engine = session.engine
        if namespace is None:
            namespace = session.namespace
    else:
        session = None
        engine = Engine(layout, registry=registry)
    return ReplayContext(engine, IndexSource(engine.layout, engine.indexes()), session, namespace)


def resolve(ctx: ReplayContext, ref: str) -> str:
    """A run id from an id, a run name, or a unique id prefix/suffix.

    Runs of this kernel and run ids are found without reading records; other names
    need one read of the store's views.
    """
    ref = str(ref).strip()
    if ctx.session is not None:
        for run in reversed(list(ctx.session.runs.values())):
            if ref in (run.run_id, run.name):
                return run.run_id
    for run_id, run in reversed(list(ctx.engine.runs.items())):
        if ref in (run_id, run.name):
            return run_id
    known = ctx.source.known_run_ids()
    if ref in known:
        return ref
    if len(ref) >= 4 and ref.isalnum() and ref.upper() == ref:
        matches = [r for r in known if r.startswith(ref) or r.endswith(ref)]
        if len(matches) == 1:
            return matches[0]
    return resolve_run(ctx.source.connection(), ref)


@contextmanager
def open_lineage(engine: Engine, ref: str) -> Iterator[tuple[Lineage, Any]]:
    """Resolve run ``ref`` through ``engine`` and yield its lineage and a DuckDB connection
    to the store's views (opened here if resolving did not: a full read of the store);
    both are closed when the block ends."""
    ctx = open_context(engine.layout, {}, None, engine.registry, engine)
    try:
        lineage = ctx.source.lineage(resolve(ctx, ref))
        yield lineage, ctx.source.connection()
    finally:
        ctx.source.close()


def find_step(lineage: Lineage, step: int | str) -> tuple[int, StepEntry]:
    """The step a user named (its number, the number as text, or its step id
    ``<run>-<seq>``) in the lineage's run, own or inherited; an error names the range."""
    seq = _seq_of(step)
    found = lineage.step(seq)
    if found is None:
        raise RlamError(
            f"run {lineage.run.name} has no step {seq}; its steps are 1..{lineage.last_seq()}"
        )
    return seq, found[1]


def _seq_of(step: int | str) -> int:
    if isinstance(step, int):
        return step
    text = str(step).strip()
    if text.isdigit():
        return int(text)
    head, _, tail = text.rpartition("-")
    if head and tail.isdigit():
        return int(tail)
    raise RlamError(f"{step!r} is not a step: give its number (seq) or its step id")
