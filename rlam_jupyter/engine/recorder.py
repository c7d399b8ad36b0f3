"""The recorder: the only code in the engine that builds trace rows.

Step records (every status change of a step is a new one), run records, environments,
artifacts, edges, action sources and approvals, in the columns of
:mod:`rlam_jupyter.store.schema`, appended to the run's journal. A step's record also
updates the run's in-memory index, so replay and fork can read the run without the store.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rlam_jupyter.actions.identity import ActionIdentity
from rlam_jupyter.actions.proposal import Proposal
from rlam_jupyter.actions.registry import ActionSpec
from rlam_jupyter.actions.source import action_record, capture
from rlam_jupyter.engine.executors import Placement
from rlam_jupyter.engine.run_state import Run
from rlam_jupyter.engine.trace import CellInfo, StepError, StepResult
from rlam_jupyter.policy import Decision
from rlam_jupyter.store.index.model import ArtifactRef, StepEntry
from rlam_jupyter.store.journal import now_us
from rlam_jupyter.store.liveness import HOST
from rlam_jupyter.values.hashing import Canonical
from rlam_jupyter.values.preview import preview


@dataclass(frozen=True)
class StepFacts:
    """What every record of one step says alike, whatever its status.

    A rejected step knows only its proposal (``spec`` and the rest stay None); an
    accepted one knows its action version, canonical params, input artifacts and seed."""

    run: Run
    seq: int
    """The step's number in its run."""
    step_id: str
    proposal: Proposal
    """As proposed (an approver's edits are in ``params``)."""
    action: str
    spec: ActionSpec | None = None
    action_version: str | None = None
    params: Mapping[str, Any] | None = None
    """Canonical params (JSON); None: the proposal's own, as JSON can hold them."""
    input_ids: Mapping[str, str] | None = None
    """Parameter name → input artifact id; None: the proposal's input names."""
    seed: int | None = None
    cache_key: str | None = None
    cell: CellInfo | None = None
    recovers: str | None = None
    proposed_by: str | None = None
    encoded: dict[str, str] = field(default_factory=dict, compare=False)
    """The JSON of the fields every record of the step shares, encoded once by the
    first record, so the step's later records reuse it."""

    def result(self, status: str, **fields: Any) -> StepResult:
        """What the engine returns for this step; ``fields`` as :class:`StepResult`'s."""
        shared: dict[str, Any] = {
            "seed": self.seed,
            "recovers": self.recovers,
            "source_text": self.proposal.source_text,
        }
        return StepResult(
            self.run.run_id, self.step_id, self.seq, self.action, status, **{**shared, **fields}
        )


@dataclass(frozen=True)
class StepOutcome:
    """What one status record of a step adds to its :class:`StepFacts`."""

    status: str
    outputs: Mapping[str, str] | None = None
    error: StepError | None = None
    cached_from: str | None = None
    started_at: int | None = None
    duration_ms: float | None = None
    artifacts: Mapping[str, ArtifactRef] | None = None
    placement: Placement | None = None
    """Where the body ran, when not in the kernel (host, executor, worker environment)."""


def record_step(facts: StepFacts, outcome: StepOutcome) -> None:
    """Append one status record of a step and bring the run's index up to date."""
    run = facts.run
    placement = outcome.placement
    env_id = placement.env_id if placement is not None and placement.env_id else run.env_id
    params = facts.params if facts.params is not None else jsonable(facts.proposal.params)
    encoded = _shared_fields(facts, params)
    run.writer.append("steps", _step_row(facts, outcome, encoded, env_id))
    if run.index is not None:
        run.index.upsert(
            _index_entry(facts, outcome, params, encoded["source_text"], env_id),
            outcome.artifacts or {},
        )


def _shared_fields(facts: StepFacts, params: Any) -> dict[str, str]:
    if not facts.encoded:
        proposal = facts.proposal
        inputs = facts.input_ids if facts.input_ids is not None else dict(proposal.inputs)
        facts.encoded.update(
            {
                "params": json.dumps(params),
                "inputs": json.dumps(inputs),
                "input_names": json.dumps(dict(proposal.inputs)),
                "targets": json.dumps(list(proposal.targets)),
                "source_text": proposal.source_text or proposal.as_source(),
            }
        )
    return facts.encoded


def _step_row(
    facts: StepFacts, outcome: StepOutcome, encoded: Mapping[str, str], env_id: str
) -> dict[str, Any]:
    error, cell, placement = outcome.error, facts.cell, outcome.placement
    return {
        "run_id": facts.run.run_id,
        "step_id": facts.step_id,
        "seq": facts.seq,
        "action": facts.action,
        "action_version": facts.action_version,
        "determinism": facts.spec.determinism if facts.spec else None,
        "params": encoded["params"],
        "inputs": encoded["inputs"],
        "input_names": encoded["input_names"],
        "outputs": json.dumps(dict(outcome.outputs) if outcome.outputs else {}),
        "targets": encoded["targets"],
        "status": outcome.status,
        "error_type": error.type if error else None,
        "error_message": error.message if error else None,
        "traceback": error.traceback if error else None,
        "seed": facts.seed,
        "cache_key": facts.cache_key,
        "cached_from": outcome.cached_from,
        "recovers": facts.recovers,
        "started_at": outcome.started_at,
        "duration_ms": outcome.duration_ms,
        "env_id": env_id,
        "origin": facts.proposal.origin,
        "proposed_by": facts.proposed_by,
        "cell_id": cell.cell_id if cell else None,
        "cell_execution_count": cell.execution_count if cell else None,
        "cell_source_hash": cell.source_hash if cell else None,
        "source_line": facts.proposal.line,
        "source_text": encoded["source_text"],
        "host": placement.host if placement is not None else HOST,
        "executor": placement.executor if placement is not None else None,
        "recorded_at": now_us(),
    }


