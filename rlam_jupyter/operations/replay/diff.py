"""``diff(a, b)``: two runs aligned step by step (forks keep step positions): parameters,
seeds, inputs, output hashes, the metrics of ``evaluate`` steps, and the environments."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rlam_jupyter.engine import Engine
from rlam_jupyter.operations.replay.context import open_context, resolve
from rlam_jupyter.operations.replay.diff_views import MetricDiff, RunDiff, StepDiff
from rlam_jupyter.operations.replay.tables import describe_param_changes
from rlam_jupyter.store.index.lineage import Lineage
from rlam_jupyter.store.index.model import StepEntry
from rlam_jupyter.store.resolve import StoreRef
from rlam_jupyter.values.fingerprint import compare

if TYPE_CHECKING:
    from rlam_jupyter.engine.session import Session

METRIC_ACTIONS = ("evaluate",)
"""Actions whose dict output holds model metrics that ``diff`` compares value by value."""


def diff(a: str, b: str, store: StoreRef = None, *, session: Session | None = None) -> RunDiff:
    """Step-aligned differences between two runs: parameters, seeds, inputs, output
    hashes, the metrics of ``evaluate`` steps, and the environments."""
    ctx = open_context(store, session=session)
    try:
        a_id, b_id = resolve(ctx, a), resolve(ctx, b)
        left, right = ctx.source.lineage(a_id), ctx.source.lineage(b_id)
    finally:
        ctx.source.close()
    a_steps = {e.seq: e for e in left.steps()}
    b_steps = {e.seq: e for e in right.steps()}
    rows: list[StepDiff] = []
    metrics: list[MetricDiff] = []
    for seq in sorted(set(a_steps) | set(b_steps)):
        ea, eb = a_steps.get(seq), b_steps.get(seq)
        shared = ea is not None and eb is not None and ea.step_id == eb.step_id
        rows.append(
            StepDiff(
                seq,
                ea.action if ea else None,
                eb.action if eb else None,
                ea.status if ea else None,
                eb.status if eb else None,
                shared,
                () if shared else tuple(_step_differences(ea, eb)),
            )
        )
        if ea and eb and ea.action == eb.action and ea.action in METRIC_ACTIONS:
            metrics += _metric_differences(ctx.engine, seq, ea, left, eb, right)
    env_a = left.run.envs.get(left.run.env_id or "", {})
    env_b = right.run.envs.get(right.run.env_id or "", {})
    env = compare(env_a, env_b) if env_a and env_b and env_a != env_b else []
    return RunDiff(a_id, left.run.name, b_id, right.run.name, rows, metrics, env)


def _step_differences(a: StepEntry | None, b: StepEntry | None) -> list[str]:
    if a is None or b is None:
        return ["only in " + ("b" if a is None else "a")]
    out = []
    if a.action != b.action:
        out.append(f"action: {a.action} → {b.action}")
    if a.status != b.status and not (a.ok and b.ok):  # cached = succeeded for a diff
        out.append(f"status: {a.status} → {b.status}")
    out += [f"param {c}" for c in describe_param_changes(a.params, b.params)]
    if a.seed != b.seed and "seeded" in (a.determinism, b.determinism):
        out.append(f"seed: {a.seed} → {b.seed}")  # a pure step's seed changes nothing
    if a.inputs != b.inputs:
        out += [f"input {c}" for c in describe_param_changes(a.inputs, b.inputs)]
    elif a.input_ids != b.input_ids:
        out += [f"input {c}" for c in describe_param_changes(a.input_ids, b.input_ids)]
    if a.outputs != b.outputs:
        out += [f"output {c}" for c in describe_param_changes(a.outputs, b.outputs)]
    if a.error_type != b.error_type or a.error_message != b.error_message:
        out.append(f"error: {a.error_type or '∅'} → {b.error_type or '∅'}")
    return out


def _metric_differences(
    engine: Engine, seq: int, a: StepEntry, left: Lineage, b: StepEntry, right: Lineage
) -> list[MetricDiff]:
    values = []
    for entry, lineage in ((a, left), (b, right)):
        loaded: dict[str, Any] = {}
        if entry.ok and entry.outputs:
            ref = lineage.artifact(next(iter(entry.outputs.values())))
            if ref is not None and ref.object_path and engine.objects.exists(ref.object_path):
                value = engine.objects.get(ref.object_path)
                loaded = value if isinstance(value, dict) else {}
        values.append(loaded)
    left_metrics, right_metrics = values
    return [
        MetricDiff(seq, key, left_metrics.get(key), right_metrics.get(key))
        for key in sorted(set(left_metrics) | set(right_metrics))
    ]
