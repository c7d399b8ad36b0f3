"""rlam-jupyter and PyPI ``rlam`` 0.1.0 side by side, in one process, on the same steps.

Run: ``python benchmarks/upstream.py [--steps 5000] [--runs 20] [--repeats 7] [--quick]``.
Needs ``pip install rlam==0.1.0`` (the ``bench`` extra); without it only this
package's columns are filled. Writes ``benchmarks/results/upstream.json``.
Measures: a no-op step in a tight loop (bookkeeping time and retained memory per step),
the breast-cancer workflow (bookkeeping per step, memory per run), and this package's
bookkeeping on a realistic step, training a random forest (target < 2 % of the step).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from report import write

from rlam_jupyter.operations.evaluation.side_by_side import SideBySide, run_side_by_side


def main(argv: list[str] | None = None) -> SideBySide:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=5000, help="no-op steps per side")
    parser.add_argument("--runs", type=int, default=20, help="workflow runs per side")
    parser.add_argument("--repeats", type=int, default=7, help="random-forest steps")
    parser.add_argument("--quick", action="store_true", help="500 steps, 3 runs, 3 repeats")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.runs, args.repeats = 500, 3, 3
    result = run_side_by_side(args.steps, args.runs, args.repeats)
    write("upstream", result.table(), {"raw": result.raw, "notes": result.notes})
    for note in result.notes:
        print(f"note: {note}")
    return result


if __name__ == "__main__":
    main()
