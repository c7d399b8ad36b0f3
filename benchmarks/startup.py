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
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from report import write

ROOT = Path(__file__).resolve().parent.parent

HEAVY = ("duckdb", "pandas", "pyarrow", "sklearn", "IPython")
PROBE = (
    "import atexit, sys\n"
    "atexit.register(lambda: sys.stderr.write('\\nHEAVY:' + ','.join("
    f"m for m in {HEAVY!r} if m in sys.modules)))\n"
)
"""Prepended to each command: reports, at exit, which heavy libraries it loaded."""


def quickstart_store(folder: Path) -> Path:
    """The store the README's demo leaves: ``notebooks/quickstart.ipynb`` run headlessly in
    a copy of the notebook's folder (its kernel ends its runs, as a user's does)."""
    from rlam_jupyter.frontends.demo import run_notebook

    folder.mkdir(parents=True, exist_ok=True)
    notebook = folder / "quickstart.ipynb"
    shutil.copy(ROOT / "notebooks" / "quickstart.ipynb", notebook)
    run_notebook(notebook)
    return folder / ".rlam"


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
        table = commands(quickstart_store(Path(tmp)))
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
