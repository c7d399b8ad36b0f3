"""``fork(run, at, params)``: a new run that shares the parent's steps before ``at`` by
reference (nothing is copied, so the cost does not grow with ``at``), re-proposes step
``at`` with the overrides (schema-checked like any proposal) and re-runs the later steps
in order, from the cache where their inputs are unchanged."""

from __future__ import annotations

import time
from collections.abc import Mapping, MutableMapping
from typing import TYPE_CHECKING, Any

from rlam_jupyter.actions.proposal import Proposal, ProposalRejected
from rlam_jupyter.actions.registry import ActionSpec, Registry
from rlam_jupyter.engine import Binding, Engine, Run
from rlam_jupyter.engine.trace import StepResult
from rlam_jupyter.errors import RlamError
from rlam_jupyter.operations.recorded_actions import RecordedActions, Resolved, rows_from_store
from rlam_jupyter.operations.replay.context import (
    ReplayContext,
    find_step,
    open_context,
    resolve,
)
from rlam_jupyter.operations.replay.views import ForkReport
from rlam_jupyter.store.index.lineage import Lineage
from rlam_jupyter.store.index.model import StepEntry
from rlam_jupyter.store.resolve import StoreRef

if TYPE_CHECKING:
    from rlam_jupyter.engine.session import Session


class ForkRejected(ProposalRejected):
    """The re-proposed step of a fork failed its schema check; the refusal is recorded."""


def start_fork_run(
    engine: Engine, lineage: Lineage, seq: int, name: str, *, notebook: str | None = None
) -> Run:
    """Open a fork of ``lineage.run`` at step ``seq``: a ``forked_from`` edge, the parent's
    seed, and the names visible before ``seq`` bound by reference (loaded only when used),
    so the cost does not grow with the shared prefix."""
    parent = lineage.run
    run = engine.start_run(
        name, parent.seed, notebook=notebook, parent_run_id=parent.run_id, fork_seq=seq
    )
    for bound_name, visible in lineage.bindings_before(seq).items():
        run.bindings[bound_name] = Binding(
            bound_name,
            visible.artifact_id,
            visible.step_id,
            visible.kind,
            visible.object_path,
            None,
            loaded=False,
        )
    run.next_seq = seq
    return run


def fork(
    run: str,
    at: int | str,
    params: Mapping[str, Any] | None = None,
    store: StoreRef = None,
    *,
    name: str | None = None,
    downstream: bool = True,
    namespace: MutableMapping[str, Any] | None = None,
    session: Session | None = None,
    registry: Registry | None = None,
    engine: Engine | None = None,
    keep_open: bool = False,
) -> ForkReport:
    """Branch a new run from step ``at`` of ``run`` with parameter overrides.

    The steps before ``at`` are shared with the parent by reference. Step ``at`` is
    re-proposed with ``params`` merged over its recorded parameters (an override whose
    key is an *input* of the action rebinds that input to another artifact name); the
    steps after it are re-proposed in order (``downstream=False`` stops after step
    ``at``). A bad override raises :class:`ForkRejected`; the refusal stays recorded.
    In a kernel the fork becomes the current run and its names land in the namespace.
    ``engine``: fork through this engine (the one that recorded the parent holds its
    index in memory; otherwise the saved index is read from ``store``). ``keep_open``:
    outside a kernel, leave the fork open (``report.run``) for more steps; close it with
    ``engine.end_run(report.run)``.
    """
    started = time.perf_counter()
    ctx = open_context(store, namespace, session, registry, engine)
    try:
        parent_id = resolve(ctx, run)
        lineage = ctx.source.lineage(parent_id)
    finally:
        ctx.source.close()
    parent = lineage.run
    seq, entry = find_step(lineage, at)
    engine = ctx.engine
    actions = RecordedActions(engine.registry, rows_from_store(engine.layout))
    spec = _fork_spec(_fork_action(actions, entry), seq, parent.name)
    new_run = start_fork_run(
        engine,
        lineage,
        seq,
        name or _fork_name(parent.name, seq),
        notebook=ctx.session.notebook if ctx.session else None,
    )
    first = engine.execute(new_run, _fork_proposal(entry, spec, params), spec=spec)
    if first.status == "rejected":
        engine.end_run(new_run, "failed")
        assert first.error is not None
        raise ForkRejected(
            f"fork of {parent.name} at step {seq} refused, nothing ran (the refusal is recorded "
            f"as step {first.step_id}): {first.error.message.rstrip('.')}",
            action=entry.action,
        )
    results = [first]
    if downstream and first.status != "failed":
        results += _rerun_downstream(engine, new_run, lineage, seq, actions)
    report = ForkReport(
        run_id=new_run.run_id,
        name=new_run.name,
        parent_run_id=parent_id,
        parent_name=parent.name,
        at=seq,
        results=results,
        shared_steps=lineage.count_before(seq),
        loader=lambda n: engine.value(new_run.bindings[n]),
        names=tuple(new_run.bindings),
        run=new_run,
    )
    _adopt(ctx, new_run, keep_open)
    report.elapsed_s = time.perf_counter() - started
    return report