def _index_entry(
    facts: StepFacts, outcome: StepOutcome, params: Any, source_text: str, env_id: str
) -> StepEntry:
    error, proposal = outcome.error, facts.proposal
    return StepEntry(
        seq=facts.seq,
        step_id=facts.step_id,
        action=facts.action,
        status=outcome.status,
        params=dict(params),
        inputs=dict(proposal.inputs),
        input_ids=dict(facts.input_ids or {}),
        targets=tuple(proposal.targets),
        outputs=dict(outcome.outputs or {}),
        seed=facts.seed,
        determinism=facts.spec.determinism if facts.spec else None,
        action_version=facts.action_version,
        error_type=error.type if error else None,
        error_message=error.message if error else None,
        cached_from=outcome.cached_from,
        recovers=facts.recovers,
        env_id=env_id,
        source_text=source_text,
    )


def record_unfinished(
    facts: StepFacts,
    error: StepError,
    timing: tuple[int, float],
    notes: list[str],
    status: str = "failed",
) -> StepResult:
    """Record a step that ended without a result (failed, or interrupted), add it to the
    run's results and return it. ``timing``: (start in µs, perf_counter at start)."""
    started_us, t0 = timing
    duration = (time.perf_counter() - t0) * 1e3
    with facts.run.writer.holding_failures():
        record_step(
            facts, StepOutcome(status, error=error, started_at=started_us, duration_ms=duration)
        )
    result = facts.result(status, duration_ms=duration, error=error, notes=tuple(notes))
    facts.run.results.append(result)
    return result


def record_run(run: Run, ended: bool = False) -> None:
    """The run's state now (a new record at its start and at its end)."""
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


def record_environment(run: Run, env_id: str, data: Mapping[str, Any] | None) -> None:
    """An environment fingerprint the run's steps ran in (the kernel's, or a worker's)."""
    run.writer.append(
        "environments",
        {
            "env_id": env_id,
            "run_id": run.run_id,
            "fingerprint": json.dumps(data),
            "recorded_at": now_us(),
        },
    )


def record_placement(run: Run, placement: Placement) -> Placement | None:
    """Where a step ran, for its record: None for the kernel itself (its host and
    environment are the run's); a worker's environment is recorded the first time the
    run uses it."""
    if placement.env_id is None:
        return None
    if placement.env_id != run.env_id and placement.env_id not in run.worker_envs:
        run.worker_envs.add(placement.env_id)
        record_environment(run, placement.env_id, placement.env)
    return placement


def record_edge(run: Run, src: str, dst: str, kind: str, role: str | None = None) -> None:
    """One typed edge of the provenance graph: a step to an artifact (used/generated) or
    a step/call, an artifact to an input (derived_from), a run to its parent (forked_from)."""
    run.writer.append(
        "edges", {"run_id": run.run_id, "src": src, "dst": dst, "type": kind, "role": role}
    )


def record_artifact(
    run: Run, step_id: str, name: str, value: Any, canonical: Canonical, path: str | None
) -> None:
    """An output a step produced: its hash, kind, size, preview and where its bytes are."""
    run.writer.append(
        "artifacts",
        {
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
        },
    )


def record_action(run: Run, spec: ActionSpec, identity: ActionIdentity) -> None:
    """Record where an action version came from, the first time the run uses it, so
    the run can be re-executed where the notebook that defined it is not running."""
    if spec.cell_source is not None or identity.version_id in run.action_versions:
        return
    run.action_versions.add(identity.version_id)
    record = action_record(run.run_id, spec, identity, capture(spec, identity))
    record["recorded_at"] = now_us()
    run.writer.append("actions", record)


def record_approval(run: Run, step_id: str, decision: Decision) -> None:
    """Who approved or rejected the step about to be ``step_id``, and why."""
    run.writer.append(
        "approvals",
        {
            "run_id": run.run_id,
            "step_id": step_id,
            "decision": "approved" if decision.approved else "rejected",
            "reason": decision.reason,
            "edited_params": json.dumps(decision.edited_params) if decision.edited_params else None,
            "decided_by": decision.decided_by,
            "decided_at": now_us(),
        },
    )


def jsonable(params: Mapping[str, Any]) -> Any:
    """``params`` as JSON can hold them: their repr where they are not JSON values."""
    try:
        json.dumps(params)
    except (TypeError, ValueError):
        return {k: repr(v) for k, v in params.items()}
    return dict(params)
