"""``replay(run, verify=True)``: re-execute each recorded step on its recorded inputs, seed
and parameters, and compare output hashes with the recording (``identical`` /
``diverged``, or why a step was not re-executed)."""

from __future__ import annotations

from rlam_jupyter.engine import Binding, Engine
from rlam_jupyter.operations.recorded_actions import RecordedActions, rows_from_store
from rlam_jupyter.operations.replay.progress import progress
from rlam_jupyter.operations.replay.tables import short
from rlam_jupyter.operations.replay.views import ReplayStep
from rlam_jupyter.store.index.lineage import Lineage
from rlam_jupyter.store.index.model import StepEntry
from rlam_jupyter.values.hashing import canonicalize, digest_as


def verify_steps(
    engine: Engine, lineage: Lineage, steps: list[StepEntry], restored: list[ReplayStep]
) -> list[ReplayStep]:
    """Re-execute each re-executable step on its recorded inputs, seed and parameters."""
    inputs_cache: dict[str, Binding] = {}
    actions = RecordedActions(engine.registry, rows_from_store(engine.layout))
    verified = []
    for entry, step in zip(progress(steps, "verify"), restored, strict=True):
        outcome, differences = _verify_step(engine, lineage, entry, inputs_cache, actions)
        verified.append(
            ReplayStep(
                step.seq,
                step.step_id,
                step.action,
                step.status,
                step.detail,
                step.names,
                step.inherited_from,
                outcome,
                tuple(differences),
            )
        )
    return verified


def _verify_step(
    engine: Engine,
    lineage: Lineage,
    entry: StepEntry,
    inputs_cache: dict[str, Binding],
    actions: RecordedActions,
) -> tuple[str, list[str]]:
    if entry.determinism == "external":
        return "skipped (external)", [
            "external steps are never re-run: their recorded outputs are what they gave"
        ]
    if entry.status not in ("succeeded", "cached", "failed"):
        return f"skipped ({entry.status})", []
    bindings: dict[str, Binding] = {}
    for pname, artifact_id in entry.input_ids.items():
        if artifact_id not in inputs_cache:
            ref = lineage.artifact(artifact_id)
            if ref is None or ref.object_path is None or not engine.objects.exists(ref.object_path):
                return "skipped (input not restorable)", [f"input {pname} ({short(artifact_id)})"]
            inputs_cache[artifact_id] = Binding(
                pname, artifact_id, "", ref.kind, ref.object_path, None, loaded=False
            )
        bindings[pname] = inputs_cache[artifact_id]
    # the same protection as a live run: an input edited in place by an earlier
    # re-executed step is handed over as recorded again
    engine.protect_inputs(bindings)
    inputs = {pname: binding.value for pname, binding in bindings.items()}
    resolved = actions.for_entry(entry, input_types={type(v) for v in inputs.values()})
    spec = resolved.spec
    if spec is None:
        return "skipped (action not registered)", [resolved.reason]
    notes = list(resolved.notes)
    try:
        params = spec.validate_params(entry.params).__dict__
    except Exception as exc:
        return "diverged", [*notes, f"recorded parameters no longer valid: {exc}"]
    seed = entry.seed if entry.seed is not None else 0
    try:
        values = engine.invoke(spec, params, inputs, seed)
    except Exception as exc:
        kind = type(exc).__qualname__
        if entry.status == "failed" and kind == entry.error_type:
            return "identical", [*notes, f"fails again with {kind}, as recorded"]
        recorded = (
            f"recorded {entry.error_type}" if entry.status == "failed" else "recorded success"
        )
        return "diverged", [*notes, f"now raises {kind}: {exc} ({recorded})"]
    if entry.status == "failed":
        return "diverged", [*notes, f"recorded {entry.error_type}, now succeeds"]
    differences = []
    for output, recorded_id in entry.outputs.items():
        ref = lineage.artifact(recorded_id)
        value = values.get(output)
        now = digest_as(value, ref.kind) if ref else canonicalize(value).digest
        if now != recorded_id:
            differences.append(f"{output}: recorded {short(recorded_id)}, now {short(now)}")
    if differences:
        return "diverged", notes + differences
    return "identical", notes
