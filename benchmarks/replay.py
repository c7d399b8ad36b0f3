"""Cached replay throughput for small artifacts.

Run: ``python benchmarks/replay.py [--steps 10000]``. Target (DESIGN.md): ≥ 5,000 steps/s.
One run of ``--steps`` no-op steps, each binding a new name to a small value
(``x123 = noop(i=123)``), is then

- replayed: every value restored from the object store, nothing executed, by a fresh
  engine reading the saved index (another kernel, the CLI) and by the engine that
  recorded it (index in memory);
- re-run with the same seed by a fresh engine: every step a cache hit (status ``cached``,
  zero action bodies executed), i.e. what a notebook re-run costs;
- verified: every step re-executed with its recorded seed and compared by hash.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from report import write

from rlam_jupyter.actions.proposal import Proposal
from rlam_jupyter.actions.registry import Registry, build_spec
from rlam_jupyter.engine import Engine
from rlam_jupyter.operations.replay import replay


def noop(i: int = 0) -> int:
    """Returns its parameter: the artifact is a few bytes of JSON."""
    return i


def proposals(steps: int) -> list[Proposal]:
    return [Proposal("noop", {"i": i}, {}, (f"x{i}",)) for i in range(steps)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=10_000)
    args = parser.parse_args()
    n = args.steps
    actions = Registry()
    actions.add(build_spec(noop))
    store = Path(tempfile.mkdtemp(prefix="rlam-bench-replay-")) / ".rlam"
    rows = []

    recorder = Engine(store, registry=actions)
    run = recorder.start_run("recorded", seed=1)
    t0 = time.perf_counter()
    for proposal in proposals(n):
        recorder.execute(run, proposal)
    record_s = time.perf_counter() - t0
    recorder.end_run(run)
    rows.append(_row("record (execute + hash + store + journal)", n, record_s))

    for label, engine in (
        ("replay, fresh engine (saved index, objects from disk)", None),
        ("replay, recording engine (index in memory)", recorder),
    ):
        namespace: dict[str, object] = {}
        t0 = time.perf_counter()
        report = replay(
            run.run_id, store=store, registry=actions, engine=engine, namespace=namespace
        )
        elapsed = time.perf_counter() - t0
        assert report.ok
        assert len(namespace) == n
        assert namespace[f"x{n - 1}"] == n - 1
        rows.append(_row(label, n, elapsed))

    rerun_engine = Engine(store, registry=actions)
    rerun = rerun_engine.start_run("re-run", seed=1)
    t0 = time.perf_counter()
    statuses = {rerun_engine.execute(rerun, p).status for p in proposals(n)}
    elapsed = time.perf_counter() - t0
    rerun_engine.end_run(rerun)
    assert statuses == {"cached"}
    assert rerun_engine.executions == 0
    rows.append(_row("re-run, same seed, fresh engine: all cached, 0 executions", n, elapsed))

    t0 = time.perf_counter()
    verified = replay(run.run_id, verify=True, store=store, registry=actions, namespace={})
    elapsed = time.perf_counter() - t0
    assert verified.counts == {"identical": n}, verified.counts
    rows.append(_row("replay --verify (re-execute and compare hashes)", n, elapsed))
    write("replay", rows, {"steps": n, "store": str(store)})


def _row(label: str, steps: int, seconds: float) -> dict[str, object]:
    return {
        "what": label,
        "steps": steps,
        "seconds": round(seconds, 3),
        "steps_per_s": round(steps / seconds),
        "us_per_step": round(seconds / steps * 1e6, 1),
        "target": "≥ 5,000 steps/s" if label.startswith(("replay,", "re-run")) else "",
    }


if __name__ == "__main__":
    main()