def _fork_name(parent_name: str, seq: int) -> str:
    """``<parent>-fork<seq>-<4 random characters>``: readable, and unique without
    reading the store (a name resolves to the newest run that has it)."""
    from ulid import ULID

    return f"{parent_name}-fork{seq}-{str(ULID())[-4:].lower()}"


def _fork_action(actions: RecordedActions, entry: StepEntry) -> Resolved:
    """The action a fork re-proposes a recorded step with: the current definition if
    there is one (a fork asks what would happen now), else the recorded one rebuilt."""
    return actions.for_entry(entry, prefer_current=True)


def _fork_spec(resolved: Resolved, seq: int, parent_name: str) -> ActionSpec:
    """The spec step ``seq`` is re-proposed with; an error says why there is none."""
    if resolved.spec is None:
        raise RlamError(
            f"step {seq} of run {parent_name} cannot be re-proposed here: {resolved.reason}"
        )
    return resolved.spec


def _fork_proposal(
    entry: StepEntry, spec: ActionSpec, params: Mapping[str, Any] | None
) -> Proposal:
    """The recorded step with the overrides merged over its parameters; an override
    named after an input of the action (and given a name) rebinds that input instead."""
    overrides = dict(params or {})
    inputs = dict(entry.inputs)
    for key in list(overrides):
        if key in spec.inputs and isinstance(overrides[key], str):
            inputs[key] = overrides.pop(key)
    return Proposal(
        entry.action,
        {**entry.params, **overrides},
        inputs,
        entry.targets,
        origin="fork",
    )


def _rerun_downstream(
    engine: Engine, run: Run, lineage: Lineage, seq: int, actions: RecordedActions
) -> list[StepResult]:
    """Re-propose the parent's later steps in order, at their recorded positions (so
    their seeds, and hence cache keys, match where their inputs are unchanged)."""
    later = lineage.steps_after(seq)
    recovered = {e.recovers for e in later if e.recovers}
    mapped: dict[str, str] = {}
    results = []
    for entry in later:
        if entry.status not in ("succeeded", "cached", "failed"):
            continue  # rejected and unfinished steps never ran; nothing to re-run
        recovers = mapped.get(entry.recovers) if entry.recovers else None
        run.next_seq = entry.seq
        result = engine.execute(
            run,
            Proposal(entry.action, entry.params, entry.inputs, entry.targets, origin="fork"),
            recovers=recovers,
            spec=_fork_action(actions, entry).spec,
        )
        results.append(result)
        if result.status == "rejected":
            break
        if result.status == "failed":
            mapped[entry.step_id] = result.step_id
            if entry.step_id not in recovered:
                break
    return results


def _adopt(ctx: ReplayContext, run: Run, keep_open: bool) -> None:
    """In a kernel the fork becomes the current run and its names enter the namespace;
    elsewhere it is closed (its index saved) unless the caller keeps it open."""
    if ctx.session is None:
        if not keep_open:
            ctx.engine.end_run(run)
        return
    ctx.session.runs[run.name] = run
    ctx.session.current = run
    for name, binding in run.bindings.items():
        try:
            ctx.session.namespace[name] = ctx.engine.value(binding)
        except ProposalRejected:
            continue  # recorded by hash only; the name stays unbound rather than None
