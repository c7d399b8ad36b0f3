"""Replay, verify, fork and diff recorded runs.

- ``replay(run)`` restores every step's recorded outputs (no re-execution) into the
  kernel namespace, says which steps failed, and compares the recorded environment
  with the current one; ``verify=True`` re-executes each re-executable step with its
  recorded seed, parameters and inputs and compares output hashes.
- ``fork(run, at, params)`` starts a run that shares the parent's steps before ``at``
  by reference (nothing is copied, so the cost does not grow with ``at``),
  re-proposes step ``at`` with the overrides (schema-checked like any proposal) and
  re-runs the later steps in order, from the cache where their inputs are unchanged.
- ``diff(a, b)`` aligns two runs step by step (forks keep step positions).

Everything reads the run's compact step index (:mod:`rlam_jupyter.store.run_index`), not the
whole store. ``%rlam replay|fork|diff`` and ``rlam replay|diff|forks`` are thin
wrappers around these functions.
"""

from __future__ import annotations

import argparse
import ast
import json
import time
from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rlam_jupyter.actions.proposal import Proposal, ProposalRejected
from rlam_jupyter.actions.registry import Registry
from rlam_jupyter.engine import Binding, Engine, Run
from rlam_jupyter.errors import RlamError
from rlam_jupyter.operations.recorded_actions import RecordedActions, Resolved, rows_from_store
from rlam_jupyter.operations.replay.views import (
    ForkReport,
    MetricDiff,
    ReplayReport,
    ReplayStep,
    RunDiff,
    StepDiff,
    describe_param_changes,
    short,
)
from rlam_jupyter.store.index.lineage import Lineage
from rlam_jupyter.store.index.model import StepEntry
from rlam_jupyter.store.index.source import IndexSource
from rlam_jupyter.store.layout import StoreLayout
from rlam_jupyter.store.resolve import resolve_store
from rlam_jupyter.store.schema import INTERRUPTED
from rlam_jupyter.values.fingerprint import compare, fingerprint
from rlam_jupyter.values.hashing import canonicalize, digest_as

if TYPE_CHECKING:
    import pandas as pd

    from rlam_jupyter.engine.session import Session

PROGRESS_MIN_STEPS = 200
"""Replays of at least this many steps show a progress bar (tqdm.auto)."""

METRIC_ACTIONS = ("evaluate",)
"""Actions whose dict output holds model metrics that ``diff`` compares value by value."""


class ForkRejected(ProposalRejected):
    """The re-proposed step of a fork failed its schema check; the refusal is recorded."""


# ---------------------------------------------------------------- where to work


@dataclass
class _Context:
    engine: Engine
    source: IndexSource
    session: Session | None
    namespace: MutableMapping[str, Any] | None


def _context(
    store: Any,
    namespace: MutableMapping[str, Any] | None = None,
    session: Session | None = None,
    registry: Registry | None = None,
    engine: Engine | None = None,
) -> _Context:
    """The kernel's session when the store is its store, else a fresh engine on ``store``
    (or the ``engine`` given: a script that recorded the parent forks in memory)."""
    if engine is not None:
        return _Context(engine, IndexSource(engine.layout, engine.indexes()), None, namespace)
    session = session if session is not None else _kernel_session()
    layout = store if isinstance(store, StoreLayout) else resolve_store(store)
    if (
        session is not None
        and (store is None or session.engine.layout.root == layout.root)
        and (registry is None or registry is session.engine.registry)
    ):
        engine = session.engine
        if namespace is None:
            namespace = session.namespace
    else:
        session = None
        engine = Engine(layout, registry=registry)
        if namespace is None:
            shell = _shell()
            namespace = shell.user_ns if shell is not None else None
    return _Context(engine, IndexSource(engine.layout, engine.indexes()), session, namespace)


def _shell() -> Any:
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is a dependency
        return None
    return get_ipython()


def _kernel_session() -> Session | None:
    """The rlam session of the running kernel, if one was started (``%%rlam`` / ``%rlam``)."""
    shell = _shell()
    if shell is None:
        return None
    from rlam_jupyter.frontends.magics import _SESSION_KEY

    session: Session | None = getattr(shell, _SESSION_KEY, None)
    return session


