"""Recording overhead per step: a no-op action through the engine and the %%rlam magic,
compared with a plain function call, and the overhead inside a real scikit-learn workflow.

Run: ``python benchmarks/step_overhead.py [--steps 2000]``. Target (DESIGN.md): p50 ≤ 0.5 ms
per no-op step through the magic path (parse + check + execute + hash + journal).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from report import percentiles, write

import rlam_jupyter
from rlam_jupyter.engine import Engine
from rlam_jupyter.proposal import parse_cell


def noop(n: int = 0) -> None:
    """Does nothing: what is left is the bookkeeping."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=2000)
    args = parser.parse_args()
    rlam_jupyter.action(noop, cache=False)
    workdir = Path(tempfile.mkdtemp(prefix="rlam-bench-"))
    os.chdir(workdir)
    n = args.steps
    rows = []

    samples = []
    for i in range(n):
        t0 = time.perf_counter()
        noop(n=i)
        samples.append(time.perf_counter() - t0)
    plain = percentiles(samples)
    rows.append({"path": "plain function call", **plain})

    engine = Engine(workdir / "engine-store")
    run = engine.start_run("bench-engine", seed=1)
    samples = []
    for i in range(n):
        t0 = time.perf_counter()
        proposals = parse_cell(f"noop(n={i})", engine.registry)
        engine.execute(run, proposals[0])
        samples.append(time.perf_counter() - t0)
    engine.end_run(run)
    rows.append({"path": "engine: parse + check + execute + journal", **percentiles(samples)})

    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "rlam_jupyter")
    shell.run_line_magic("rlam", "config store=" + str(workdir / "magic-store"))
    samples = []
    for i in range(n):
        t0 = time.perf_counter()
        shell.run_cell_magic("rlam", "--quiet", f"noop(n={i})")
        samples.append(time.perf_counter() - t0)
    magic = percentiles(samples)
    rows.append({"path": "%%rlam magic (IPython dispatch included)", **magic})

    rows.append(_workflow_overhead(workdir))
    for row in rows:
        row["target"] = "≤ 0.5 ms p50" if row["path"].startswith("%%rlam") else ""
    write("step_overhead", rows, {"steps": n, "magic_p50_ms": magic["p50_ms"]})


def _workflow_overhead(workdir: Path) -> dict[str, object]:
    """Overhead on a realistic step: training a random forest (step time − body time)."""
    from rlam_jupyter.actions import registry

    engine = Engine(workdir / "workflow-store")
    body = (
        'data = load_dataset(name="breast_cancer")\n'
        "X_train, X_test, y_train, y_test = split(data=data)\n"
    )
    run = engine.start_run("bench-workflow", seed=1)
    engine.execute_all(run, parse_cell(body, engine.registry), use_cache=False)
    train = registry()["train_model"]
    overheads, bodies = [], []
    for i in range(5):
        proposal = parse_cell(
            f'm{i} = train_model(X=X_train, y=y_train, model="random_forest", n_estimators=100)',
            engine.registry,
        )[0]
        t0 = time.perf_counter()
        result = engine.execute(run, proposal, use_cache=False)
        total = time.perf_counter() - t0
        assert result.duration_ms is not None
        body_s = result.duration_ms / 1e3
        overheads.append(total - body_s)
        bodies.append(body_s)
    assert train.name == "train_model"
    stats = percentiles(overheads)
    share = 100 * sorted(overheads)[2] / sorted(bodies)[2]
    return {
        "path": f"train_model (random forest) overhead; body p50 {sorted(bodies)[2] * 1e3:.0f} ms",
        **stats,
        "overhead_pct_of_step": round(share, 2),
    }


if __name__ == "__main__":
    main()
