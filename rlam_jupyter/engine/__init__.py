"""The deterministic engine: runs accepted proposals under a policy and records every step.

Path of one step: check (schema, names) → policy → record ``accepted`` → cache lookup
→ pin seeds, execute, time → hash and store outputs → record ``succeeded`` /
``cached`` / ``failed``. Nothing executes that was not recorded first, and records
are never rewritten: each status change is a new journal record.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import time
import traceback as tb
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ulid import ULID

from rlam_jupyter.actions.default_registry import registry as default_registry
from rlam_jupyter.actions.identity import ActionIdentity
from rlam_jupyter.actions.proposal import (
    PENDING,
    CheckedProposal,
    Proposal,
    ProposalRejected,
    check,
)
from rlam_jupyter.actions.registry import ActionSpec, Registry
from rlam_jupyter.actions.source import action_record, capture
from rlam_jupyter.engine.executors import (
    Execution,
    Executor,
    LocalExecutor,
    Placement,
    StepCall,
)
from rlam_jupyter.engine.trace import CellInfo, StepError, StepResult
from rlam_jupyter.errors import StoreReadError, StoreWriteError
from rlam_jupyter.policy import Approver, Policy
from rlam_jupyter.store.cache import CacheEntry, StepCache
from rlam_jupyter.store.index.memory import RunIndex
from rlam_jupyter.store.index.model import ArtifactRef, StepEntry
from rlam_jupyter.store.journal import JournalWriter, now_us
from rlam_jupyter.store.liveness import HOST
from rlam_jupyter.store.objects import ObjectStore
from rlam_jupyter.store.resolve import StoreRef, resolve_store
from rlam_jupyter.store.schema import INTERRUPTED, USER_INTERRUPT
from rlam_jupyter.values.determinism import derive_seed
from rlam_jupyter.values.digest import digest_bytes
from rlam_jupyter.values.fingerprint import fingerprint
from rlam_jupyter.values.hashing import (
    PICKLE_KINDS,
    Canonical,
    canonical_json,
    canonicalize,
    digest_as,
    quick_fingerprint,
    restore,
)
from rlam_jupyter.values.preview import preview


@dataclass
class Binding:
    """An artifact bound to a name in a run: its hash, where its bytes are, its value."""

    name: str
    artifact_id: str
    step_id: str
    kind: str
    object_path: str | None
    value: Any = None
    loaded: bool = True
    fingerprint: str | None = None
    """``quick_fingerprint`` of ``value`` when it was last known to equal the recorded
    artifact: lets ``protect_inputs`` skip re-encoding an unchanged DataFrame."""


@dataclass
class Run:
    """Kernel-side state of one open run: only what the next steps need."""

    run_id: str
    name: str
    seed: int
    writer: JournalWriter
    notebook: str | None = None
    parent_run_id: str | None = None
    fork_seq: int | None = None
    next_seq: int = 1
    env_id: str = ""
    status: str = "open"
    bindings: dict[str, Binding] = field(default_factory=dict)
    results: list[StepResult] = field(default_factory=list)
    created_us: int = 0
    index: RunIndex | None = None
    """Compact record of this run's steps (what replay and fork read without the store)."""
    worker_envs: set[str] = field(default_factory=set)
    """Environments of executor workers already recorded for this run."""
    action_versions: set[str] = field(default_factory=set)
    """Action versions whose source this run has recorded (``actions`` table)."""

    @property
    def failed_steps(self) -> list[StepResult]:
        return [r for r in self.results if r.status in ("failed", INTERRUPTED)]

    @property
    def unrecovered_failures(self) -> list[StepResult]:
        """Failed steps that no successful recovery answers (directly or through a chain
        of recoveries that themselves failed and were recovered)."""
        answered: dict[str, list[StepResult]] = {}
        for result in self.results:
            if result.recovers:
                answered.setdefault(result.recovers, []).append(result)

        def recovered(step_id: str, depth: int = 0) -> bool:
            return depth < 100 and any(
                r.ok or (r.status == "failed" and recovered(r.step_id, depth + 1))
                for r in answered.get(step_id, [])
            )

        return [r for r in self.failed_steps if not recovered(r.step_id)]