def resolve(ctx: _Context, ref: str) -> str:
    """A run id from an id, a run name, or a unique id prefix/suffix.

    Runs of this kernel and run ids are found without reading records; other names
    need one read of the store's views.
    """
    ref = str(ref).strip()
    if ctx.session is not None:
        for run in reversed(list(ctx.session.runs.values())):
            if ref in (run.run_id, run.name):
                return run.run_id
    for run_id, run in reversed(list(ctx.engine.runs.items())):
        if ref in (run_id, run.name):
            return run_id
    known = ctx.source.known_run_ids()
    if ref in known:
        return ref
    if len(ref) >= 4 and ref.isalnum() and ref.upper() == ref:
        matches = [r for r in known if r.startswith(ref) or r.endswith(ref)]
        if len(matches) == 1:
            return matches[0]
    from rlam_jupyter.store.catalog import resolve_run

    return resolve_run(ctx.source.connection(), ref)


def _seq_of(upto: int | str | None, run_id: str) -> int | None:
    if upto is None:
        return None
    if isinstance(upto, int):
        return upto
    text = str(upto).strip()
    if text.isdigit():
        return int(text)
    head, _, tail = text.rpartition("-")
    if head and tail.isdigit():
        return int(tail)
    raise RlamError(f"{upto!r} is not a step: give its number (seq) or its step id")


# ---------------------------------------------------------------- replay


def replay(
    run: str,
    upto: int | str | None = None,
    verify: bool = False,
    store: Any = None,
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
    ctx = _context(store, namespace, session, registry, engine)
    try:
        run_id = resolve(ctx, run)
        lineage = ctx.source.lineage(run_id)
        seq = _seq_of(upto, run_id)
        if seq is not None and lineage.step(seq) is None:
            raise RlamError(
                f"run {lineage.run.name} has no step {seq}; its steps are 1..{lineage.last_seq()}"
            )
        steps = list(lineage.steps(seq))
        report_steps, values = _restore(ctx.engine, lineage, steps)
        if verify:
            report_steps = _verify(ctx.engine, lineage, steps, report_steps)
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


def _progress(items: list[Any], desc: str) -> Iterable[Any]:
    if len(items) < PROGRESS_MIN_STEPS:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, unit="step", leave=False)


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
    for entry in _progress(steps, "replay"):
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


def _verify(
    engine: Engine, lineage: Lineage, steps: list[StepEntry], restored: list[ReplayStep]
) -> list[ReplayStep]:
    """Re-execute each re-executable step on its recorded inputs, seed and parameters."""
    inputs_cache: dict[str, Binding] = {}
    actions = RecordedActions(engine.registry, rows_from_store(engine.layout))
    verified = []
    for entry, step in zip(_progress(steps, "verify"), restored, strict=True):
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


# ---------------------------------------------------------------- fork


