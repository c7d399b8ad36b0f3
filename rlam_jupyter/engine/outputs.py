"""A step's values in and out: outputs hashed into the object store and bound as
snapshots, inputs loaded on first use and protected against edits in place."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rlam_jupyter.actions.proposal import ProposalRejected
from rlam_jupyter.actions.registry import ActionSpec
from rlam_jupyter.engine.recorder import StepFacts, record_artifact, record_edge
from rlam_jupyter.engine.run_state import Binding
from rlam_jupyter.store.objects import ObjectStore
from rlam_jupyter.values.hashing import (
    PICKLE_KINDS,
    Canonical,
    canonicalize,
    digest_as,
    quick_fingerprint,
    restore,
)


def store_outputs(
    objects: ObjectStore,
    facts: StepFacts,
    spec: ActionSpec,
    values: Mapping[str, Any],
    canonicals: Mapping[str, Canonical] | None = None,
) -> tuple[dict[str, str], list[Binding], list[str]]:
    """Hash and store a step's outputs, record them with their edges, and return
    (output name → artifact id, the bindings of the step's targets, notes)."""
    run, step_id = facts.run, facts.step_id
    input_ids = facts.input_ids or {}
    outputs: dict[str, str] = {}
    bindings: list[Binding] = []
    notes: list[str] = []
    targets = facts.proposal.targets or spec.outputs
    for target, name in zip(targets, spec.outputs, strict=False):
        value = values[name]
        canonical = (canonicals or {}).get(name) or canonicalize(value)
        path = objects.put(canonical)
        if canonical.note:
            notes.append(f"{name}: {canonical.note}")
        outputs[name] = canonical.digest
        record_artifact(run, step_id, name, value, canonical, path)
        record_edge(run, step_id, canonical.digest, "generated", name)
        for input_id in input_ids.values():
            record_edge(run, canonical.digest, input_id, "derived_from", name)
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
    record_inputs_used(facts)
    return outputs, bindings, notes


def record_inputs_used(facts: StepFacts) -> None:
    """The ``used`` edges from a step to its input artifacts."""
    for pname, artifact_id in (facts.input_ids or {}).items():
        record_edge(facts.run, facts.step_id, artifact_id, "used", pname)


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


def load_value(objects: ObjectStore, binding: Binding) -> Any:
    """A binding's value, loaded from the object store on first use (a fork's
    inherited names are loaded only when a step or the notebook needs them)."""
    if not binding.loaded:
        if binding.object_path is None:
            raise ProposalRejected(
                f"artifact {binding.name!r} ({binding.artifact_id[:12]}) was recorded by hash "
                "only and cannot be restored; re-run the step that produced it"
            )
        binding.value = objects.get(binding.object_path)
        binding.loaded = True
        binding.fingerprint = quick_fingerprint(binding.value)
    return binding.value


def protect_inputs(objects: ObjectStore, inputs: Mapping[str, Binding]) -> list[str]:
    """Recorded inputs are snapshots: if a value was edited in place since it was
    recorded, hand the step the recorded bytes again instead of the edited object."""
    notes = []
    for _pname, binding in inputs.items():
        load_value(objects, binding)
        if binding.object_path is None:
            continue
        quick = quick_fingerprint(binding.value)
        if quick is not None and quick == binding.fingerprint:
            continue  # unchanged since it was recorded or last verified
        if digest_as(binding.value, binding.kind) != binding.artifact_id:
            binding.value = objects.get(binding.object_path)
            quick = quick_fingerprint(binding.value)
            notes.append(
                f"{binding.name!r} was modified in place after it was recorded; "
                f"the step received the recorded value ({binding.artifact_id[:10]})"
            )
        binding.fingerprint = quick
    return notes
