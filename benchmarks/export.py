"""Bundle export at scale: one run of N chained steps (default 10,000), each with an output.

Run: ``python benchmarks/export.py [--steps 10000]``. Target (issue 8): exporting a run
of 10,000 steps takes < 5 s. Also measured, for context: a second export (the bundle
must be byte-identical), ``verify`` (every hash, schema and edge) and ``import`` into an
empty store. The trace is built through the real engine (journal, objects, edges).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent))

from report import write

import rlam_jupyter
from rlam_jupyter import Input
from rlam_jupyter.bundle import export, import_bundle, verify_bundle
from rlam_jupyter.engine import Engine
from rlam_jupyter.proposal import Proposal

TARGET_S = 5.0
T = TypeVar("T")


def start(value: int = 0) -> int:
    """The first value of the chain."""
    return value


def increment(value: Annotated[int, Input], by: int = 1) -> int:
    """A step whose output is the next step's input: used/generated/derived edges each step."""
    return value + by


def build_store(store: Path, steps: int) -> str:
    rlam_jupyter.action(cache=False)(start)
    rlam_jupyter.action(cache=False)(increment)
    engine = Engine(str(store))
    run = engine.start_run("bench-export", seed=1)
    engine.execute(run, Proposal("start", {"value": 0}, targets=("v",)))
    for _ in range(steps - 1):
        engine.execute(run, Proposal("increment", {"by": 1}, {"value": "v"}, ("v",)))
    engine.end_run(run)
    failed = [r for r in run.results if not r.ok]
    assert not failed, failed[0]
    return run.run_id


def timed(label: str, func: Callable[[], T], rows: list[dict[str, object]], **extra: object) -> T:
    t0 = time.perf_counter()
    result = func()
    seconds = time.perf_counter() - t0
    rows.append({"operation": label, "seconds": seconds, **extra})
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=10_000)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="rlam-bench-export-"))
    store = workdir / ".rlam"
    rows: list[dict[str, object]] = []
    t0 = time.perf_counter()
    run_id = build_store(store, args.steps)
    build_s = time.perf_counter() - t0

    first = timed(
        f"export {args.steps:,} steps",
        lambda: export(out=workdir / "a.zip", runs=[run_id], store=store),
        rows,
        target=f"< {TARGET_S:g} s",
    )
    second = timed(
        "export again", lambda: export(out=workdir / "b.zip", runs=[run_id], store=store), rows
    )
    identical = (workdir / "a.zip").read_bytes() == (workdir / "b.zip").read_bytes()
    report = timed("verify (no re-execution)", lambda: verify_bundle(workdir / "a.zip"), rows)
    timed(
        "import into an empty store", lambda: import_bundle(workdir / "a.zip", workdir / "b"), rows
    )
    for row in rows:
        row["steps"] = args.steps
    rows[0]["bundle_MiB"] = round(first.size_bytes / 2**20, 2)
    rows[0]["files"] = first.files
    export_s = float(str(rows[0]["seconds"]))
    write(
        "export",
        rows,
        {
            "steps": args.steps,
            "export_s": export_s,
            "target_s": TARGET_S,
            "meets_target": export_s < TARGET_S,
            "byte_identical": identical,
            "verify_ok": report.ok,
            "build_trace_s": round(build_s, 2),
            "second_export_s": round(float(str(rows[1]["seconds"])), 3),
        },
    )
    print(f"byte-identical across exports: {identical}; verify ok: {report.ok}")
    assert second.bundle_hash == first.bundle_hash


if __name__ == "__main__":
    main()
