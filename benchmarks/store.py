"""Trace store speed: journal append cost, one-run queries at 100,000 steps, and
compaction + Parquet export of 1,000,000 steps.

Run: ``python benchmarks/store.py [--append 5000] [--query-steps 100000]
[--bulk-steps 1000000]``. Targets (issue 5): append ≤ 0.1 ms p50 per step record;
one run's steps from a 100,000-step store < 50 ms; compaction + Parquet export of
1,000,000 steps < 5 s. Synthetic records have the shape and size the engine writes
(64-hex hashes, params JSON, source text) and go through the real journal writer, so the
append figures include its Arrow batch every 1,000 lines (in the mean and p95).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pyarrow as pa
import pyarrow.ipc as ipc
from report import percentiles, write

from rlam_jupyter.store.catalog import connect
from rlam_jupyter.store.compaction import compact
from rlam_jupyter.store.journal import JournalWriter
from rlam_jupyter.store.layout import StoreLayout
from rlam_jupyter.store.parquet import export_parquet
from rlam_jupyter.store.schema import STEPS

HASH = "9f2c" * 16


def step_record(run_id: str, seq: int, status: str = "succeeded") -> dict[str, Any]:
    """A step record as the engine writes it (same fields, same sizes)."""
    return {
        "run_id": run_id,
        "step_id": f"{run_id}-{seq:06d}",
        "seq": seq,
        "action": "train_model",
        "action_version": HASH,
        "determinism": "seeded",
        "params": json.dumps({"model": "random_forest", "n_estimators": 100, "C": 1.0}),
        "inputs": json.dumps({"X": HASH, "y": HASH}),
        "input_names": json.dumps({"X": "X_train_s", "y": "y_train"}),
        "outputs": json.dumps({"result": HASH}),
        "targets": json.dumps(["model"]),
        "status": status,
        "error_type": None,
        "error_message": None,
        "traceback": None,
        "seed": 1893 + seq,
        "cache_key": HASH,
        "cached_from": None,
        "recovers": None,
        "started_at": 1_760_000_000_000_000 + seq,
        "duration_ms": 12.5,
        "env_id": HASH,
        "origin": "cell",
        "proposed_by": None,
        "cell_id": "cell-7",
        "cell_execution_count": 7,
        "cell_source_hash": HASH,
        "source_line": 3,
        "source_text": 'model = train_model(X=X_train_s, y=y_train, model="random_forest")',
        "host": "bench",
        "recorded_at": 1_760_000_000_000_000 + seq,
    }


def run_record(run_id: str, status: str) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "name": f"bench-{run_id[-4:]}",
        "seed": 42,
        "created_at": 1_760_000_000_000_000,
        "env_id": HASH,
        "status": status,
        "ended_at": 1_760_000_000_000_001 if status != "open" else None,
        "host": "bench",
    }


def bench_append(workdir: Path, n: int) -> list[dict[str, Any]]:
    rows = []
    # Warm up: the first Arrow batch imports pyarrow's JSON reader (a kernel has it already).
    warm = JournalWriter(StoreLayout(workdir / "append-warm-up"), "RWARM")
    for seq in range(1, 1001):
        warm.append("steps", step_record("RWARM", seq))
    warm.close()
    for fsync in (False, True):
        os.environ["RLAM_FSYNC"] = "1" if fsync else "0"
        writer = JournalWriter(StoreLayout(workdir / f"append-{fsync}"), "RAPPEND")
        count = n if not fsync else min(n, 1000)
        samples = []
        for seq in range(1, count + 1):
            record = step_record("RAPPEND", seq)
            t0 = time.perf_counter()
            writer.append("steps", record)
            samples.append(time.perf_counter() - t0)
        writer.close()
        label = "journal append, step record (JSONL + CRC32, written)"
        rows.append(
            {
                "measure": label + (" + fsync (RLAM_FSYNC=1)" if fsync else ""),
                **percentiles(samples),
                "target": "" if fsync else "≤ 0.1 ms p50",
            }
        )
    os.environ.pop("RLAM_FSYNC", None)
    # The alternative format, measured the same way: one Arrow IPC batch per record.
    sink = open(workdir / "append.arrows", "wb")  # noqa: SIM115 - closed below
    stream = ipc.new_stream(sink, STEPS)
    samples = []
    for seq in range(1, min(n, 2000) + 1):
        record = step_record("RAPPEND", seq)
        t0 = time.perf_counter()
        stream.write_batch(pa.RecordBatch.from_pylist([record], schema=STEPS))
        sink.flush()
        samples.append(time.perf_counter() - t0)
    stream.close()
    sink.close()
    rows.append(
        {"measure": "alternative: Arrow IPC stream, one batch per record", **percentiles(samples)}
    )
    return rows


def synthesize(store: Path, runs: int, steps_per_run: int, events: tuple[str, ...]) -> int:
    """Journals of ``runs`` closed runs, each step recorded once per status in ``events``,
    written through the real writer (checksummed lines, and its Arrow batches)."""
    records = 0
    layout = StoreLayout(store)
    for r in range(runs):
        run_id = f"01BENCH{r:019d}"
        writer = JournalWriter(layout, run_id, writer_id="W")
        writer.append("runs", {**run_record(run_id, "open"), "event_no": 1})
        event = 2
        for seq in range(1, steps_per_run + 1):
            for status in events:
                writer.append("steps", {**step_record(run_id, seq, status), "event_no": event})
                event += 1
        writer.append("runs", {**run_record(run_id, "succeeded"), "event_no": event})
        writer.close()
        records += event
    return records


def bench_query(workdir: Path, steps: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    store = workdir / "query-store"
    runs, per_run = 100, steps // 100
    synthesize(store, runs, per_run, ("accepted", "succeeded"))
    target_run = f"01BENCH{runs // 2:019d}"
    sql = "SELECT * FROM steps WHERE run_id = ? ORDER BY seq"
    rows = []

    def measure(label: str, target: str = "") -> None:
        connects, queries, both = [], [], []
        for _ in range(10):
            t0 = time.perf_counter()
            con = connect(store)
            t1 = time.perf_counter()
            result = con.execute(sql, [target_run]).fetchall()
            t2 = time.perf_counter()
            assert len(result) == per_run
            for _ in range(4):
                t3 = time.perf_counter()
                con.execute(sql, [target_run]).fetchall()
                queries.append(time.perf_counter() - t3)
            con.close()
            connects.append(t1 - t0)
            both.append(t2 - t0)
        rows.append({"measure": f"{label}: connect()", **percentiles(connects)})
        rows.append(
            {
                "measure": f"{label}: one run's {per_run} steps (open connection)",
                **percentiles(queries),
                "target": target,
            }
        )
        rows.append({"measure": f"{label}: connect() + that query", **percentiles(both)})

    measure(f"{steps:,} steps in journals only")
    t0 = time.perf_counter()
    compact(store)
    compact_s = time.perf_counter() - t0
    measure(f"{steps:,} steps compacted to Parquet", "< 50 ms")
    shutil.rmtree(store)
    return rows, {"query_store_steps": steps, "query_store_compaction_s": round(compact_s, 3)}


def bench_bulk(workdir: Path, steps: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    store = workdir / "bulk-store"
    runs = 100
    t0 = time.perf_counter()
    records = synthesize(store, runs, steps // runs, ("succeeded",))
    generated = time.perf_counter() - t0
    journal_mb = sum(p.stat().st_size for p in store.glob("journal/*/*.jsonl")) / 1e6
    # CPU seconds (all threads of this process) next to wall seconds: on a shared
    # machine the wall clock also counts other people's work.
    t0, c0 = time.perf_counter(), time.process_time()
    report = compact(store)
    compact_s, compact_cpu = time.perf_counter() - t0, time.process_time() - c0
    assert report.rows["steps"] == steps, report.rows
    t0, c0 = time.perf_counter(), time.process_time()
    summary = export_parquet(workdir / "bulk-export", store)
    export_s, export_cpu = time.perf_counter() - t0, time.process_time() - c0
    assert summary["tables"]["steps"] == steps
    rows = [
        {
            "measure": f"compaction: {steps:,} steps ({journal_mb:,.0f} MB of journal) → Parquet",
            "seconds": round(compact_s, 2),
            "cpu_seconds": round(compact_cpu, 2),
            "records_per_s": round(records / compact_s),
        },
        {
            "measure": f"export_parquet of those {steps:,} steps (from compacted Parquet)",
            "seconds": round(export_s, 2),
            "cpu_seconds": round(export_cpu, 2),
        },
        {
            "measure": "compaction + export",
            "seconds": round(compact_s + export_s, 2),
            "cpu_seconds": round(compact_cpu + export_cpu, 2),
            "target": "< 5 s",
        },
    ]
    parquet_mb = sum(p.stat().st_size for p in (store / "parquet").rglob("*.parquet")) / 1e6
    shutil.rmtree(store)
    shutil.rmtree(workdir / "bulk-export")
    return rows, {
        "bulk_steps": steps,
        "bulk_records": records,
        "bulk_journal_mb": round(journal_mb, 1),
        "bulk_parquet_mb": round(parquet_mb, 1),
        "bulk_generate_s": round(generated, 2),
        "bulk_compact_s": round(compact_s, 2),
        "bulk_export_s": round(export_s, 2),
        "bulk_compact_cpu_s": round(compact_cpu, 2),
        "bulk_export_cpu_s": round(export_cpu, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--append", type=int, default=5000)
    parser.add_argument("--query-steps", type=int, default=100_000)
    parser.add_argument("--bulk-steps", type=int, default=1_000_000)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="rlam-store-bench-"))
    try:
        rows = bench_append(workdir, args.append)
        query_rows, query_facts = bench_query(workdir, args.query_steps)
        bulk_rows, bulk_facts = bench_bulk(workdir, args.bulk_steps)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    append_p50 = rows[0]["p50_ms"]
    one_run = next(r for r in query_rows if r.get("target") == "< 50 ms")
    write(
        "store",
        rows + query_rows + bulk_rows,
        {
            "append_p50_ms": append_p50,
            "one_run_query_p50_ms": one_run["p50_ms"],
            "load_average_at_end": os.getloadavg(),
            **query_facts,
            **bulk_facts,
        },
    )


if __name__ == "__main__":
    main()
