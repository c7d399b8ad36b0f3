"""A separate process for the store's crash and concurrency tests (run as a script).

python tests/_store_child.py steps STORE N [RUN_SIZE]   kernel-like writer: N no-op
    steps through the real engine, a new run every RUN_SIZE steps; prints
    ``run <id>`` when a run starts and ``done <run id> <seq>`` after each step's
    call returned (flushed, so a parent reading the pipe knows what completed)
python tests/_store_child.py reader STORE STOPFILE      queries ``steps`` in a loop
python tests/_store_child.py compact STORE STOPFILE     compacts in a loop
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from pathlib import Path

from rlam_jupyter.actions.registry import Registry, build_spec


def noop(x: int) -> int:
    """Return x unchanged (the cheapest recorded step)."""
    return x


def steps(store: str, n: int, run_size: int) -> None:
    from rlam_jupyter.actions.proposal import Proposal
    from rlam_jupyter.engine import Engine

    actions = Registry()
    actions.add(build_spec(noop))
    engine = Engine(store, registry=actions)
    run = None
    for i in range(n):
        if run is None or i % run_size == 0:
            if run is not None:
                engine.end_run(run)
                print(f"end {run.run_id}", flush=True)
            run = engine.start_run(f"writer-{i}", seed=1)
            print(f"run {run.run_id}", flush=True)
        result = engine.execute(run, Proposal("noop", {"x": i}), use_cache=False)
        if result.status != "succeeded":
            raise SystemExit(f"step {result.seq} {result.status}: {result.error}")
        print(f"done {run.run_id} {result.seq}", flush=True)
    if run is not None:
        engine.end_run(run)
        print(f"end {run.run_id}", flush=True)


def reader(store: str, stop: str) -> None:
    """Query until told to stop; print one JSON line per query and the failures."""
    from rlam_jupyter.store.catalog import connect

    errors = 0
    while not Path(stop).exists():
        try:
            con = connect(store)
            total, distinct = con.execute(
                "SELECT count(*), count(DISTINCT step_id) FROM steps"
            ).fetchone() or (0, 0)
            duplicates = con.execute(
                "SELECT count(*) - count(DISTINCT (step_id, status)) FROM step_events"
            ).fetchone()
            con.close()
            print(
                json.dumps({"steps": total, "distinct": distinct, "dup_events": duplicates[0]}),
                flush=True,
            )
        except Exception:
            errors += 1
            print(json.dumps({"error": traceback.format_exc()}), flush=True)
        time.sleep(0.01)
    print(json.dumps({"errors": errors}), flush=True)


def compactor(store: str, stop: str) -> None:
    from rlam_jupyter.store.compaction import compact

    passes = 0
    while not Path(stop).exists():
        compact(store, include_open=True)
        passes += 1
        time.sleep(0.05)
    compact(store)
    print(json.dumps({"passes": passes}), flush=True)


if __name__ == "__main__":
    mode, store_arg, *rest = sys.argv[1:]
    if mode == "steps":
        steps(store_arg, int(rest[0]), int(rest[1]) if len(rest) > 1 else 1 << 62)
    elif mode == "reader":
        reader(store_arg, rest[0])
    elif mode == "compact":
        compactor(store_arg, rest[0])
    else:
        raise SystemExit(f"unknown mode {mode}")
