"""Which steps of a cell can start before the ones above them finish.

A ``%%rlam`` cell is a sequence of steps, recorded one by one in order. A step whose
inputs were all bound before the cell began (none is a target of an earlier statement
of the cell) does not wait for anything above it, so an executor that can run steps
in parallel (Dask) may start it ahead. Only steps that are safe to start early are:
``pure`` or ``seeded`` actions (no side effects), no approval required, not already
in the cache, params that pass the check. The engine still records each step in
order and claims its prefetched task when it gets there; a task no step claims (the
cell stopped at a failure) is cancelled, and its result is never recorded.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

from rlam_jupyter.actions.proposal import Proposal, ProposalRejected, check
from rlam_jupyter.engine.cache_keys import plan_cache
from rlam_jupyter.engine.engine import Engine
from rlam_jupyter.engine.executors import DaskExecutor, Executor, StepCall, executor_for
from rlam_jupyter.engine.run_state import Run
from rlam_jupyter.values.determinism import derive_seed

_executors: dict[str, Executor] = {}
"""Executors named by ``--executor`` on a cell, kept open for the next cells."""


def independent_calls(
    engine: Engine, run: Run, proposals: Sequence[Proposal], use_cache: bool = True
) -> list[StepCall]:
    """The calls of the steps that can start now, with the seeds they will get."""
    calls: list[StepCall] = []
    produced: set[str] = set()
    for offset, proposal in enumerate(proposals):
        waits = any(name in produced for name in proposal.inputs.values())
        produced.update(proposal.targets)
        if waits or any(name not in run.bindings for name in proposal.inputs.values()):
            continue
        spec = engine.registry.get(proposal.action)
        if spec is None or spec.determinism == "external" or engine.policy.needs_approval(spec):
            continue
        if engine.policy.refusal(spec.name):
            continue
        try:
            checked = check(proposal, engine.registry, engine.bound_values(run))
        except ProposalRejected:
            continue
        seed = derive_seed(run.seed, run.next_seq + offset)
        bindings = {pname: run.bindings[name] for pname, name in proposal.inputs.items()}
        values = {pname: engine.value(b) for pname, b in bindings.items()}
        if use_cache and spec.cache:
            identity = spec.current_identity({type(v) for v in values.values()})
            input_ids = {p: b.artifact_id for p, b in bindings.items()}
            plan = plan_cache(spec, identity, checked.params_json, input_ids, seed)
            if plan.key is not None and engine.cache.get(plan.key) is not None:
                continue
        calls.append(
            StepCall(
                spec,
                checked.params.__dict__,
                values,
                seed,
                engine.policy.timeout_s,
                {pname: b.object_path for pname, b in bindings.items()},
                engine.layout.root,
            )
        )
    return calls


def close_executors() -> None:
    """Disconnect the executors cells opened (before their cluster goes away)."""
    for executor in set(_executors.values()):
        executor.close()
    _executors.clear()


@contextlib.contextmanager
def running_on(
    engine: Engine,
    executor: str | None,
    run: Run,
    proposals: Sequence[Proposal],
    use_cache: bool = True,
) -> Iterator[Executor]:
    """Run a cell's steps on ``executor`` (the engine's own when None), starting the
    independent ones ahead when the executor runs tasks in parallel."""
    chosen = engine.executor
    if executor is not None and executor.strip() != chosen.name:
        chosen = _executors.get(executor.strip()) or executor_for(executor)
        _executors[chosen.name] = _executors[executor.strip()] = chosen
    previous, engine.executor = engine.executor, chosen
    try:
        if isinstance(chosen, DaskExecutor):
            calls = independent_calls(engine, run, proposals, use_cache)
            if len(calls) > 1:
                chosen.prefetch(calls)
        yield chosen
    finally:
        if isinstance(chosen, DaskExecutor):
            chosen.discard_prefetched()
        engine.executor = previous
