"""This package and PyPI ``rlam`` 0.1.0 side by side, in one process, on the same steps.

Three measurements, each reported as absolute figures and as ratios:

- a no-op step in a tight loop (what is left is pure bookkeeping), time and retained
  memory per step;
- the breast-cancer workflow (the evaluation's linear plan), bookkeeping time per step
  (step wall time minus the body's own time) and retained memory per run;
- a realistic step — training a random forest — through this engine: bookkeeping as a
  share of the step's own time (target: under 2 %).

Upstream is driven as its README shows (``Action`` + ``execute_action`` +
``ExecutionTrace.add_result``), with the environment hash computed once, not per step.
"""

from __future__ import annotations

import gc
import pickle
import statistics
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlam_jupyter.actions.proposal import Proposal, parse_cell
from rlam_jupyter.actions.registry import Registry, build_spec
from rlam_jupyter.engine import Engine
from rlam_jupyter.operations.evaluation.runner import UPSTREAM_HINT
from rlam_jupyter.operations.evaluation.workflow import RUN_SEED, outputs_of, plan, seeded_tools
from rlam_jupyter.values.hashing import canonicalize

TARGET_REALISTIC_PCT = 2.0


@dataclass(frozen=True)
class Measured:
    """One line of the comparison."""

    what: str
    ours: float
    upstream: float | None
    unit: str

    @property
    def ratio(self) -> float | None:
        """ours / upstream (below 1: this package is cheaper)."""
        if self.upstream is None or self.upstream == 0:
            return None
        return self.ours / self.upstream

    def as_row(self) -> dict[str, Any]:
        return {
            "measure": self.what,
            "rlam-jupyter": _round(self.ours),
            "upstream rlam 0.1.0": None if self.upstream is None else _round(self.upstream),
            "unit": self.unit,
            "ratio (ours/upstream)": None if self.ratio is None else round(self.ratio, 2),
        }


def _round(value: float) -> float:
    return round(value, 4) if abs(value) < 10 else round(value, 1)


def _noop(i: int = 0) -> None:
    """Does nothing: what a step costs beyond this is bookkeeping."""


def _our_noop_engine(store: Path) -> tuple[Any, Any]:
    registry = Registry()
    registry.add(build_spec(_noop, name="noop", cache=False))
    engine = Engine(str(store), registry=registry)
    return engine, engine.start_run("side-by-side-noop", seed=RUN_SEED)


def _upstream() -> Any:
    import rlam
    from rlam.utils import compute_environment_hash

    return rlam, compute_environment_hash()


def noop_loop(steps: int, workdir: Path) -> dict[str, Any]:
    """Per-step time (µs, median) and retained memory (bytes) of a no-op step."""
    engine, run = _our_noop_engine(workdir / "noop-store")

    def ours(i: int) -> None:
        engine.execute(run, Proposal("noop", {"i": i}), use_cache=False)

    result: dict[str, Any] = {"plain_us": _per_call_us(lambda i: _noop(i=i), steps)}
    result["ours_us"] = _per_call_us(ours, steps)
    engine2, run2 = _our_noop_engine(workdir / "noop-store-mem")
    result["ours_bytes"] = _retained_per_call(
        lambda i: engine2.execute(run2, Proposal("noop", {"i": i}), use_cache=False), steps
    )
    try:
        rlam, env = _upstream()
    except ImportError:
        result["upstream_us"] = result["upstream_bytes"] = None
        return result
    trace = rlam.ExecutionTrace()

    def theirs(i: int, trace: Any = trace) -> None:
        action = rlam.Action(
            action_id=f"A{i}",
            action_type="noop",
            inputs={},
            parameters={"i": i},
            environment_hash=env,
        )
        trace.add_result(rlam.execute_action(action, _noop), parents=[f"A{i - 1}"] if i else [])

    result["upstream_us"] = _per_call_us(theirs, steps)
    trace = rlam.ExecutionTrace()
    result["upstream_bytes"] = _retained_per_call(lambda i: theirs(i, trace), steps)
    return result


def _per_call_us(call: Callable[[int], None], steps: int) -> float:
    samples = []
    for i in range(steps):
        t0 = time.perf_counter()
        call(i)
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples) * 1e6


