"""``replay(run)``: restore a run's recorded outputs into a namespace without executing
anything, say which steps failed or cannot be restored, and compare the recorded
environment with the current one (``verify=True`` also re-executes; see
:mod:`rlam_jupyter.operations.replay.verify`)."""

from __future__ import annotations

import time
from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any

from rlam_jupyter.actions.registry import Registry
from rlam_jupyter.engine import Engine
from rlam_jupyter.operations.replay.context import find_step, open_context, resolve
from rlam_jupyter.operations.replay.progress import progress
from rlam_jupyter.operations.replay.tables import short
from rlam_jupyter.operations.replay.verify import verify_steps
from rlam_jupyter.operations.replay.views import ReplayReport, ReplayStep
from rlam_jupyter.store.index.lineage import Lineage
from rlam_jupyter.store.index.model import StepEntry
from rlam_jupyter.store.resolve import StoreRef
from rlam_jupyter.store.schema import INTERRUPTED
from rlam_jupyter.values.fingerprint import compare, fingerprint

if TYPE_CHECKING:
    from rlam_jupyter.engine.session import Session


def replay(
    run: str,
    upto: int | str | None = None,
    verify: bool = False,
    store: StoreRef = None,
    *,
    namespace: MutableMapping[str, Any] | None = None,
    session: Session | None = None,
    registry: Registry | None = None,
    engine: Engine | None = None,
) -> ReplayReport:
    """Restore a run's recorded outputs (up to step ``upto``) without executing anything.

    In a kernel the values land in the notebook namespace; elsewhere they are in the
    report's ``values`` (``report["model"]``). Failed steps are reported as failed,
    never restored as None. ``verify=True`` re-executes every step that is not
    ``external`` and reports it ``identical`` or ``diverged`` (with what differs).
    ``registry`` holds the actions to verify with (default: every ``@action``).
    """
    started = time.perf_counter()
    ctx = open_context(store, namespace, session, registry, engine)
    try:
        run_id = resolve(ctx, run)
        lineage = ctx.source.lineage(run_id)
        seq = None if upto is None else find_step(lineage, upto)[0]
        steps = list(lineage.steps(seq))
        report_steps, values = _restore(ctx.engine, lineage, steps)
        if verify:
            report_steps = verify_steps(ctx.engine, lineage, steps, report_steps)
    finally:
        ctx.source.close()
    target = ctx.namespace
    if target is not None:
        target.update(values)
    report = ReplayReport(
        run_id=run_id,
        run_name=lineage.run.name,
        upto=seq,
        steps=report_steps,
        values=values,
        env_differences=_env_differences(lineage, steps),
        verified=verify,
        elapsed_s=time.perf_counter() - started,
    )
    if ctx.session is None and target is None:
        report.notes.append("values are in the report: report['name'] or report.values")
    return report


def _restore(
    engine: Engine, lineage: Lineage, steps: list[StepEntry]
) -> tuple[list[ReplayStep], dict[str, Any]]:
    own = lineage.run.run_id
    final: dict[str, tuple[int, str]] = {}
    for entry in steps:
        for name, _output, artifact_id in entry.bindings():
            if name in entry.targets:
                final[name] = (entry.seq, artifact_id)
    loads: dict[int, list[tuple[str, str]]] = {}
    for name, (seq, artifact_id) in final.items():
        loads.setdefault(seq, []).append((name, artifact_id))
    values: dict[str, Any] = {}
    report: list[ReplayStep] = []
    for entry in progress(steps, "replay"):
        inherited = entry.step_id.rsplit("-", 1)[0] if not entry.step_id.startswith(own) else None
        status, detail = _replay_status(engine, lineage, entry)
        for name, artifact_id in loads.get(entry.seq, []):
            ref = lineage.artifact(artifact_id)
            if status == "restored" and ref is not None and ref.object_path is not None:
                values[name] = engine.objects.get(ref.object_path)
        report.append(
            ReplayStep(
                entry.seq,
                entry.step_id,
                entry.action,
                status,
                detail,
                entry.targets if entry.ok else (),
                inherited,
            )
        )
    return report, values


def _replay_status(engine: Engine, lineage: Lineage, entry: StepEntry) -> tuple[str, str]:
    if entry.status == "failed":
        return "failed", f"{entry.error_type}: {entry.error_message}"
    if entry.status == "rejected":
        return "rejected", entry.error_message or ""
    if entry.status == INTERRUPTED:
        return "interrupted", (
            "not restorable: the kernel running it died before it finished"
            + (f" ({entry.error_message})" if entry.error_message else "")
        )
    if not entry.ok:
        return "incomplete", f"recorded as {entry.status!r} only: the step never finished"
    for output, artifact_id in entry.outputs.items():
        ref = lineage.artifact(artifact_id)
        if ref is None or ref.object_path is None:
            note = ref.note if ref is not None and ref.note else "recorded by hash only"
            return "unrestorable", f"{output}: {note}"
        if not engine.objects.exists(ref.object_path):
            return "missing", f"{output}: object {ref.object_path} is missing from the store"
    hashes = ", ".join(short(a) for a in entry.outputs.values())
    cached = f" (cached from {entry.cached_from})" if entry.cached_from else ""
    return "restored", hashes + cached


def _env_differences(lineage: Lineage, steps: list[StepEntry]) -> list[tuple[str, Any, Any]]:
    """Recorded environment(s) of the replayed steps vs the current fingerprint."""
    wanted = {e.env_id for e in steps if e.env_id} or {lineage.run.env_id or ""}
    recorded: dict[str, dict[str, Any]] = {}
    for index, _upto in lineage.links:
        for env_id, data in index.envs.items():
            if env_id in wanted or index is lineage.run:
                recorded.setdefault(env_id, data)
    current = fingerprint()
    differences: dict[tuple[str, str, str], tuple[str, Any, Any]] = {}
    for env_id, data in recorded.items():
        if not data or env_id == current.env_id:
            continue
        for key, was, now in compare(data, current.data):
            differences.setdefault((key, repr(was), repr(now)), (key, was, now))
    return list(differences.values())