def start_fork_run(
    engine: Engine, lineage: Any, seq: int, name: str, *, notebook: str | None = None
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
    store: Any = None,
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
    ctx = _context(store, namespace, session, registry, engine)
    try:
        parent_id = resolve(ctx, run)
        lineage = ctx.source.lineage(parent_id)
    finally:
        ctx.source.close()
    parent = lineage.run
    seq = _seq_of(at, parent_id)
    assert seq is not None
    found = lineage.step(seq)
    if found is None:
        raise RlamError(
            f"run {parent.name} has no step {seq}; its steps are 1..{lineage.last_seq()}"
        )
    _owner, entry = found
    engine = ctx.engine
    actions = RecordedActions(engine.registry, rows_from_store(engine.layout))
    resolved = _fork_action(actions, entry)
    spec = resolved.spec
    if spec is None:
        raise RlamError(
            f"step {seq} of run {parent.name} cannot be re-proposed here: {resolved.reason}"
        )
    fork_name = name or _fork_name(parent.name, seq)
    new_run = start_fork_run(
        engine, lineage, seq, fork_name, notebook=ctx.session.notebook if ctx.session else None
    )
    overrides = dict(params or {})
    inputs = dict(entry.inputs)
    for key in list(overrides):
        if key in spec.inputs and isinstance(overrides[key], str):
            inputs[key] = overrides.pop(key)
    proposal = Proposal(
        entry.action,
        {**entry.params, **overrides},
        inputs,
        entry.targets,
        origin="fork",
    )
    new_run.next_seq = seq
    first = engine.execute(new_run, proposal, spec=spec)
    results = [first]
    if first.status == "rejected":
        engine.end_run(new_run, "failed")
        assert first.error is not None
        raise ForkRejected(
            f"fork of {parent.name} at step {seq} refused, nothing ran (the refusal is recorded "
            f"as step {first.step_id}): {first.error.message.rstrip('.')}",
            action=entry.action,
        )
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


def _rerun_downstream(
    engine: Engine, run: Run, lineage: Lineage, seq: int, actions: RecordedActions
) -> list[Any]:
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


def _adopt(ctx: _Context, run: Run, keep_open: bool) -> None:
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


# ---------------------------------------------------------------- diff


def diff(a: str, b: str, store: Any = None, *, session: Session | None = None) -> RunDiff:
    """Step-aligned differences between two runs: parameters, seeds, inputs, output
    hashes, the metrics of ``evaluate`` steps, and the environments."""
    ctx = _context(store, session=session)
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


# ---------------------------------------------------------------- fork tree


def fork_tree(run: str, store: Any = None) -> pd.DataFrame:
    """The whole fork tree that ``run`` belongs to, in tree order, one row per run:
    ``run_id, name, parent_run_id, fork_seq, depth, status, steps`` (own steps only)."""
    ctx = _context(store)
    try:
        run_id = resolve(ctx, run)
        frame: pd.DataFrame = (
            ctx.source.connection()
            .execute(
                """
            WITH RECURSIVE up(run_id, parent_run_id, d) AS (
                SELECT run_id, parent_run_id, 0 FROM runs WHERE run_id = $run
                UNION ALL
                SELECT r.run_id, r.parent_run_id, up.d + 1
                FROM runs r JOIN up ON r.run_id = up.parent_run_id WHERE up.d < 10000
            ),
            root AS (SELECT run_id FROM up ORDER BY d DESC LIMIT 1),
            down(run_id, depth, path) AS (
                SELECT run_id, 0, run_id FROM root
                UNION ALL
                SELECT r.run_id, down.depth + 1, down.path || '/' || r.run_id
                FROM runs r JOIN down ON r.parent_run_id = down.run_id WHERE down.depth < 10000
            )
            SELECT r.run_id, r.name, r.parent_run_id, r.fork_seq, down.depth, r.status,
                   (SELECT count(*) FROM steps s WHERE s.run_id = r.run_id) AS steps,
                   r.run_id = $run AS is_selected
            FROM down JOIN runs r USING (run_id)
            ORDER BY down.path
            """,
                {"run": run_id},
            )
            .df()
        )
    finally:
        ctx.source.close()
    return frame


# ---------------------------------------------------------------- %rlam commands


def _literal(text: str) -> Any:
    """``--set`` values: Python or JSON literals; anything else is taken as a string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        pass
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip().isidentifier():
            raise RlamError(
                f"--set {item!r}: write name=value, e.g. --set C=0.1 or --set model=random_forest"
            )
        overrides[key.strip()] = _literal(value.strip())
    return overrides


class _UsageExit(Exception):
    """argparse wanted to exit (``-h``): the help is already printed."""


class _MagicParser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:
        from IPython.core.error import UsageError

        raise UsageError(f"{self.prog}: {message}\n{self.format_usage().strip()}")

    def exit(self, status: int = 0, message: str | None = None) -> Any:
        if message:
            print(message)
        raise _UsageExit


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace | None:
    try:
        return parser.parse_args(argv)
    except _UsageExit:
        return None


def _replay_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The arguments ``%rlam replay`` and ``rlam replay`` share."""
    parser.add_argument("run", help="run id, run name, or unique id prefix")
    parser.add_argument("--upto", default=None, help="last step to restore (number or step id)")
    parser.add_argument(
        "--verify", action="store_true", help="re-execute each step and compare output hashes"
    )
    return parser


def _diff_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The arguments ``%rlam diff`` and ``rlam diff`` share."""
    parser.add_argument("run_a")
    parser.add_argument("run_b")
    return parser


def _replay_parser() -> argparse.ArgumentParser:
    return _replay_arguments(
        _MagicParser(
            prog="%rlam replay", description="Restore a recorded run's outputs without re-running."
        )
    )


def _fork_parser() -> argparse.ArgumentParser:
    parser = _MagicParser(
        prog="%rlam fork", description="Branch a new run from a recorded step with overrides."
    )
    parser.add_argument("run", help="run id, run name, or unique id prefix")
    parser.add_argument("--at", required=True, help="step to re-propose (number or step id)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="parameter override (Python/JSON literal), repeatable",
    )
    parser.add_argument("--name", default=None, help="name of the new run")
    parser.add_argument("--no-downstream", action="store_true", help="re-run only the step at --at")
    return parser


def _diff_parser() -> argparse.ArgumentParser:
    return _diff_arguments(
        _MagicParser(prog="%rlam diff", description="Step-aligned differences of two runs.")
    )


def _register_magic_commands() -> None:
    from rlam_jupyter.frontends.magics import register_command

    @register_command("replay")
    def replay_command(magics: Any, session: Session, argv: list[str], cell: str | None) -> Any:
        args = _parse(_replay_parser(), argv)
        if args is None:
            return None
        return replay(args.run, upto=args.upto, verify=args.verify, session=session)

    @register_command("fork")
    def fork_command(magics: Any, session: Session, argv: list[str], cell: str | None) -> Any:
        args = _parse(_fork_parser(), argv)
        if args is None:
            return None
        return fork(
            args.run,
            at=args.at,
            params=parse_overrides(args.overrides),
            name=args.name,
            downstream=not args.no_downstream,
            session=session,
        )

    @register_command("diff")
    def diff_command(magics: Any, session: Session, argv: list[str], cell: str | None) -> Any:
        args = _parse(_diff_parser(), argv)
        if args is None:
            return None
        return diff(args.run_a, args.run_b, session=session)


_register_magic_commands()


# ---------------------------------------------------------------- rlam CLI


def register_cli(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """``rlam replay RUN [--upto N] [--verify]``, ``rlam diff A B``, ``rlam forks RUN``."""
    replay_cli = _replay_arguments(
        subparsers.add_parser(
            "replay",
            parents=[common],
            help="check that a run restores from the store; --verify re-executes and compares",
        )
    )
    replay_cli.add_argument(
        "--allow-skipped",
        action="store_true",
        help="with --verify: exit 0 even when steps could not be re-executed (they are named)",
    )
    replay_cli.add_argument(
        "--actions",
        action="append",
        default=[],
        metavar="MODULE_OR_FILE",
        help="import a module or a .py file first, for actions whose source the trace does "
        "not hold (repeatable)",
    )
    replay_cli.set_defaults(handler=_replay_cli)
    diff_cli = _diff_arguments(
        subparsers.add_parser(
            "diff", parents=[common], help="step-aligned differences between two runs"
        )
    )
    diff_cli.set_defaults(handler=_diff_cli)
    forks_cli = subparsers.add_parser(
        "forks", parents=[common], help="the fork tree a run belongs to"
    )
    forks_cli.add_argument("run")
    forks_cli.set_defaults(handler=_forks_cli)


def _replay_cli(args: argparse.Namespace) -> int:
    import sys

    from rlam_jupyter.frontends.cli import EXIT_CHECK_FAILED, EXIT_OK, emit
    from rlam_jupyter.operations.bundle.reexecute import import_actions

    if "" not in sys.path:
        sys.path.insert(0, "")  # modules of the current folder, as `python -m` finds them
    for module in args.actions:
        import_actions(module)
    report = replay(args.run, upto=args.upto, verify=args.verify, store=args.store, namespace={})
    report.notes.clear()
    emit(args, report.to_json(), repr(report))
    return EXIT_OK if report.passes(args.allow_skipped) else EXIT_CHECK_FAILED


def _diff_cli(args: argparse.Namespace) -> int:
    from rlam_jupyter.frontends.cli import EXIT_OK, emit

    result = diff(args.run_a, args.run_b, store=args.store)
    emit(args, result.to_json(), repr(result))
    return EXIT_OK


def _forks_cli(args: argparse.Namespace) -> int:
    from rlam_jupyter.frontends.cli import EXIT_OK, emit

    frame = fork_tree(args.run, store=args.store)
    rows = frame.to_dict(orient="records")
    lines = [
        f"{'  ' * int(r['depth'])}{'▸ ' if r['is_selected'] else ''}{r['name']} ({r['run_id']})"
        + (f" forked at step {r['fork_seq']}" if r["parent_run_id"] else "")
        + f" · {r['status']} · {r['steps']} own step(s)"
        for r in rows
    ]
    emit(args, rows, "\n".join(lines))
    return EXIT_OK


__all__ = ["ForkRejected", "diff", "fork", "fork_tree", "parse_overrides", "replay", "resolve"]
