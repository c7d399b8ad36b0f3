"""The paper evaluation's linear workflow in a process of its own, optionally stopped
mid-step: ``python _killed_workflow.py STORE [GATE]`` runs the first steps of the plan,
then (with GATE) a step that waits for the file GATE, for the test to SIGKILL it."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from rlam_jupyter.actions.proposal import Proposal
from rlam_jupyter.actions.registry import build_spec
from rlam_jupyter.engine import Engine
from rlam_jupyter.operations.evaluation.workflow import RUN_SEED, plan


def wait_for(gate: str) -> int:
    """Block until ``gate`` exists (after saying so beside it)."""
    Path(gate + ".started").write_text(str(os.getpid()))
    while not Path(gate).exists():
        time.sleep(0.02)
    return 1


def main(store: str, gate: str | None) -> None:
    engine = Engine(store)
    engine.registry.add(build_spec(wait_for, determinism="external"))
    run = engine.start_run("paper-eval-linear", seed=RUN_SEED)
    for intent in plan("linear")[:3]:
        proposal = Proposal(
            intent.action, dict(intent.params), dict(intent.inputs), intent.targets, "agent"
        )
        assert engine.execute(run, proposal).status == "succeeded"
    if gate is not None:
        engine.execute(run, Proposal("wait_for", {"gate": gate}, {}, ("opened",), "agent"))
    engine.end_run(run)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None)
