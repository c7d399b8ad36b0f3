"""The deterministic engine: runs accepted proposals under a policy and records every step.

Path of one step: check (schema, names) → policy → record ``accepted`` → cache lookup
→ pin seeds, execute, time → hash and store outputs → record ``succeeded`` /
``cached`` / ``failed``. Nothing executes that was not recorded first, and records
are never rewritten: each status change is a new journal record.
"""

from __future__ import annotations

import contextlib
import time
import traceback as tb
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ulid import ULID

from rlam_jupyter.actions.default_registry import registry as default_registry
from rlam_jupyter.actions.identity import ActionIdentity
from rlam_jupyter.actions.proposal import CheckedProposal, Proposal, ProposalRejected
from rlam_jupyter.actions.registry import ActionSpec, Registry
from rlam_jupyter.engine.cache_keys import CachePlan, plan_cache, remember, serve_cached
from rlam_jupyter.engine.executors import Execution, Executor, LocalExecutor, StepCall
from rlam_jupyter.engine.gate import Refusal, admit, ask_approval, precheck, recovery_target
from rlam_jupyter.engine.outputs import load_value, protect_inputs, store_outputs
from rlam_jupyter.engine.recorder import (
    StepFacts,
    StepOutcome,
    record_action,
    record_edge,
    record_placement,
    record_step,
    record_unfinished,
)
from rlam_jupyter.engine.run_state import Binding, BoundValues, Run
from rlam_jupyter.engine.runs import (
    close_at_exit,
    close_journal,
    compact_at_run_end,
    new_run,
    record_start,
    save_index,
)
from rlam_jupyter.engine.trace import CellInfo, StepError, StepResult
from rlam_jupyter.policy import Approver, Policy
from rlam_jupyter.store.cache import StepCache
from rlam_jupyter.store.index.memory import RunIndex
from rlam_jupyter.store.index.model import ArtifactRef
from rlam_jupyter.store.journal import now_us
from rlam_jupyter.store.objects import ObjectStore
from rlam_jupyter.store.resolve import StoreRef, resolve_store
from rlam_jupyter.store.schema import INTERRUPTED, USER_INTERRUPT
from rlam_jupyter.values.determinism import derive_seed
from rlam_jupyter.values.fingerprint import fingerprint

RunEndHook = Callable[["Engine", Run], None]
"""Called with the engine and a run that has ended (see :attr:`Engine.on_run_end`)."""


@dataclass(frozen=True)
class _Accepted:
    """A step recorded ``accepted``, with what running it needs."""

    inputs: Mapping[str, Binding]
    """Parameter name → its input, protected: the recorded value, not an edited object."""
    facts: StepFacts
    """What its records share (its run, number, id, params, input ids, seed)."""
    checked: CheckedProposal
    """The proposal as checked (and approved): the params the body gets."""
    seed: int
    cache: CachePlan
    notes: list[str]
    """For the step's result: inputs handed back as recorded, a cache refused."""


