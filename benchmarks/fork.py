"""Fork from step k of a long run: the cost must not grow with k (the prefix is shared by
reference, never copied).

Run: ``python benchmarks/fork.py [--steps 10000] [--repeat 5]``. Target (DESIGN.md): < 100 ms
at k = 10,000 and flat in k. Two parents of ``--steps`` no-op steps: one that rebinds one
name at every step (``x = noop(i=...)``) and one that binds a new name at every step
(``x123 = noop(i=...)``, so k names are visible at step k: the worst case). Each is forked
at k = 10, 1,000 and 10,000 with a new ``i`` at step k and ``downstream=False`` (the fork
itself; re-running the steps after k is measured separately, per step). Two paths: the
parent in the same kernel (its index in memory) and a fresh engine reading the saved
index from the store (what another kernel, the CLI or a new session pays). ``median_ms``
is the fork (resolve, read the parent's index, bind the visible names, record and run
step k); ``close_ms`` is ending the fork run afterwards (compaction of its own records
into Parquet, independent of k; in a kernel the fork stays open as the current run).
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from report import write

from rlam_jupyter.actions.proposal import Proposal
from rlam_jupyter.actions.registry import Registry, build_spec
from rlam_jupyter.engine import Engine
from rlam_jupyter.operations.replay import fork


def noop(i: int = 0) -> int:
    """Returns its parameter: what is left is the bookkeeping."""
    return i


def build_parent(store: Path, actions: Registry, steps: int, distinct: bool) -> Engine:
    engine = Engine(store, registry=actions)
    run = engine.start_run("parent-distinct" if distinct else "parent-rebind", seed=1)
    for i in range(steps):
        target = f"x{i}" if distinct else "x"
        engine.execute(run, Proposal("noop", {"i": i}, {}, (target,)))
    engine.end_run(run)
    return engine


def trace_bytes(store: Path, run_id: str) -> int:
    """Bytes of the run's own records: its journal and, once compacted, its Parquet parts."""
    files = list((store / "journal" / run_id).glob("*.jsonl"))
    files += list((store / "parquet").glob(f"*/run_id={run_id}/*.parquet"))
    return sum(p.stat().st_size for p in files)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    actions = Registry()
    actions.add(build_spec(noop))
    workdir = Path(tempfile.mkdtemp(prefix="rlam-bench-fork-"))
    ks = sorted({10, min(1_000, args.steps), args.steps})
    rows = []
    fresh_values = itertools.count(1)
    for distinct in (False, True):
        store = workdir / ("distinct" if distinct else "rebind")
        t0 = time.perf_counter()
        parent_engine = build_parent(store, actions, args.steps, distinct)
        build_s = time.perf_counter() - t0
        parent_id = next(iter(parent_engine.runs))
        if not distinct:
            rebind_parent = parent_id
        shape = "new name per step" if distinct else "one name rebound"
        print(f"parent ({shape}): {args.steps} steps recorded in {build_s:.1f} s", flush=True)
        for path in ("same kernel (index in memory)", "fresh engine (saved index)"):
            for k in ks:
                samples, closes, fork_bytes, names = [], [], [], 0
                for _rep in range(args.repeat):
                    t0 = time.perf_counter()
                    engine = (
                        parent_engine
                        if path.startswith("same")
                        else Engine(store, registry=actions)  # knows nothing in memory
                    )
                    result = fork(
                        parent_id,
                        at=k,
                        params={"i": -next(fresh_values)},  # a new value: step k executes
                        store=store,
                        engine=engine,
                        namespace={},
                        downstream=False,
                        keep_open=True,
                    )
                    t1 = time.perf_counter()
                    engine.end_run(result.run)  # closing compacts the run into Parquet
                    closes.append(time.perf_counter() - t1)
                    samples.append(t1 - t0)
                    assert [r.status for r in result.results] == ["succeeded"], result
                    fork_bytes.append(trace_bytes(store, result.run_id))
                    names = len(result.names)
                rows.append(
                    {
                        "parent": shape,
                        "path": path,
                        "k": k,
                        "median_ms": statistics.median(samples) * 1e3,
                        "max_ms": max(samples) * 1e3,
                        "close_ms": statistics.median(closes) * 1e3,
                        "names_visible": names,
                        "fork_trace_bytes": int(statistics.median(fork_bytes)),
                        "target": "< 100 ms, flat in k",
                    }
                )
                print(rows[-1], flush=True)
    rows.append(_downstream_rate(workdir, actions, args.steps, rebind_parent))
    write(
        "fork",
        rows,
        {"steps_in_parent": args.steps, "repeat": args.repeat, "ks": ks},
    )


def _downstream_rate(
    workdir: Path, actions: Registry, steps: int, parent: str
) -> dict[str, object]:
    """Steps after k are re-proposed one by one; with unchanged inputs they are cache hits."""
    store = workdir / "rebind"
    tail = min(1_000, steps - 1)
    at = steps - tail
    t0 = time.perf_counter()
    result = fork(parent, at=at, store=store, registry=actions, namespace={})
    elapsed = time.perf_counter() - t0
    assert all(r.status == "cached" for r in result.results[1:]), result.counts
    return {
        "parent": "one name rebound",
        "path": f"fork at k={at} with downstream re-run ({tail} cached steps)",
        "k": at,
        "median_ms": elapsed * 1e3,
        "downstream_steps_per_s": round(len(result.results) / elapsed),
        "target": "",
    }


if __name__ == "__main__":
    main()
