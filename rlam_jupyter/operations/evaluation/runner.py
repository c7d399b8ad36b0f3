"""Run every mode × experiment, summarise, and hand back rows ready to print or plot."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlam_jupyter.operations.evaluation.metrics import ModeSummary, Repetition, combine, summarise
from rlam_jupyter.operations.evaluation.modes import (
    Mode,
    NaiveLamMode,
    RlamMode,
    ScriptMode,
    UpstreamMode,
    upstream_available,
)
from rlam_jupyter.operations.evaluation.workflow import (
    EXPERIMENTS,
    Experiment,
    Intent,
    ScriptedStandIn,
    StandIn,
)

MODES = ("script", "naive_lam", "rlam", "upstream")
UPSTREAM_HINT = "pip install rlam==0.1.0"


@dataclass
class Evaluation:
    """Everything one evaluation measured."""

    n: int
    rows: list[ModeSummary]
    repetitions: list[Repetition]
    notes: list[str]

    def table(self) -> list[dict[str, Any]]:
        return [s.as_row() for s in self.rows]

    def to_json(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "rows": self.table(),
            "notes": self.notes,
            "summary": {
                s.mode: {
                    "reproducibility_success": s.reproducibility_success,
                    "trace_completeness": s.trace_completeness,
                    "failure_visibility": s.failure_visibility,
                    "wall_ms": s.wall_ms,
                    "overhead_vs_script": s.overhead_vs_script,
                }
                for s in self.rows
                if s.experiment == "all"
            },
        }


def fresh_global_rngs() -> None:
    """Reseed the global random sources from the OS, as a fresh process would find them.

    Without this, one mode leaks its random state into the next: the engine pins
    ``numpy.random``'s global seed, so a naive snippet run right after an ``rlam`` step
    would be reproducible by accident.
    """
    import random

    import numpy as np

    random.seed()
    np.random.seed()


def build_modes(
    names: Sequence[str],
    stand_in_factory: Callable[[Sequence[Intent]], StandIn] = ScriptedStandIn,
    *,
    pin_seeds: bool = True,
    before_audit: Callable[[Path], None] | None = None,
) -> tuple[list[Mode], list[str]]:
    """The modes to compare, and notes on any that cannot run here (upstream not installed)."""
    notes: list[str] = []
    built: list[Mode] = []
    for name in names:
        if name == "script":
            built.append(ScriptMode())
        elif name == "naive_lam":
            built.append(NaiveLamMode(stand_in_factory))
        elif name == "rlam":
            built.append(RlamMode(stand_in_factory, pin_seeds=pin_seeds, before_audit=before_audit))
        elif name == "upstream":
            if upstream_available():
                built.append(UpstreamMode(stand_in_factory))
            else:
                notes.append(f"upstream rlam 0.1.0 is not installed: `{UPSTREAM_HINT}` adds it")
        else:
            raise ValueError(f"unknown mode {name!r}; choose from {', '.join(MODES)}")
    return built, notes


def run_evaluation(
    n: int = 20,
    *,
    modes: Sequence[str] = MODES,
    experiments: Sequence[Experiment] = EXPERIMENTS,
    stand_in_factory: Callable[[Sequence[Intent]], StandIn] = ScriptedStandIn,
    pin_seeds: bool = True,
    before_audit: Callable[[Path], None] | None = None,
    workdir: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> Evaluation:
    """Run every mode × experiment once as the reference and ``n`` times more; summarise.

    Repetitions are interleaved (mode by mode inside each round) so that a slow spell of
    the machine hits every mode alike; one untimed warm-up round comes first.
    ``pin_seeds=False`` disables the engine's seed derivation in the ``rlam`` mode;
    ``before_audit(store)`` runs on each ``rlam`` store before the metrics read it.
    """
    built, notes = build_modes(
        modes, stand_in_factory, pin_seeds=pin_seeds, before_audit=before_audit
    )
    root = workdir or Path(tempfile.mkdtemp(prefix="rlam-paper-eval-"))
    for mode in built:
        warmup = root / "warmup" / mode.name
        warmup.mkdir(parents=True, exist_ok=True)
        mode.repeat(experiments[0], -1, warmup)
    reps: dict[tuple[str, str], list[Repetition]] = {}
    for index in range(n + 1):
        for experiment in experiments:
            for mode in built:
                folder = root / mode.name / experiment / str(index)
                folder.mkdir(parents=True, exist_ok=True)
                fresh_global_rngs()
                reps.setdefault((mode.name, experiment), []).append(
                    mode.repeat(experiment, index, folder)
                )
        if progress:
            progress(f"round {index + 1}/{n + 1} done")
    rows: list[ModeSummary] = []
    for mode in built:
        per_mode = [summarise(reps[(mode.name, e)]) for e in experiments]
        rows.extend(per_mode)
        rows.append(combine(per_mode, [r for e in experiments for r in reps[(mode.name, e)]]))
    script = {row.experiment: row.wall_ms for row in rows if row.mode == "script"}
    for row in rows:
        if row.mode != "script" and script.get(row.experiment):
            row.overhead_vs_script = row.wall_ms / script[row.experiment] - 1
    if not pin_seeds:
        notes.append("rlam ran with seed pinning disabled (fresh OS entropy per step)")
    return Evaluation(n, rows, [r for group in reps.values() for r in group], notes)
