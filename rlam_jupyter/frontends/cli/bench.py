"""``rlam bench``: the quick versions of the paper evaluation and of the side-by-side
comparison with upstream ``rlam``, run on this machine, printed as tables.

The full versions (N = 20, figures, JSON for the README) live in ``benchmarks/``.
"""

from __future__ import annotations

import argparse
import platform
import sys
from collections.abc import Sequence
from typing import Any

from rlam_jupyter.frontends.cli.output import EXIT_OK, EXIT_USAGE, emit

PARTS = ("paper", "upstream")


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "bench",
        parents=[common],
        help="run the quick paper evaluation and the comparison with upstream rlam",
        description=__doc__,
    )
    parser.add_argument("--n", type=int, default=3, help="re-runs per mode and experiment")
    parser.add_argument("--only", choices=PARTS, default=None, help="run only one of the two parts")
    parser.set_defaults(handler=run_bench)


def run_bench(args: argparse.Namespace) -> int:
    """Run the chosen parts and print (or emit as JSON) their tables."""
    # lazy: the engine and DuckDB, for rlam --help start-up
    from rlam_jupyter.operations.evaluation import UPSTREAM_HINT, run_evaluation
    from rlam_jupyter.operations.evaluation.modes import upstream_available  # lazy: engine, DuckDB

    if args.n < 1:
        print("rlam bench: --n must be at least 1 (3 is the quick default)", file=sys.stderr)
        return EXIT_USAGE
    parts = [args.only] if args.only else list(PARTS)
    data: dict[str, Any] = {"machine": _machine()}
    text: list[str] = [f"machine: {_machine_line()}"]
    if not upstream_available():
        message = f"upstream rlam 0.1.0 is not installed; `{UPSTREAM_HINT}` adds it"
        text.append(f"note: {message}")
        data["notes"] = [message]
    if "paper" in parts:
        progress = None if args.json else (lambda line: print(line, file=sys.stderr))
        evaluation = run_evaluation(args.n, progress=progress)
        data["paper"] = evaluation.to_json()
        text += ["", f"Paper evaluation ({args.n} re-runs per mode and experiment)"]
        text += format_table(evaluation.table())
    if "upstream" in parts:
        # lazy: the engine and DuckDB, for rlam --help start-up
        from rlam_jupyter.operations.evaluation.side_by_side import run_side_by_side

        side = run_side_by_side(noop_steps=500, workflow_runs=3, realistic_repeats=3)
        data["upstream"] = {"rows": side.table(), "raw": side.raw}
        text += ["", "Side by side with upstream rlam (quick)"]
        text += format_table(side.table())
    emit(args, data, "\n".join(text))
    return EXIT_OK


def format_table(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Rows of dicts as aligned text lines."""
    if not rows:
        return ["(no rows)"]
    columns = list(dict.fromkeys(key for row in rows for key in row))
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return lines


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _machine() -> dict[str, Any]:
    import os

    # lazy: importlib.metadata & co. (~30 ms), for rlam --help
    from rlam_jupyter.values.fingerprint import cpu_model

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cores": os.cpu_count(),
        "cpu": cpu_model(),
    }


def _machine_line() -> str:
    m = _machine()
    return f"{m['cpu']}, {m['cores']} cores, Python {m['python']}, {m['platform']}"
