"""4 kernel-like writers, a reader and a compactor on one store, all real processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from rlam_jupyter.store.catalog import connect

CHILD = Path(__file__).with_name("_store_child.py")
WRITERS, STEPS, RUN_SIZE = 4, 2000, 500


def test_writers_reader_and_compaction_together_lose_and_duplicate_nothing(
    store: Path, tmp_path: Path
) -> None:
    stop = tmp_path / "stop"

    def spawn(*args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, str(CHILD), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    writers = [spawn("steps", str(store), str(STEPS), str(RUN_SIZE)) for _ in range(WRITERS)]
    reader = spawn("reader", str(store), str(stop))
    compactor = spawn("compact", str(store), str(stop))
    done: dict[str, set[int]] = {}
    for writer in writers:
        out, err = writer.communicate(timeout=600)
        assert writer.returncode == 0, err
        for line in out.splitlines():
            word, *rest = line.split()
            if word == "done":
                done.setdefault(rest[0], set()).add(int(rest[1]))
    stop.touch()
    read_out, read_err = reader.communicate(timeout=120)
    compact_out, compact_err = compactor.communicate(timeout=120)
    assert reader.returncode == 0, read_err
    assert compactor.returncode == 0, compact_err

    # The reader never failed, never saw a duplicate, and never saw the store shrink.
    results = [json.loads(line) for line in read_out.splitlines()]
    assert results[-1] == {"errors": 0}, [r for r in results if "error" in r][:1]
    counts = [r["steps"] for r in results[:-1]]
    assert len(counts) > 5
    assert all(r["steps"] == r["distinct"] and r["dup_events"] == 0 for r in results[:-1])
    assert counts == sorted(counts), "a later snapshot saw fewer steps than an earlier one"
    assert json.loads(compact_out.splitlines()[-1])["passes"] > 0

    # Every step is there exactly once, with exactly its two records.
    assert sum(len(s) for s in done.values()) == WRITERS * STEPS
    con = connect(store)
    rows = con.execute(
        "SELECT run_id, seq, count(*) FILTER (WHERE status = 'succeeded'), count(*) "
        "FROM step_events GROUP BY ALL"
    ).fetchall()
    recorded = {(run_id, seq) for run_id, seq, _, _ in rows}
    assert recorded == {(run_id, seq) for run_id, seqs in done.items() for seq in seqs}
    assert all(succeeded == 1 and events == 2 for _, _, succeeded, events in rows)
    statuses = con.execute("SELECT DISTINCT status FROM runs").fetchall()
    assert statuses == [("succeeded",)]
    # Everything ended, so everything is in Parquet and no journal is left.
    assert not list((store / "journal").glob("*/*.jsonl"))
    assert con.execute("SELECT count(*) FROM journal_problems").fetchone() == (0,)
