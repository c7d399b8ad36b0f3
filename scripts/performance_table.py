"""Regenerate the README's "Performance" section from ``benchmarks/results/*.json``.

Run: ``python scripts/performance_table.py`` (rewrites the text between
``<!-- perf:start -->`` and ``<!-- perf:end -->``), or ``--check`` to exit 1 when the
README is out of date. The numbers are never typed by hand: rerun a benchmark, then
this script.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
README = ROOT / "README.md"
START, END = "<!-- perf:start -->", "<!-- perf:end -->"

SECTIONS: dict[str, tuple[str, str]] = {
    "paper_eval": (
        "Paper evaluation (script vs naive LAM vs R-LAM, `benchmarks/paper_eval.py`)",
        "Reproducibility success = share of re-runs with the reference run's output hashes; "
        "trace completeness = share of proposals, decisions, executions and failures found "
        "in what the mode kept; failure visibility = share of injected failures kept with "
        "type and message; wall time = median per run; overhead against the script.",
    ),
    "upstream": (
        "Side by side with upstream `rlam` 0.1.0 (`benchmarks/upstream.py`)",
        "Same steps in one process; bookkeeping = step time minus the step body's own time; "
        "memory = bytes still allocated (tracemalloc) after the steps.",
    ),
    "step_overhead": (
        "Recording overhead per step (`benchmarks/step_overhead.py`)",
        "Realistic rows: overhead = the step's wall time minus its body's own time; "
        "plain_pickle = `pickle.dumps` of the same forest trained beside it, what keeping "
        "the model costs any tool; content_address = hashing it as the engine does "
        "(canonical pickle + blake3, nothing written), what proving identical outputs by "
        "hash costs: the floors under the overhead column.",
    ),
    "mcp": (
        "MCP tool-call round trip (`benchmarks/mcp.py`)",
        "One no-op tool call through the SDK's own client, `rlam mcp` beside a bare server on "
        "the same SDK (the floor), all rows interleaved; extra = ours − floor on the same "
        "transport and protocol revision (target ≤ 1 ms p50); the in-process rows are the "
        "same call without SDK and transport: where our part of the extra goes.",
    ),
    "startup": (
        "Start-up of whole processes (`benchmarks/startup.py`)",
        "Median wall time of a fresh interpreter doing one thing, beside `python -c pass`; "
        "heavy = which of DuckDB, pandas, pyarrow, scikit-learn and IPython it loaded.",
    ),
}
"""Known benchmarks first, in this order, with a title and a one-line reading guide."""


def render(results: Path = RESULTS) -> str:
    """The Markdown of the section body, from every results file."""
    files = {p.stem: json.loads(p.read_text()) for p in sorted(results.glob("*.json"))}
    if not files:
        return "_No benchmark results yet: run the scripts in `benchmarks/`._\n"
    order = [n for n in SECTIONS if n in files] + [n for n in files if n not in SECTIONS]
    machine = next(iter(files.values())).get("machine", {})
    described = (
        f"{machine.get('cpu', 'unknown CPU')}, {machine.get('cores', '?')} cores, "
        f"Python {machine.get('python', '?')}, {machine.get('platform', '?')}"
    )
    parts = [
        f"Measured on one machine ({described}) unless a section says otherwise, shared "
        "with other work while it ran; "
        "regenerate with `python scripts/performance_table.py` after rerunning a benchmark. "
        "Ratios are the figures to compare across machines.\n"
    ]
    for name in order:
        data = files[name]
        title, guide = SECTIONS.get(name, (f"`{name}`", ""))
        rows = data.get("rows", [])
        if name == "paper_eval":
            rows = [r for r in rows if r.get("experiment") == "all"] + [
                r for r in rows if r.get("experiment") != "all"
            ]
        extra = f" N = {data['n']} re-runs." if "n" in data else ""
        own = data.get("machine", {})
        if own.get("cpu") != machine.get("cpu"):
            extra += f" Measured on another machine: {own.get('cpu', 'unknown CPU')}."
        parts.append(f"### {title}\n")
        if guide or extra:
            parts.append(f"{guide}{extra}".strip() + "\n")
        parts.append(table(rows))
        notes = data.get("notes") or []
        parts += [f"- {note}" for note in notes]
        if notes:
            parts.append("")
    return "\n".join(parts).rstrip() + "\n"


def table(rows: list[dict[str, Any]]) -> str:
    """Rows of dicts as a Markdown table."""
    if not rows:
        return "_no rows_\n"
    columns = list(dict.fromkeys(key for row in rows for key in row))
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(c)) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value).replace("|", "\\|")


def updated_readme(readme: str, body: str) -> str:
    """The README with the section body replaced (the markers must be there)."""
    if START not in readme or END not in readme:
        raise SystemExit(f"README.md lacks the markers {START} / {END} under '## Performance'")
    head, rest = readme.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{body}{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 if README.md is stale")
    args = parser.parse_args(argv)
    current = README.read_text()
    new = updated_readme(current, render())
    if args.check:
        if new != current:
            print("README.md Performance section is out of date: run scripts/performance_table.py")
            return 1
        return 0
    README.write_text(new)
    print(f"updated {README}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
