"""Recording overhead per step: a no-op action through the engine and the %%rlam magic,
compared with a plain function call, and the overhead inside a real scikit-learn workflow.

Run: ``python benchmarks/step_overhead.py [--steps 2000] [--repeats 9]``. Targets: p50 ≤ 0.5 ms
per no-op step through the magic path (parse + check + execute + hash + journal, DESIGN.md);
under 2 % of a realistic step (training a random forest), shown beside what plain
``pickle.dumps`` of the same model costs and what hashing it as the engine does costs.
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
from rlam_jupyter.actions.proposal import parse_cell
from rlam_jupyter.engine import Engine


def noop(n: int = 0) -> None:
    """Does nothing: what is left is the bookkeeping."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=9, help="random-forest steps per table")
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

    for row in rows:
        row["target"] = "≤ 0.5 ms p50" if row["path"].startswith("%%rlam") else ""
    for row in _realistic_rows(workdir, args.repeats):
        rows.append({**row, "target": "< 2 % of the step"})
    write("step_overhead", rows, {"steps": n, "magic_p50_ms": magic["p50_ms"]})


def _realistic_rows(workdir: Path, repeats: int) -> list[dict[str, object]]:
    """Overhead on realistic steps: training a random forest on the paper's data and on
    synthetic tables of growing size (where the share falls under 2 %), each beside the
    two floors: plain ``pickle.dumps`` of the model and hashing it as the engine does."""
    from rlam_jupyter.operations.evaluation.side_by_side import realistic_step

    rows = []
    for size in (None, 2_000, 5_000, 20_000):
        measured = realistic_step(repeats, workdir, rows=size)
        rows.append(
            {
                "path": (
                    f"train_model (random forest, {measured['data']}, "
                    f"{measured['train_rows']} training rows); body p50 "
                    f"{measured['body_ms']:.0f} ms"
                ),
                "p50_ms": measured["overhead_ms"],
                "overhead_pct_of_step": round(measured["overhead_pct"], 2),
                "plain_pickle_ms": round(measured["plain_pickle_ms"], 3),
                "plain_pickle_pct_of_step": round(measured["plain_pickle_pct"], 2),
                "content_address_ms": round(measured["content_address_ms"], 3),
                "content_address_pct_of_step": round(measured["content_address_pct"], 2),
                "n": repeats,
            }
        )
    return rows


if __name__ == "__main__":
    main()