class Engine:
    """Executes proposals for runs in one store. One engine per kernel is the usual shape."""

    def __init__(
        self,
        store: StoreRef = None,
        *,
        registry: Registry | None = None,
        policy: Policy | None = None,
        approver: Approver | None = None,
    ) -> None:
        self.layout = resolve_store(store)
        self.objects = ObjectStore(self.layout)
        self.registry = registry if registry is not None else default_registry()
        self.policy = policy or Policy()
        self.approver = approver
        self.writer_id = str(ULID())
        self.cache = StepCache(self.layout, self.writer_id)
        self.executor: Executor = LocalExecutor()
        """Where action bodies run (``local``, or a Dask cluster: see :mod:`executors`)."""
        self.executions = 0
        """How many action bodies this engine actually ran (cache hits do not count)."""
        self.runs: dict[str, Run] = {}
        """Runs this engine started, by id: their indexes are current in memory."""
        self.on_run_end: list[RunEndHook] = [compact_at_run_end]
        """Called in order by :meth:`end_run` once a run's journal is closed, before its
        index is saved (so the index's stamp covers what a hook moved or removed)."""
        close_at_exit(self)

    def indexes(self) -> dict[str, RunIndex]:
        """In-memory step indexes of the runs this engine writes (see
        :mod:`rlam_jupyter.store.index.memory`)."""
        return {run_id: run.index for run_id, run in self.runs.items() if run.index is not None}

    # ------------------------------------------------------------ runs

    def start_run(
        self,
        name: str | None = None,
        seed: int = 0,
        *,
        notebook: str | None = None,
        parent_run_id: str | None = None,
        fork_seq: int | None = None,
    ) -> Run:
        env = fingerprint()
        run = new_run(
            self.layout,
            self.writer_id,
            env,
            name,
            seed,
            notebook=notebook,
            parent_run_id=parent_run_id,
            fork_seq=fork_seq,
        )
        self.runs[run.run_id] = run
        record_start(run, env)
        return run

    def end_run(self, run: Run, status: str | None = None) -> None:
        """Close a run (``succeeded`` unless a failure was never recovered): its end
        recorded and its journal closed, the :attr:`on_run_end` hooks run, its index saved."""
        close_journal(run, status)
        for hook in self.on_run_end:
            hook(self, run)
        save_index(self.layout, run)

    def close(self) -> None:
        """End every run this engine still has open (as :meth:`end_run` decides their
        status). Idempotent, and never raises: it runs when the interpreter exits, and
        one run that cannot be ended must not keep the others open."""
        for run in list(self.runs.values()):
            if run.status == "open":
                with contextlib.suppress(Exception):
                    self.end_run(run)

    # ------------------------------------------------------------ steps

    def precheck(self, run: Run, proposals: Sequence[Proposal]) -> None:
        """Check a whole cell before any of it runs; raises on the first bad proposal."""
        precheck(self.registry, self.policy, run, proposals)

    def reject(
        self,
        run: Run,
        proposal: Proposal,
        rejection: ProposalRejected,
        cell: CellInfo | None = None,
        *,
        proposed_by: str | None = None,
    ) -> StepResult:
        """Record a proposal that will not run, with the reason (and the LLM call that
        proposed it, so a refused tool call stays linked to its request)."""
        seq, step_id = run.take_step()
        error = StepError("ProposalRejected", rejection.message)
        facts = StepFacts(
            run, seq, step_id, proposal, proposal.action, cell=cell, proposed_by=proposed_by
        )
        record_step(facts, StepOutcome("rejected", error=error))
        if proposed_by:
            record_edge(run, step_id, proposed_by, "proposed_by")
        result = facts.result("rejected", error=error)
        run.results.append(result)
        return result

    def execute(
        self,
        run: Run,
        proposal: Proposal,
        *,
        cell: CellInfo | None = None,
        use_cache: bool = True,
        dry_run: bool = False,
        recovers: str | None = None,
        proposed_by: str | None = None,
        spec: ActionSpec | None = None,
        approver: Approver | None = None,
    ) -> StepResult:
        """Check, record and (unless ``dry_run``) execute one proposal. Never raises for
        a rejection or a failure of the action: those are results, recorded.

        ``approver`` decides this proposal instead of the engine's own approver (a front
        end that asks its own person, such as an MCP client's).

        ``recovers`` names the failed step this one answers: its step id, or its
        number (``seq``) in this run. ``spec``: run this action instead of the registry's
        of the same name (a recorded ``python`` cell, an action rebuilt from its source)."""
        admitted = self._admit(run, proposal, spec, recovers, cell, proposed_by, approver)
        if isinstance(admitted, StepResult):
            return admitted
        checked, recovers = admitted
        accepted = self._accept(run, proposal, checked, cell, recovers, proposed_by)
        if dry_run:
            notes = ("dry run: not executed",)
            result = accepted.facts.result("accepted", recovers=None, notes=notes)
            run.results.append(result)
            return result
        plan = accepted.cache
        hit = self.cache.get(plan.key) if (use_cache and plan.cacheable and plan.key) else None
        if hit is not None:
            cached = serve_cached(self.objects, accepted.facts, checked.spec, hit)
            if cached is not None:
                run.results.append(cached)
                return cached
        return self._run(accepted)

    def _admit(
        self,
        run: Run,
        proposal: Proposal,
        spec: ActionSpec | None,
        recovers: str | None,
        cell: CellInfo | None,
        proposed_by: str | None,
        approver: Approver | None = None,
    ) -> tuple[CheckedProposal, str | None] | StepResult:
        """The gate: the proposal checked and approved, with the step id it recovers;
        or its rejection, recorded."""
        bound = self.bound_values(run)
        try:
            checked = admit(self.registry, self.policy, proposal, bound, spec)
            if recovers is not None:
                recovers = recovery_target(run, recovers, proposal)
        except ProposalRejected as rejection:
            return self.reject(run, proposal, rejection, cell, proposed_by=proposed_by)
        if self.policy.needs_approval(checked.spec):
            decide = approver if approver is not None else self.approver
            approved = ask_approval(decide, self.registry, run, checked, bound)
            if isinstance(approved, Refusal):
                refused, why = approved.proposal, approved.rejection
                return self.reject(run, refused, why, cell, proposed_by=proposed_by)
            checked = approved
        return checked, recovers

    def _accept(
        self,
        run: Run,
        proposal: Proposal,
        checked: CheckedProposal,
        cell: CellInfo | None,
        recovers: str | None,
        proposed_by: str | None,
    ) -> _Accepted:
        """Number the step, pin its seed, protect its inputs, and record it ``accepted``
        (with the source of its action, the first time the run uses that version)."""
        spec = checked.spec
        seq, step_id = run.take_step()
        seed = derive_seed(run.seed, seq)
        inputs = {pname: run.bindings[name] for pname, name in proposal.inputs.items()}
        notes = self.protect_inputs(inputs)
        input_ids = {pname: b.artifact_id for pname, b in inputs.items()}
        identity = spec.current_identity({type(b.value) for b in inputs.values()})
        self._record_action(run, spec, identity)
        plan = plan_cache(spec, identity, checked.params_json, input_ids, seed)
        if plan.note:
            notes.append(plan.note)
        facts = StepFacts(
            run,
            seq,
            step_id,
            proposal,
            spec.name,
            spec,
            action_version=identity.version_id,
            params=checked.params_json,
            input_ids=input_ids,
            seed=seed,
            cache_key=plan.key,
            cell=cell,
            recovers=recovers,
            proposed_by=proposed_by,
        )
        record_step(facts, StepOutcome("accepted"))
        if recovers:
            record_edge(run, step_id, recovers, "recovers")
        if proposed_by:
            record_edge(run, step_id, proposed_by, "proposed_by")
        return _Accepted(inputs, facts, checked, seed, plan, notes)

    def _run(self, accepted: _Accepted) -> StepResult:
        """Run an accepted step's action body and record how it ended."""
        facts, inputs = accepted.facts, accepted.inputs
        started_us = now_us()
        t0 = time.perf_counter()
        try:
            execution = self.run_action(
                accepted.checked.spec,
                accepted.checked.params.__dict__,
                {pname: b.value for pname, b in inputs.items()},
                accepted.seed,
                {pname: b.object_path for pname, b in inputs.items()},
            )
        except KeyboardInterrupt as exc:
            # Ctrl-C / the kernel's interrupt: the step ends without a result, and says so
            interrupted = StepError(
                USER_INTERRUPT,
                "interrupted before it finished (Ctrl-C or the kernel's interrupt); "
                "nothing it computed was kept",
                _short_traceback(exc),
            )
            timing = (started_us, t0)
            record_unfinished(facts, interrupted, timing, accepted.notes, status=INTERRUPTED)
            raise
        except Exception as exc:
            error = StepError(type(exc).__qualname__, str(exc) or repr(exc), _short_traceback(exc))
            return record_unfinished(facts, error, (started_us, t0), accepted.notes)
        duration = (time.perf_counter() - t0) * 1e3
        return self._record_success(accepted, execution, started_us, duration)

    def _record_success(
        self, accepted: _Accepted, execution: Execution, started_us: int, duration: float
    ) -> StepResult:
        """Store and record a step's outputs, bind them, cache them; its result."""
        facts, spec = accepted.facts, accepted.checked.spec
        run = facts.run
        # The action ran: a store that refuses the records now must not cost the value.
        with run.writer.holding_failures():
            outputs, bindings, store_notes = store_outputs(
                self.objects, facts, spec, execution.outputs, execution.canonicals
            )
            outcome = StepOutcome(
                "succeeded",
                outputs=outputs,
                started_at=started_us,
                duration_ms=duration,
                placement=record_placement(run, execution.placement),
                artifacts={
                    b.artifact_id: ArtifactRef(b.artifact_id, b.kind, b.object_path)
                    for b in bindings
                },
            )
            record_step(facts, outcome)
        store_notes += run.writer.pending_notes() + self.objects.take_write_failures()
        for binding in bindings:
            run.bindings[binding.name] = binding
        remember(self.cache, accepted.cache, facts.step_id, spec, bindings)
        result = facts.result(
            "succeeded",
            duration_ms=duration,
            outputs=outputs,
            values={name: b.value for name, b in zip(spec.outputs, bindings, strict=False)},
            notes=tuple(accepted.notes + store_notes),
        )
        run.results.append(result)
        return result

    def execute_all(
        self,
        run: Run,
        proposals: Iterable[Proposal],
        *,
        cell: CellInfo | None = None,
        use_cache: bool = True,
        dry_run: bool = False,
    ) -> list[StepResult]:
        """Run proposals in order, stopping at the first rejection or failure."""
        results = []
        for proposal in proposals:
            result = self.execute(run, proposal, cell=cell, use_cache=use_cache, dry_run=dry_run)
            results.append(result)
            if result.status in ("failed", "rejected"):
                break
        return results

    def invoke(
        self, spec: ActionSpec, params: Mapping[str, Any], inputs: Mapping[str, Any], seed: int
    ) -> dict[str, Any]:
        """Run an action body as a step runs it (seeds pinned, ``rng`` handed over, the
        policy's timeout); replay's verification re-executes through here too."""
        return dict(self.run_action(spec, params, inputs, seed).outputs)

    def run_action(
        self,
        spec: ActionSpec,
        params: Mapping[str, Any],
        inputs: Mapping[str, Any],
        seed: int,
        input_paths: Mapping[str, str | None] | None = None,
    ) -> Execution:
        """The executor seam: hand the body to ``self.executor`` (this process, or a Dask
        worker that pins the same seed) and get its outputs and where it ran. Checking,
        seeds, recording and the trace stay here, in the kernel; a worker only hashes what
        it returns (a pickle round trip can change an estimator's bytes, not its state)."""
        self.executions += 1
        call = StepCall(
            spec, params, inputs, seed, self.policy.timeout_s, input_paths or {}, self.layout.root
        )
        return self.executor.run(call)

    def _record_action(self, run: Run, spec: ActionSpec, identity: ActionIdentity) -> None:
        """Record the source of an action version (see :func:`recorder.record_action`)."""
        record_action(run, spec, identity)

    # ------------------------------------------------------------ values

    def value(self, binding: Binding) -> Any:
        """A binding's value, loaded from the object store on first use (a fork's
        inherited names are loaded only when a step or the notebook needs them)."""
        return load_value(self.objects, binding)

    def bound_values(self, run: Run) -> BoundValues:
        """The names bound in ``run``, as the schema check reads them (loaded on use)."""
        return BoundValues(run.bindings, self.value)

    def protect_inputs(self, inputs: Mapping[str, Binding]) -> list[str]:
        """Recorded inputs are snapshots: if a value was edited in place since it was
        recorded, hand the step the recorded bytes again instead of the edited object.
        Every path that runs an action on recorded inputs goes through here."""
        return protect_inputs(self.objects, inputs)


_MACHINERY = (Path(__file__).resolve().parent, Path(__file__).resolve().parent.parent / "policy.py")
"""Where the engine's own frames come from (this package and the policy it applies)."""


def _short_traceback(exc: BaseException) -> str:
    """The traceback from the action's own frames on (the engine's frames dropped)."""
    own = [f for f in tb.extract_tb(exc.__traceback__) if not _is_machinery(f.filename)]
    lines = tb.format_list(own) + tb.format_exception_only(type(exc), exc)
    return "".join(lines)


def _is_machinery(filename: str) -> bool:
    path = Path(filename).resolve()
    return any(path == place or place in path.parents for place in _MACHINERY)