class _BoundValues(Mapping[str, Any]):
    """The names bound in a run; a value is loaded from the object store only when
    a check needs it (a fork may see thousands of names and use two)."""

    def __init__(self, engine: Engine, bindings: Mapping[str, Binding]) -> None:
        self._engine = engine
        self._bindings = bindings

    def __getitem__(self, name: str) -> Any:
        return self._engine._value(self._bindings[name])

    def __contains__(self, name: object) -> bool:
        return name in self._bindings

    def __iter__(self) -> Iterator[str]:
        return iter(self._bindings)

    def __len__(self) -> int:
        return len(self._bindings)


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
        _end_runs_at_exit(self)

    def indexes(self) -> dict[str, RunIndex]:
        """In-memory step indexes of the runs this engine writes (see :mod:`run_index`)."""
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
        run_id = str(ULID())
        writer = JournalWriter(self.layout, run_id, self.writer_id)
        env = fingerprint()
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
        self.runs[run_id] = run
        writer.append(
            "environments",
            {
                "env_id": env.env_id,
                "run_id": run_id,
                "fingerprint": json.dumps(env.data),
                "recorded_at": now_us(),
            },
        )
        self._record_run(run)
        if parent_run_id is not None:
            writer.append(
                "edges",
                {
                    "run_id": run_id,
                    "src": run_id,
                    "dst": parent_run_id,
                    "type": "forked_from",
                    "role": str(fork_seq),
                },
            )
        return run

    def end_run(self, run: Run, status: str | None = None) -> None:
        """Close a run (``succeeded`` unless a failure was never recovered)."""
        if status is None:
            status = "failed" if run.unrecovered_failures else "succeeded"
        run.status = status
        self._record_run(run, ended=True)
        run.writer.close()
        # Closed runs move to Parquet (fast reads at scale); never fails the run's end.
        from rlam_jupyter.store.compaction import compact_ended_run

        compact_ended_run(self.layout, run.run_id)
        if run.index is not None:
            run.index.status = status
            # The index is a shortcut; readers rebuild it from the journal if it is missing.
            with contextlib.suppress(OSError):
                run.index.save(self.layout)

    def close(self) -> None:
        """End every run this engine still has open (as :meth:`end_run` decides their
        status). Idempotent, and never raises: it runs when the interpreter exits, and
        one run that cannot be ended must not keep the others open."""
        for run in list(self.runs.values()):
            if run.status == "open":
                with contextlib.suppress(Exception):
                    self.end_run(run)

    def _record_run(self, run: Run, ended: bool = False) -> None:
        run.writer.append(
            "runs",
            {
                "run_id": run.run_id,
                "name": run.name,
                "seed": run.seed,
                "parent_run_id": run.parent_run_id,
                "fork_seq": run.fork_seq,
                "notebook": run.notebook,
                "created_at": run.created_us,
                "env_id": run.env_id,
                "status": run.status,
                "ended_at": now_us() if ended else None,
                "host": HOST,
                "writer": run.writer.writer_id,
            },
        )

    # ------------------------------------------------------------ steps

    def precheck(self, run: Run, proposals: Sequence[Proposal]) -> None:
        """Check a whole cell before any of it runs; raises on the first bad proposal."""
        bound: dict[str, Any] = {
            name: b.value if b.loaded else PENDING for name, b in run.bindings.items()
        }
        for proposal in proposals:
            checked = check(proposal, self.registry, bound)
            refusal = self.policy.refusal(checked.spec.name)
            if refusal:
                raise ProposalRejected(
                    refusal, line=proposal.line, col=proposal.col, action=proposal.action
                )
            for target in proposal.targets:
                bound[target] = PENDING

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
        seq, step_id = self._next_step(run)
        error = StepError("ProposalRejected", rejection.message)
        self._record_step(
            run,
            step_id,
            seq,
            proposal,
            status="rejected",
            error=error,
            cell=cell,
            action=proposal.action,
            proposed_by=proposed_by,
        )
        if proposed_by:
            self._record_edge(run, step_id, proposed_by, "proposed_by")
        result = StepResult(
            run.run_id,
            step_id,
            seq,
            proposal.action,
            "rejected",
            error=error,
            source_text=proposal.source_text,
        )
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
    ) -> StepResult:
        """Check, record and (unless ``dry_run``) execute one proposal. Never raises for
        a rejection or a failure of the action: those are results, recorded.

        ``recovers`` names the failed step this one answers: its step id, or its
        number (``seq``) in this run. ``spec``: run this action instead of the registry's
        of the same name (a recorded ``python`` cell, an action rebuilt from its source)."""
        try:
            checked = check(proposal, self.registry, _BoundValues(self, run.bindings), spec)
            refusal = self.policy.refusal(checked.spec.name)
            if refusal:
                raise ProposalRejected(
                    refusal, line=proposal.line, col=proposal.col, action=proposal.action
                )
            if recovers is not None:
                recovers = self._recovery_target(run, recovers, proposal)
        except ProposalRejected as rejection:
            return self.reject(run, proposal, rejection, cell, proposed_by=proposed_by)
        spec = checked.spec
        if spec.requires_approval or self.policy.require_approval:
            decision_result = self._ask_approval(run, checked, cell, proposed_by)
            if isinstance(decision_result, StepResult):
                return decision_result
            checked = decision_result
        seq, step_id = self._next_step(run)
        seed = derive_seed(run.seed, seq)
        inputs = {pname: run.bindings[name] for pname, name in proposal.inputs.items()}
        notes = self.protect_inputs(inputs)
        input_ids = {pname: b.artifact_id for pname, b in inputs.items()}
        identity = spec.current_identity({type(b.value) for b in inputs.values()})
        self._record_action(run, spec, identity)
        cache_key: str | None = self._cache_key(
            spec, identity, checked.params_json, input_ids, seed
        )
        cacheable = spec.cache and spec.determinism != "external"
        if cacheable and identity.uncacheable:
            cacheable, cache_key = False, None  # a key blind to the code must never serve
            notes.append(f"not served from the cache and not cached: {identity.uncacheable}")
        common: dict[str, Any] = {
            "action_version": identity.version_id,
            "params": checked.params_json,
            "input_ids": input_ids,
            "seed": seed,
            "cache_key": cache_key,
            "cell": cell,
            "recovers": recovers,
            "proposed_by": proposed_by,
            "action": spec.name,
            "spec": spec,
            "encoded": {},
        }
        self._record_step(run, step_id, seq, proposal, status="accepted", **common)
        if recovers:
            self._record_edge(run, step_id, recovers, "recovers")
        if proposed_by:
            self._record_edge(run, step_id, proposed_by, "proposed_by")
        if dry_run:
            result = StepResult(
                run.run_id,
                step_id,
                seq,
                spec.name,
                "accepted",
                seed=seed,
                source_text=proposal.source_text,
                notes=("dry run: not executed",),
            )
            run.results.append(result)
            return result
        hit = self.cache.get(cache_key) if (use_cache and cacheable and cache_key) else None
        if hit is not None:
            cached = self._serve_cached(run, step_id, seq, proposal, hit, common)
            if cached is not None:
                run.results.append(cached)
                return cached
        started_us = now_us()
        t0 = time.perf_counter()
        try:
            execution = self.run_action(
                spec,
                checked.params.__dict__,
                {pname: b.value for pname, b in inputs.items()},
                seed,
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
            self._record_unfinished(
                run,
                (seq, step_id),
                proposal,
                interrupted,
                (started_us, t0),
                common,
                notes,
                status=INTERRUPTED,
            )
            raise
        except Exception as exc:
            error = StepError(type(exc).__qualname__, str(exc) or repr(exc), _short_traceback(exc))
            return self._record_unfinished(
                run, (seq, step_id), proposal, error, (started_us, t0), common, notes
            )
        duration = (time.perf_counter() - t0) * 1e3
        # The action ran: a store that refuses the records now must not cost the value.
        with run.writer.holding_failures():
            outputs, bindings, store_notes = self._store_outputs(
                run, step_id, proposal, spec, execution.outputs, input_ids, execution.canonicals
            )
            self._record_step(
                run,
                step_id,
                seq,
                proposal,
                status="succeeded",
                outputs=outputs,
                started_at=started_us,
                duration_ms=duration,
                placement=self._placed(run, execution.placement),
                artifacts={
                    b.artifact_id: ArtifactRef(b.artifact_id, b.kind, b.object_path)
                    for b in bindings
                },
                **common,
            )
        store_notes += run.writer.pending_notes() + self.objects.take_write_failures()
        for binding in bindings:
            run.bindings[binding.name] = binding
        if cacheable and cache_key and all(b.object_path for b in bindings):
            self.cache.put(
                cache_key,
                CacheEntry(
                    step_id,
                    {
                        name: (b.artifact_id, b.kind, b.object_path)
                        for name, b in zip(spec.outputs, bindings, strict=False)
                    },
                ),
            )
        result = StepResult(
            run.run_id,
            step_id,
            seq,
            spec.name,
            "succeeded",
            seed=seed,
            duration_ms=duration,
            outputs=outputs,
            values={name: b.value for name, b in zip(spec.outputs, bindings, strict=False)},
            recovers=recovers,
            source_text=proposal.source_text,
            notes=tuple(notes + store_notes),
        )
        run.results.append(result)
        return result

    def _record_unfinished(
        self,
        run: Run,
        step: tuple[int, str],
        proposal: Proposal,
        error: StepError,
        timing: tuple[int, float],
        common: Mapping[str, Any],
        notes: list[str],
        status: str = "failed",
    ) -> StepResult:
        """Record a step that ended without a result (failed, or interrupted) and return it.
        ``step`` is (seq, step id); ``timing`` (start in µs, perf_counter at start)."""
        seq, step_id = step
        started_us, t0 = timing
        duration = (time.perf_counter() - t0) * 1e3
        with run.writer.holding_failures():
            self._record_step(
                run,
                step_id,
                seq,
                proposal,
                status=status,
                error=error,
                started_at=started_us,
                duration_ms=duration,
                **common,
            )
        result = StepResult(
            run.run_id,
            step_id,
            seq,
            common["spec"].name,
            status,
            seed=common["seed"],
            duration_ms=duration,
            error=error,
            recovers=common["recovers"],
            source_text=proposal.source_text,
            notes=tuple(notes),
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
        """Record where an action version came from, the first time the run uses it, so
        the run can be re-executed where the notebook that defined it is not running."""
        if spec.cell_source is not None or identity.version_id in run.action_versions:
            return
        run.action_versions.add(identity.version_id)
        record = action_record(run.run_id, spec, identity, capture(spec, identity))
        record["recorded_at"] = now_us()
        run.writer.append("actions", record)

    def _placed(self, run: Run, placement: Placement) -> Placement | None:
        """Record the environment of a worker the first time a run uses it; None for the
        kernel itself (its host and environment are the run's)."""
        if placement.env_id is None:
            return None
        if placement.env_id != run.env_id and placement.env_id not in run.worker_envs:
            run.worker_envs.add(placement.env_id)
            run.writer.append(
                "environments",
                {
                    "env_id": placement.env_id,
                    "run_id": run.run_id,
                    "fingerprint": json.dumps(placement.env),
                    "recorded_at": now_us(),
                },
            )
        return placement

    # ------------------------------------------------------------ internals

    def _recovery_target(self, run: Run, ref: str, proposal: Proposal) -> str:
        """The step id of the failed (or rejected) step of ``run`` that ``ref`` names."""
        step_id = f"{run.run_id}-{int(ref):06d}" if ref.strip().isdigit() else ref.strip()
        entry = None
        if run.index is not None:
            entry = next((e for e in reversed(run.index.steps) if e.step_id == step_id), None)
        if entry is None or entry.status not in ("failed", "rejected", INTERRUPTED):
            failed = [
                r.step_id for r in run.results if r.status in ("failed", "rejected", INTERRUPTED)
            ]
            what = (
                f"step {step_id} {entry.status}" if entry else f"{ref!r} is not a step of this run"
            )
            hint = (
                f"Failed or rejected steps of run {run.name}: {', '.join(failed[-5:])}."
                if failed
                else f"Run {run.name} has no failed step to recover."
            )
            raise ProposalRejected(
                f"--recover {ref}: {what}; a recovery must answer a failed or rejected step",
                hint=hint,
                line=proposal.line,
                col=proposal.col,
                action=proposal.action,
            )
        return step_id

    def _next_step(self, run: Run) -> tuple[int, str]:
        seq = run.next_seq
        run.next_seq += 1
        return seq, f"{run.run_id}-{seq:06d}"

    def value(self, binding: Binding) -> Any:
        """A binding's value, loaded from the object store on first use (a fork's
        inherited names are loaded only when a step or the notebook needs them)."""
        return self._value(binding)

    def _value(self, binding: Binding) -> Any:
        if not binding.loaded:
            if binding.object_path is None:
                raise ProposalRejected(
                    f"artifact {binding.name!r} ({binding.artifact_id[:12]}) was recorded by hash "
                    "only and cannot be restored; re-run the step that produced it"
                )
            binding.value = self.objects.get(binding.object_path)
            binding.loaded = True
            binding.fingerprint = quick_fingerprint(binding.value)
        return binding.value

    def protect_inputs(self, inputs: Mapping[str, Binding]) -> list[str]:
        """Recorded inputs are snapshots: if a value was edited in place since it was
        recorded, hand the step the recorded bytes again instead of the edited object.
        Every path that runs an action on recorded inputs goes through here."""
        notes = []
        for _pname, binding in inputs.items():
            self._value(binding)
            if binding.object_path is None:
                continue
            quick = quick_fingerprint(binding.value)
            if quick is not None and quick == binding.fingerprint:
                continue  # unchanged since it was recorded or last verified
            if digest_as(binding.value, binding.kind) != binding.artifact_id:
                binding.value = self.objects.get(binding.object_path)
                quick = quick_fingerprint(binding.value)
                notes.append(
                    f"{binding.name!r} was modified in place after it was recorded; "
                    f"the step received the recorded value ({binding.artifact_id[:10]})"
                )
            binding.fingerprint = quick
        return notes

    @staticmethod
    def _cache_key(
        spec: ActionSpec,
        identity: ActionIdentity,
        params: Mapping[str, Any],
        inputs: Mapping[str, str],
        seed: int,
    ) -> str:
        material = {
            "action": identity.digest,
            "params": params,
            "inputs": dict(inputs),
            "seed": seed if spec.determinism == "seeded" else None,
        }
        return digest_bytes("cache-key", canonical_json(material))

    def _serve_cached(
        self,
        run: Run,
        step_id: str,
        seq: int,
        proposal: Proposal,
        hit: CacheEntry,
        common: dict[str, Any],
    ) -> StepResult | None:
        spec: ActionSpec = common["spec"]
        if set(hit.outputs) != set(spec.outputs) or any(
            path is None for _, _, path in hit.outputs.values()
        ):
            return None
        t0 = time.perf_counter()
        try:
            values = {name: self.objects.get(hit.outputs[name][2] or "") for name in spec.outputs}
        except StoreReadError:
            return None  # an object was removed since: run the step instead
        outputs = {name: hit.outputs[name][0] for name in spec.outputs}
        targets = proposal.targets or spec.outputs
        for target, name in zip(targets, spec.outputs, strict=False):
            artifact_id, kind, path = hit.outputs[name]
            run.bindings[target] = Binding(target, artifact_id, step_id, kind, path, values[name])
            self._record_edge(run, step_id, artifact_id, "generated", name)
        for pname, artifact_id in common["input_ids"].items():
            self._record_edge(run, step_id, artifact_id, "used", pname)
        duration = (time.perf_counter() - t0) * 1e3
        self._record_step(
            run,
            step_id,
            seq,
            proposal,
            status="cached",
            outputs=outputs,
            cached_from=hit.step_id,
            started_at=now_us(),
            duration_ms=duration,
            artifacts={
                artifact_id: ArtifactRef(artifact_id, kind, path)
                for artifact_id, kind, path in hit.outputs.values()
            },
            **common,
        )
        return StepResult(
            run.run_id,
            step_id,
            seq,
            spec.name,
            "cached",
            seed=common["seed"],
            duration_ms=duration,
            outputs=outputs,
            values=values,
            cached_from=hit.step_id,
            recovers=common["recovers"],
            source_text=proposal.source_text,
        )

    def _store_outputs(
        self,
        run: Run,
        step_id: str,
        proposal: Proposal,
        spec: ActionSpec,
        values: Mapping[str, Any],
        input_ids: Mapping[str, str],
        canonicals: Mapping[str, Canonical] | None = None,
    ) -> tuple[dict[str, str], list[Binding], list[str]]:
        outputs: dict[str, str] = {}
        bindings: list[Binding] = []
        notes: list[str] = []
        targets = proposal.targets or spec.outputs
        for target, name in zip(targets, spec.outputs, strict=False):
            value = values[name]
            canonical = (canonicals or {}).get(name) or canonicalize(value)
            path = self.objects.put(canonical)
            if canonical.note:
                notes.append(f"{name}: {canonical.note}")
            outputs[name] = canonical.digest
            run.writer.append(
                "artifacts", _artifact_record(run, step_id, name, value, canonical, path)
            )
            self._record_edge(run, step_id, canonical.digest, "generated", name)
            for input_id in input_ids.values():
                run.writer.append(
                    "edges",
                    {
                        "run_id": run.run_id,
                        "src": canonical.digest,
                        "dst": input_id,
                        "type": "derived_from",
                        "role": name,
                    },
                )
            snapshot = _snapshot(canonical, value)
            bindings.append(
                Binding(
                    target,
                    canonical.digest,
                    step_id,
                    canonical.kind,
                    path,
                    snapshot,
                    fingerprint=quick_fingerprint(snapshot),
                )
            )
        for pname, artifact_id in input_ids.items():
            self._record_edge(run, step_id, artifact_id, "used", pname)
        return outputs, bindings, notes

    def _record_edge(
        self, run: Run, step_id: str, target: str, kind: str, role: str | None = None
    ) -> None:
        """One typed edge from a step to an artifact (used/generated) or a step/call."""
        run.writer.append(
            "edges",
            {"run_id": run.run_id, "src": step_id, "dst": target, "type": kind, "role": role},
        )

    def _record_step(
        self,
        run: Run,
        step_id: str,
        seq: int,
        proposal: Proposal,
        *,
        status: str,
        action: str,
        spec: ActionSpec | None = None,
        action_version: str | None = None,
        params: Mapping[str, Any] | None = None,
        input_ids: Mapping[str, str] | None = None,
        outputs: Mapping[str, str] | None = None,
        error: StepError | None = None,
        seed: int | None = None,
        cache_key: str | None = None,
        cached_from: str | None = None,
        recovers: str | None = None,
        proposed_by: str | None = None,
        started_at: int | None = None,
        duration_ms: float | None = None,
        cell: CellInfo | None = None,
        artifacts: Mapping[str, ArtifactRef] | None = None,
        placement: Placement | None = None,
        encoded: dict[str, str] | None = None,
    ) -> None:
        """Append one status record of a step. ``encoded`` carries the JSON of the fields
        every record of the step shares, so a step's later records reuse it."""
        env_id = placement.env_id if placement is not None and placement.env_id else run.env_id
        params_json = params if params is not None else _jsonable(proposal.params)
        if encoded is None or not encoded:
            fields = {
                "params": json.dumps(params_json),
                "inputs": json.dumps(input_ids if input_ids is not None else dict(proposal.inputs)),
                "input_names": json.dumps(dict(proposal.inputs)),
                "targets": json.dumps(list(proposal.targets)),
                "source_text": proposal.source_text or proposal.as_source(),
            }
            if encoded is not None:
                encoded.update(fields)
            encoded = fields
        record = {
            "run_id": run.run_id,
            "step_id": step_id,
            "seq": seq,
            "action": action,
            "action_version": action_version,
            "determinism": spec.determinism if spec else None,
            "params": encoded["params"],
            "inputs": encoded["inputs"],
            "input_names": encoded["input_names"],
            "outputs": json.dumps(dict(outputs) if outputs else {}),
            "targets": encoded["targets"],
            "status": status,
            "error_type": error.type if error else None,
            "error_message": error.message if error else None,
            "traceback": error.traceback if error else None,
            "seed": seed,
            "cache_key": cache_key,
            "cached_from": cached_from,
            "recovers": recovers,
            "started_at": started_at,
            "duration_ms": duration_ms,
            "env_id": env_id,
            "origin": proposal.origin,
            "proposed_by": proposed_by,
            "cell_id": cell.cell_id if cell else None,
            "cell_execution_count": cell.execution_count if cell else None,
            "cell_source_hash": cell.source_hash if cell else None,
            "source_line": proposal.line,
            "source_text": encoded["source_text"],
            "host": placement.host if placement is not None else HOST,
            "executor": placement.executor if placement is not None else None,
            "recorded_at": now_us(),
        }
        run.writer.append("steps", record)
        if run.index is not None:
            run.index.upsert(
                StepEntry(
                    seq=seq,
                    step_id=step_id,
                    action=action,
                    status=status,
                    params=dict(params_json),
                    inputs=dict(proposal.inputs),
                    input_ids=dict(input_ids or {}),
                    targets=tuple(proposal.targets),
                    outputs=dict(outputs or {}),
                    seed=seed,
                    determinism=spec.determinism if spec else None,
                    action_version=action_version,
                    error_type=error.type if error else None,
                    error_message=error.message if error else None,
                    cached_from=cached_from,
                    recovers=recovers,
                    env_id=env_id,
                    source_text=encoded["source_text"],
                ),
                artifacts or {},
            )

    def _ask_approval(
        self,
        run: Run,
        checked: CheckedProposal,
        cell: CellInfo | None,
        proposed_by: str | None = None,
    ) -> CheckedProposal | StepResult:
        proposal = checked.proposal
        if self.approver is None:
            return self.reject(
                run,
                proposal,
                ProposalRejected(
                    f"{checked.spec.name} requires approval, but nobody can approve in this "
                    "non-interactive session",
                    hint="Run the notebook interactively, or approve with a policy "
                    "(`%rlam config approval=off`) if you accept the risk.",
                    line=proposal.line,
                    col=proposal.col,
                    action=proposal.action,
                ),
                cell,
                proposed_by=proposed_by,
            )
        decision = self.approver(checked)
        seq_hint = run.next_seq
        run.writer.append(
            "approvals",
            {
                "run_id": run.run_id,
                "step_id": f"{run.run_id}-{seq_hint:06d}",
                "decision": "approved" if decision.approved else "rejected",
                "reason": decision.reason,
                "edited_params": json.dumps(decision.edited_params)
                if decision.edited_params
                else None,
                "decided_by": decision.decided_by,
                "decided_at": now_us(),
            },
        )
        if not decision.approved:
            return self.reject(
                run,
                proposal,
                ProposalRejected(
                    f"rejected by {decision.decided_by}: {decision.reason or 'no reason given'}",
                    line=proposal.line,
                    col=proposal.col,
                    action=proposal.action,
                ),
                cell,
                proposed_by=proposed_by,
            )
        if decision.edited_params:
            edited = Proposal(
                proposal.action,
                {**proposal.params, **decision.edited_params},
                proposal.inputs,
                proposal.targets,
                proposal.origin,
                proposal.line,
                proposal.col,
                proposal.source_text,
            )
            try:
                return check(edited, self.registry, _BoundValues(self, run.bindings), checked.spec)
            except ProposalRejected as rejection:
                return self.reject(run, edited, rejection, cell, proposed_by=proposed_by)
        return checked


_ENGINES: weakref.WeakSet[Engine] = weakref.WeakSet()


def _end_runs_at_exit(engine: Engine) -> None:
    """Close ``engine`` when the interpreter exits: a kernel shut down cleanly (or a
    notebook run by nbconvert/papermill) leaves its runs ``succeeded``/``failed``, not
    ``open``. Engines are held weakly: one dropped earlier is not kept alive for this."""
    if not _ENGINES:
        atexit.unregister(_close_engines)  # registered once, however many engines come
        atexit.register(_close_engines)
    _ENGINES.add(engine)


def _close_engines() -> None:
    for engine in list(_ENGINES):
        with contextlib.suppress(Exception):
            engine.close()


def _snapshot(canonical: Canonical, value: Any) -> Any:
    """What downstream steps get: the recorded snapshot, not the live object — the same
    bytes (and memory layout) a cache hit or a replay would hand them.

    scikit-learn estimators are the exception: their pickle round trip is faithful by
    design (same state, same array layout), so the live object is handed on and the
    restore (milliseconds for a forest) is skipped. An in-place edit is still caught,
    because ``protect_inputs`` re-hashes an input before each use.
    """
    if not canonical.restorable:
        return value
    if canonical.kind in PICKLE_KINDS and type(value).__module__.startswith("sklearn."):
        return value
    return restore(canonical.kind, canonical.payload)


def _artifact_record(
    run: Run, step_id: str, name: str, value: Any, canonical: Canonical, path: str | None
) -> dict[str, Any]:
    return {
        "artifact_id": canonical.digest,
        "run_id": run.run_id,
        "step_id": step_id,
        "name": name,
        "kind": canonical.kind,
        "python_type": f"{type(value).__module__}.{type(value).__qualname__}",
        "size_bytes": canonical.size,
        "preview": preview(value),
        "object_path": path,
        "restorable": canonical.restorable,
        "note": canonical.note or None,
    }


def _short_traceback(exc: BaseException) -> str:
    """The traceback from the action's own frames on (engine frames dropped)."""
    frames = tb.extract_tb(exc.__traceback__)
    own = [
        f
        for f in frames
        if "rlam_jupyter/engine.py" not in f.filename.replace("\\", "/")
        and "rlam_jupyter/policy.py" not in f.filename.replace("\\", "/")
    ]
    lines = tb.format_list(own) + tb.format_exception_only(type(exc), exc)
    return "".join(lines)


def _jsonable(params: Mapping[str, Any]) -> Any:
    try:
        json.dumps(params)
    except (TypeError, ValueError):
        return {k: repr(v) for k, v in params.items()}
    return dict(params)


__all__ = ["Binding", "Engine", "Run", "StoreWriteError"]
