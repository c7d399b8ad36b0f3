"""Start-up: how long a whole process takes to import the package or answer a command.

Run: ``python benchmarks/startup.py [--repeat 15]``. Each row is a fresh interpreter,
timed end to end (median of ``--repeat`` runs, interleaved so a noisy neighbour hits
every row alike), beside ``python -c pass`` as the floor. Targets (issue "One-way
layers"): ``rlam --help`` ≤ 150 ms, ``rlam runs`` on the quickstart's store ≤ 500 ms,
``import rlam_jupyter`` ≤ 100 ms leaving DuckDB, pandas, pyarrow, scikit-learn and
IPython unloaded. The "heavy" column lists which of those the process loaded.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from report import write

HEAVY = ("duckdb", "pandas", "pyarrow", "sklearn", "IPython")
PROBE = (
    "import atexit, sys\n"
    "atexit.register(lambda: sys.stderr.write('\\nHEAVY:' + ','.join("
    f"m for m in {HEAVY!r} if m in sys.modules)))\n"
)
"""Prepended to each command: reports, at exit, which heavy libraries it loaded."""


def quickstart_store(folder: Path) -> Path:
    """A store holding what the quickstart records: a few runs of the built-in workflow."""
    code = f"""
import rlam_jupyter as rlam
from rlam_jupyter.actions.proposal import Proposal
engine = rlam.Engine({str(folder)!r})
for seed in (0, 1):
    run = engine.start_run(f"quickstart-{{seed}}", seed)
    engine.execute(run, Proposal("load_dataset", {{"name": "breast_cancer"}}, targets=("data",)))
    engine.execute(
        run,
        Proposal("split", {{"target": "target"}}, {{"data": "data"}},
                 ("X_train", "X_test", "y_train", "y_test")),
    )
    engine.end_run(run)
"""
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    return folder


def commands(store: Path) -> dict[str, tuple[list[str], str]]:
    """Row name → (argv after ``python -c PROBE+code``, target)."""
    cli = "from rlam_jupyter.frontends.cli import main; sys.exit(main({}))"
    return {
        "python -c pass (floor)": (["pass"], ""),
        "import rlam_jupyter": (["import rlam_jupyter"], "≤ 100 ms"),
        "rlam --help": ([cli.format("['--help']")], "≤ 150 ms"),
        "rlam runs (quickstart store)": (
            [cli.format(f"['runs', '--store', {str(store)!r}]")],
            "≤ 500 ms",
        ),
    }


def time_once(code: str) -> tuple[float, str]:
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", PROBE + code], capture_output=True, text=True, check=False
    )
    elapsed = time.perf_counter() - started
    if result.returncode not in (0, 2):  # `--help` exits 0, a bare `rlam` 2
        raise RuntimeError(f"{code!r} failed:\n{result.stderr}")
    heavy = result.stderr.rsplit("HEAVY:", 1)[-1].strip()
    return elapsed, heavy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        table = commands(quickstart_store(Path(tmp) / ".rlam"))
        samples: dict[str, list[float]] = {name: [] for name in table}
        loaded: dict[str, str] = {}
        for _ in range(args.repeat):
            for name, (argv, _target) in table.items():
                elapsed, heavy = time_once(argv[0])
                samples[name].append(elapsed)
                loaded[name] = heavy
    floor = statistics.median(samples["python -c pass (floor)"])
    rows = [
        {
            "what": name,
            "median_ms": round(statistics.median(times) * 1e3, 1),
            "above_floor_ms": round((statistics.median(times) - floor) * 1e3, 1),
            "heavy": loaded[name] or "none",
            "target": table[name][1],
        }
        for name, times in samples.items()
    ]
    write("startup", rows, {"repeat": args.repeat})
    print(json.dumps({r["what"]: r["median_ms"] for r in rows}))


if __name__ == "__main__":
    main()
