"""Steps on a Dask LocalCluster vs sequential local execution.

Two measurements, side by side on this machine:

* 8 independent heavy steps in one cell (a 5-fold cross-validated random forest on
  the breast-cancer data each): wall time local vs on a 2-worker LocalCluster, where
  the cell's independent steps start ahead and run in parallel;
* the per-step overhead the distributed path adds: a no-op action, one step at a
  time, local vs on the cluster (submit, worker fingerprint, result transfer).

Every cluster run records the same output hashes as the local run (checked).
Run: ``python benchmarks/dask_executor.py [--steps 8] [--noops 40]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
import pandas as pd
from report import write

from rlam_jupyter.actions.proposal import parse_cell
from rlam_jupyter.actions.registry import action
from rlam_jupyter.engine import Engine
from rlam_jupyter.engine.cell_plan import running_on
from rlam_jupyter.engine.executors import DaskExecutor, LocalExecutor


@action
def cv_forest(data: pd.DataFrame, n_estimators: int = 100, folds: int = 5) -> float:
    """Mean cross-validated accuracy of a random forest (a heavy, seeded step)."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.model_selection import cross_val_score

    X = data.drop(columns=["target"])
    model = RandomForestClassifier(n_estimators=n_estimators, random_state=0, n_jobs=1)
    return float(cross_val_score(model, X, data["target"], cv=folds).mean())


@action
def counter(x: int) -> np.ndarray:
    """A one-element array: the start of a chain of no-op steps."""
    return np.array([x])


@action
def bump(counter: np.ndarray) -> np.ndarray:
    """Next step of the chain: nearly no work, so its time is the step's overhead."""
    return counter + 1


def _cell(engine: Engine, executor: object, body: str, seed: int) -> tuple[float, list[str]]:
    engine.executor = executor  # type: ignore[assignment]
    run = engine.start_run(f"bench-{time.time_ns()}", seed)
    setup = parse_cell('data = load_dataset(name="breast_cancer")', engine.registry)
    engine.execute_all(run, setup)
    proposals = parse_cell(body, engine.registry)
    t0 = time.perf_counter()
    with running_on(engine, None, run, proposals, use_cache=False):
        results = engine.execute_all(run, proposals, use_cache=False)
    elapsed = time.perf_counter() - t0
    engine.end_run(run)
    assert all(r.status == "succeeded" for r in results), [r.error for r in results]
    return elapsed, [str(r.outputs) for r in results]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--noops", type=int, default=40)
    parser.add_argument("--trees", type=int, default=150)
    args = parser.parse_args()
    from distributed import LocalCluster, get_task_stream

    heavy = "".join(
        f"s{i} = cv_forest(data=data, n_estimators={args.trees + i})\n" for i in range(args.steps)
    )
    noops = "n0 = counter(x=0)\n" + "".join(
        f"n{i} = bump(counter=n{i - 1})\n" for i in range(1, args.noops)
    )
    with tempfile.TemporaryDirectory() as tmp:
        engine = Engine(Path(tmp) / ".rlam")
        started = time.perf_counter()
        cluster = LocalCluster(
            n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None
        )
        startup = time.perf_counter() - started
        dask = DaskExecutor(cluster.scheduler_address)
        local = LocalExecutor()
        try:
            _cell(engine, dask, "w = counter(x=0)", 0)  # connect, warm the workers' imports
            _cell(engine, dask, "w = cv_forest(data=data, n_estimators=10)", 0)
            local_s, local_out = _cell(engine, local, heavy, 1)
            with get_task_stream(dask.client) as stream:
                dask_s, dask_out = _cell(engine, dask, heavy, 1)
            busy = sum(
                span["stop"] - span["start"]
                for task in stream.data
                for span in task["startstops"]
                if span["action"] == "compute"
            )
            parallelism = busy / dask_s
            assert local_out == dask_out, "cluster outputs differ from local ones"
            local_n, local_chain = _cell(engine, local, noops, 2)
            dask_n, dask_chain = _cell(engine, dask, noops, 2)
            assert local_chain == dask_chain, "cluster outputs differ from local ones"
        finally:
            dask.close()
            cluster.close()
    steps = args.steps
    rows = [
        {
            "what": f"{steps} independent CV random forests",
            "local_s": local_s,
            "dask_2_workers_s": dask_s,
            "speed_up": local_s / dask_s,
            "identical_hashes": True,
            "tasks_running_at_once": parallelism,
        },
        {
            "what": f"{args.noops} dependent no-op steps",
            "local_s": local_n,
            "dask_2_workers_s": dask_n,
            "speed_up": local_n / dask_n,
            "identical_hashes": True,
        },
    ]
    overhead_ms = (dask_n - local_n) / args.noops * 1e3
    import os

    load = os.getloadavg()[0]
    print(f"load average during the run: {load:.1f} on {os.cpu_count()} cores")
    print(f"LocalCluster start-up: {startup:.1f} s (paid once per session)")
    print(f"per-step overhead of the distributed path: {overhead_ms:.1f} ms")
    write(
        "dask_executor",
        rows,
        {
            "per_step_overhead_ms": overhead_ms,
            "cluster_startup_s": startup,
            "workers": 2,
            "load_average_1min": load,
        },
    )


if __name__ == "__main__":
    main()
