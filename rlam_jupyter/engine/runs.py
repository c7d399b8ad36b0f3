"""A run's life: it opens with its environment recorded and closes with its status.

Between the two, an engine runs its run-end hooks (by default :func:`compact_at_run_end`).
Engines are closed when the interpreter exits, so a kernel shut down cleanly (or a
notebook run by nbconvert/papermill) leaves its runs ``succeeded``/``failed``, not ``open``.
"""

from __future__ import annotations

import atexit
import contextlib
import weakref
from typing import Protocol

from ulid import ULID

from rlam_jupyter.engine.recorder import record_edge, record_environment, record_run
from rlam_jupyter.engine.run_state import Run
from rlam_jupyter.store.index.memory import RunIndex
from rlam_jupyter.store.journal import JournalWriter, now_us
from rlam_jupyter.store.layout import StoreLayout
from rlam_jupyter.values.fingerprint import Fingerprint


def new_run(
    layout: StoreLayout,
    writer_id: str,
    env: Fingerprint,
    name: str | None,
    seed: int,
    *,
    notebook: str | None = None,
    parent_run_id: str | None = None,
    fork_seq: int | None = None,
) -> Run:
    """A new run in ``layout`` in the environment ``env``, its journal written by
    ``writer_id``, nothing recorded yet (:func:`record_start` does that). A fork
    (``parent_run_id``) continues its parent's step numbers at ``fork_seq``."""
    run_id = str(ULID())
    writer = JournalWriter(layout, run_id, writer_id)
    run = Run(
        run_id=run_id,
        name=name or f"run-{run_id[-6:].lower()}",
        seed=int(seed),
        writer=writer,
        notebook=notebook,
        parent_run_id=parent_run_id,
        fork_seq=fork_seq,
        next_seq=fork_seq or 1,
        env_id=env.env_id,
        created_us=now_us(),
    )
    run.index = RunIndex(
        run_id,
        run.name,
        run.seed,
        parent_run_id,
        fork_seq,
        env_id=env.env_id,
        envs={env.env_id: env.data},
    )
    return run


def record_start(run: Run, env: Fingerprint) -> None:
    """The first records of a run: its environment, itself, the parent it forks."""
    record_environment(run, env.env_id, env.data)
    record_run(run)
    if run.parent_run_id is not None:
        record_edge(run, run.run_id, run.parent_run_id, "forked_from", str(run.fork_seq))


def close_journal(run: Run, status: str | None = None) -> None:
    """Record the run's end (``succeeded`` unless a failure was never recovered) and
    close its journal."""
    if status is None:
        status = "failed" if run.unrecovered_failures else "succeeded"
    run.status = status
    record_run(run, ended=True)
    run.writer.close()


def save_index(layout: StoreLayout, run: Run) -> None:
    """Save an ended run's index, stamped with the store files it covers now."""
    if run.index is not None:
        run.index.status = run.status
        # The index is a shortcut; readers rebuild it from the journal if it is missing.
        with contextlib.suppress(OSError):
            run.index.save(layout)


class _InStore(Protocol):
    layout: StoreLayout


def compact_at_run_end(engine: _InStore, run: Run) -> None:
    """The engine's default run-end hook: a closed run moves to Parquet (fast reads at
    scale). Never fails the run's end; ``RLAM_AUTO_COMPACT=0`` turns it off."""
    # lazy: compaction loads DuckDB, which a kernel need not pay for before a run ends.
    from rlam_jupyter.store.compaction import compact_ended_run

    compact_ended_run(engine.layout, run.run_id)


class Closable(Protocol):
    def close(self) -> None: ...


_OPEN: weakref.WeakSet[Closable] = weakref.WeakSet()


def close_at_exit(engine: Closable) -> None:
    """Close ``engine`` when the interpreter exits. Engines are held weakly: one
    dropped earlier is not kept alive for this."""
    if not _OPEN:
        atexit.unregister(_close_all)  # registered once, however many engines come
        atexit.register(_close_all)
    _OPEN.add(engine)


def _close_all() -> None:
    for engine in list(_OPEN):
        with contextlib.suppress(Exception):
            engine.close()
