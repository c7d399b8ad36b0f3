"""The R-LAM paper's evaluation: script vs naive LAM vs R-LAM (vs upstream rlam 0.1.0).

Run: ``python benchmarks/paper_eval.py [--n 20] [--quick] [--no-seed-pinning] [--llm]``.
Writes ``benchmarks/results/paper_eval.json`` and ``benchmarks/results/paper_eval.png``.
``--llm`` puts a real OpenAI-compatible endpoint in the LLM's seat
(``RLAM_EVAL_BASE_URL``, ``RLAM_EVAL_MODEL``, ``OPENAI_API_KEY``); the default is the
offline, deterministic stand-in. How each metric is computed: ``rlam_jupyter.operations.evaluation``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from report import RESULTS, write

from rlam_jupyter.operations.evaluation import MODES, Evaluation, run_evaluation
from rlam_jupyter.operations.evaluation.workflow import EXPERIMENTS, ScriptedStandIn

MODE_LABELS = {
    "script": "script",
    "naive_lam": "naive LAM",
    "rlam": "R-LAM (rlam-jupyter)",
    "upstream": "upstream rlam 0.1.0",
}
METRICS = [
    ("reproducibility", "reproducibility success"),
    ("trace completeness", "trace completeness"),
    ("failure visibility", "failure visibility"),
]


def figure(payload: dict[str, Any], path: Path) -> Path:
    """Two panels: the three metrics per mode, and median wall time per experiment."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = payload["rows"]
    overall = [r for r in rows if r["experiment"] == "all"]
    modes = [r["mode"] for r in overall]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.4))
    width = 0.8 / len(METRICS)
    for k, (key, label) in enumerate(METRICS):
        values = [r[key] if r[key] is not None else 0.0 for r in overall]
        xs = [i + (k - 1) * width for i in range(len(modes))]
        bars = left.bar(xs, values, width, label=label)
        left.bar_label(bars, labels=[f"{v:.2f}" for v in values], fontsize=7, padding=1)
    left.set_xticks(range(len(modes)), [MODE_LABELS.get(m, m) for m in modes], fontsize=8)
    left.set_ylim(0, 1.3)
    left.set_ylabel("fraction")
    left.set_title(f"Paper metrics (all experiments, {payload['n']} re-runs each)")
    left.legend(fontsize=8, loc="upper center", ncol=3)
    experiments = [e for e in EXPERIMENTS if any(r["experiment"] == e for r in rows)]
    width = 0.8 / max(1, len(modes))
    for k, mode in enumerate(modes):
        walls = [
            next(r["wall ms"] for r in rows if r["mode"] == mode and r["experiment"] == e)
            for e in experiments
        ]
        xs = [i + (k - (len(modes) - 1) / 2) * width for i in range(len(experiments))]
        right.bar(xs, walls, width, label=MODE_LABELS.get(mode, mode))
    right.set_xticks(range(len(experiments)), experiments)
    right.set_ylabel("median wall time per run (ms)")
    right.set_title("Wall time (lower is better)")
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> Evaluation:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=20, help="re-runs per mode and experiment")
    parser.add_argument("--quick", action="store_true", help="N = 3 (what CI runs)")
    parser.add_argument("--modes", nargs="*", default=list(MODES), choices=MODES)
    parser.add_argument(
        "--no-seed-pinning",
        action="store_true",
        help="disable the engine's seed derivation in the R-LAM mode (shows RS is measured)",
    )
    parser.add_argument(
        "--llm", action="store_true", help="use an OpenAI-compatible endpoint as the LLM"
    )
    parser.add_argument("--name", default="paper_eval", help="results file name")
    args = parser.parse_args(argv)
    n = 3 if args.quick else args.n
    factory: Any = ScriptedStandIn
    if args.llm:
        from rlam_jupyter.operations.evaluation.llm import OpenAIStandIn

        factory = OpenAIStandIn
    t0 = time.perf_counter()
    evaluation = run_evaluation(
        n,
        modes=args.modes,
        stand_in_factory=factory,
        pin_seeds=not args.no_seed_pinning,
        progress=lambda line: print(line, file=sys.stderr),
    )
    elapsed = time.perf_counter() - t0
    payload = evaluation.to_json()
    extra = {
        "n": n,
        "summary": payload["summary"],
        "notes": evaluation.notes,
        "stand_in": "openai" if args.llm else "scripted",
        "seed_pinning": not args.no_seed_pinning,
        "elapsed_s": round(elapsed, 1),
    }
    write(args.name, payload["rows"], extra)
    for note in evaluation.notes:
        print(f"note: {note}")
    png = figure({"n": n, "rows": payload["rows"]}, RESULTS / f"{args.name}.png")
    print(f"figure: {png}\nelapsed: {elapsed:.1f} s")
    return evaluation


if __name__ == "__main__":
    main()