def _retained_per_call(call: Callable[[int], None], steps: int) -> float:
    """Bytes still allocated after ``steps`` calls, per call (what the trace keeps alive)."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i in range(steps):
        call(i)
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return (after - before) / steps


def workflow_overhead(runs: int, workdir: Path) -> dict[str, Any]:
    """Bookkeeping per step (ms) and retained memory per run (KiB) on the breast-cancer
    workflow, through this engine and through upstream, interleaved run by run."""
    intents = plan("linear")
    engine = Engine(str(workdir / "workflow-store"))
    ours: list[float] = []
    theirs: list[float] = []
    try:
        rlam, env = _upstream()
    except ImportError:
        rlam = env = None

    def our_run() -> Any:
        run = engine.start_run("side-by-side-workflow", seed=RUN_SEED)
        for intent in intents:
            proposal = Proposal(intent.action, intent.params, intent.inputs, intent.targets)
            t0 = time.perf_counter()
            result = engine.execute(run, proposal, use_cache=False)
            total = time.perf_counter() - t0
            ours.append(total * 1e3 - (result.duration_ms or 0.0))
        engine.end_run(run)
        return run

    def upstream_run() -> Any:
        tools = seeded_tools()
        trace = rlam.ExecutionTrace()
        namespace: dict[str, Any] = {}
        previous: list[str] = []
        for number, intent in enumerate(intents):
            body: list[float] = []

            def timed(
                *, _tool: Any = tools[intent.action], _body: list[float] = body, **kwargs: Any
            ) -> Any:
                t0 = time.perf_counter()
                try:
                    return _tool(**kwargs)
                finally:
                    _body.append(time.perf_counter() - t0)

            t0 = time.perf_counter()
            action = rlam.Action(
                action_id=f"A{number}",
                action_type=intent.action,
                inputs={p: namespace[n] for p, n in intent.inputs.items()},
                parameters=dict(intent.params),
                environment_hash=env,
            )
            result = rlam.execute_action(action, timed)
            trace.add_result(result, parents=previous)
            namespace.update(outputs_of(intent, result.output))
            total = time.perf_counter() - t0
            theirs.append((total - body[0]) * 1e3)
            previous = [f"A{number}"]
        return trace

    our_run()  # warm-up: imports, first-use caches
    if rlam is not None:
        upstream_run()
    ours.clear()
    for _ in range(runs):
        our_run()
        if rlam is not None:
            upstream_run()
    result: dict[str, Any] = {
        "ours_ms": statistics.median(ours),
        "upstream_ms": statistics.median(theirs) if theirs else None,
        "steps": len(intents),
    }
    keep: list[Any] = []
    result["ours_kib"] = _retained_per_call(lambda i: keep.append(our_run()), 3) / 1024
    if rlam is not None:
        result["upstream_kib"] = _retained_per_call(lambda i: keep.append(upstream_run()), 3) / 1024
    else:
        result["upstream_kib"] = None
    return result


def realistic_step(
    repeats: int, workdir: Path, n_estimators: int = 100, rows: int | None = None
) -> dict[str, Any]:
    """Training a random forest through the engine: bookkeeping time as a share of the
    step's own time (the median of ``repeats`` steps).

    ``rows=None`` trains on breast cancer (the paper's data, 426 training rows); a number
    trains on a synthetic table of that many rows and 20 features, read from CSV. Beside
    each step the same forest is trained by plain scikit-learn and then either saved with
    ``pickle.dumps`` (what any tool that keeps the model pays) or content-addressed as the
    engine does it (canonical pickle + blake3, no write: what any recorder that proves
    "identical outputs" by hash pays). Each is timed first after its training, cold as the
    engine's own bookkeeping is, on alternate steps."""
    keeping: dict[str, Callable[[Any], object]] = {
        "content_address": canonicalize,
        "pickle": lambda model: pickle.dumps(model, protocol=5),
    }
    if repeats < 2:
        raise ValueError(f"realistic_step needs repeats >= 2 (one per floor), got {repeats}")
    engine = Engine(str(workdir / f"realistic-store-{rows or 'bc'}"))
    run = engine.start_run("side-by-side-realistic", seed=RUN_SEED)
    setup = (
        f"data = {_realistic_source(workdir, rows)}\n"
        "X_train, X_test, y_train, y_test = split(data=data)\n"
    )
    engine.execute_all(run, parse_cell(setup, engine.registry), use_cache=False)
    x_train, y_train = run.bindings["X_train"].value, run.bindings["y_train"].value
    overheads: list[float] = []
    bodies: list[float] = []
    floors: dict[str, list[float]] = {name: [] for name in keeping}
    for i in range(repeats + 1):
        proposal = parse_cell(
            f'model{i} = train_model(X=X_train, y=y_train, model="random_forest", '
            f"n_estimators={n_estimators})",
            engine.registry,
        )[0]
        t0 = time.perf_counter()
        result = engine.execute(run, proposal, use_cache=False)
        total = (time.perf_counter() - t0) * 1e3
        floor_kind = "pickle" if i % 2 else "content_address"
        floor_ms = _keeping_ms(keeping[floor_kind], x_train, y_train, n_estimators, seed=i)
        if i == 0:
            continue  # warm-up
        body = result.duration_ms or 0.0
        overheads.append(total - body)
        bodies.append(body)
        floors[floor_kind].append(floor_ms)
    engine.end_run(run)
    overhead, body = statistics.median(overheads), statistics.median(bodies)
    floor = statistics.median(floors["pickle"])
    addressing = statistics.median(floors["content_address"])
    return {
        "data": "breast cancer" if rows is None else f"synthetic {rows} x 20",
        "train_rows": len(x_train),
        "body_ms": body,
        "overhead_ms": overhead,
        "overhead_pct": 100 * overhead / body,
        "plain_pickle_ms": floor,
        "plain_pickle_pct": 100 * floor / body,
        "content_address_ms": addressing,
        "content_address_pct": 100 * addressing / body,
        "target_pct": TARGET_REALISTIC_PCT,
        "n_estimators": n_estimators,
        "repeats": repeats,
    }


def _realistic_source(workdir: Path, rows: int | None) -> str:
    """The first step of the realistic plan: the bundled dataset, or a synthetic CSV."""
    if rows is None:
        return 'load_dataset(name="breast_cancer")'
    import pandas as pd
    from sklearn.datasets import make_classification

    features, target = make_classification(
        n_samples=rows, n_features=20, n_informative=10, random_state=RUN_SEED
    )
    table = pd.DataFrame(features, columns=[f"f{i}" for i in range(20)])
    table["target"] = target
    path = workdir / f"synthetic-{rows}.csv"
    table.to_csv(path, index=False)
    return f"load_csv(path={str(path)!r})"


def _keeping_ms(
    keep: Callable[[Any], object], x_train: Any, y_train: Any, n_estimators: int, seed: int
) -> float:
    """Train the same forest with plain scikit-learn, then time ``keep`` on it: the least a
    tool must do to keep the model (``pickle.dumps``, or hashing it as the engine does)."""
    from sklearn.ensemble import RandomForestClassifier

    model = RandomForestClassifier(n_estimators=n_estimators, random_state=seed, n_jobs=1)
    model.fit(x_train, y_train)
    t0 = time.perf_counter()
    keep(model)
    return (time.perf_counter() - t0) * 1e3


@dataclass
class SideBySide:
    """Everything the comparison measured, as printable rows and as JSON."""

    rows: list[Measured]
    raw: dict[str, Any]
    notes: list[str]

    def table(self) -> list[dict[str, Any]]:
        return [row.as_row() for row in self.rows]


def run_side_by_side(
    noop_steps: int = 5000,
    workflow_runs: int = 20,
    realistic_repeats: int = 7,
    workdir: Path | None = None,
) -> SideBySide:
    """Measure all three comparisons (upstream's columns stay empty if it is missing)."""
    root = workdir or Path(tempfile.mkdtemp(prefix="rlam-side-by-side-"))
    notes: list[str] = []
    noop = noop_loop(noop_steps, root)
    flow = workflow_overhead(workflow_runs, root)
    real = realistic_step(realistic_repeats, root)
    if noop["upstream_us"] is None:
        notes.append(f"upstream rlam 0.1.0 is not installed: `{UPSTREAM_HINT}` adds its columns")
    rows = [
        Measured(
            "no-op step: bookkeeping time (median)",
            noop["ours_us"] - noop["plain_us"],
            None if noop["upstream_us"] is None else noop["upstream_us"] - noop["plain_us"],
            "µs/step",
        ),
        Measured(
            "no-op step: memory kept in process",
            noop["ours_bytes"],
            noop["upstream_bytes"],
            "bytes/step",
        ),
        Measured(
            "breast-cancer workflow: bookkeeping per step (median)",
            flow["ours_ms"],
            flow["upstream_ms"],
            "ms/step",
        ),
        Measured(
            "breast-cancer workflow: memory kept in process",
            flow["ours_kib"],
            flow["upstream_kib"],
            "KiB/run",
        ),
        Measured(
            f"random-forest training ({real['body_ms']:.0f} ms body): bookkeeping share",
            real["overhead_pct"],
            None,
            f"% (target < {TARGET_REALISTIC_PCT:g} %)",
        ),
        Measured(
            "same forest saved by plain pickle.dumps: share of the training",
            real["plain_pickle_pct"],
            None,
            "% (what keeping the model costs anyone)",
        ),
        Measured(
            "same forest content-addressed (hash only, no write): share of the training",
            real["content_address_pct"],
            None,
            "% (what proving identical outputs by hash costs)",
        ),
    ]
    raw = {"noop": noop, "workflow": flow, "realistic": real, "noop_steps": noop_steps}
    return SideBySide(rows, raw, notes)
