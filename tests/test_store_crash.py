"""kill -9 a kernel-like process at random moments: no step whose call returned is lost."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from rlam_jupyter.store.catalog import connect
from rlam_jupyter.store.compaction import compact

CHILD = Path(__file__).with_name("_store_child.py")


def run_and_kill(store: Path, delay: float) -> list[str]:
    """Start a writer, SIGKILL it ``delay`` seconds after its first completed step,
    and return every line it printed (the pipe is drained all along, so the writer
    never waits on it and the kill lands at a random point of a step)."""
    child = subprocess.Popen(
        [sys.executable, str(CHILD), "steps", str(store), "1000000"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    lines: list[str] = []
    first_done = threading.Event()

    def drain() -> None:
        assert child.stdout is not None
        for line in child.stdout:
            lines.append(line.strip())
            if line.startswith("done"):
                first_done.set()

    reader = threading.Thread(target=drain)
    reader.start()
    assert first_done.wait(60), f"writer never completed a step: {lines}"
    time.sleep(delay)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    reader.join(10)
    assert child.returncode == -signal.SIGKILL
    return lines


def test_twenty_kills_lose_no_completed_step_and_report_torn_tails(store: Path) -> None:
    rng = random.Random(5)
    completed: dict[str, set[int]] = {}
    for kill in range(20):
        for line in run_and_kill(store, rng.uniform(0.0, 0.25)):
            word, *rest = line.split()
            if word == "done":
                completed.setdefault(rest[0], set()).add(int(rest[1]))
        if kill % 5 == 4:
            compact(store, include_open=True)  # some kills land on half-compacted runs
        con = connect(store)
        for run_id, seqs in completed.items():
            rows = con.execute(
                "SELECT seq, count(*) FROM step_events WHERE run_id = ? AND status = 'succeeded' "
                "GROUP BY seq",
                [run_id],
            ).fetchall()
            recorded = dict(rows)
            assert seqs <= set(recorded), f"kill {kill}: lost steps {seqs - set(recorded)}"
            assert all(recorded[s] == 1 for s in seqs), f"kill {kill}: duplicated steps"
        total, distinct = con.execute(
            "SELECT count(*), count(DISTINCT step_id) FROM steps"
        ).fetchone() or (0, 0)
        assert total == distinct
        torn_files = {
            str(p)
            for p in (store / "journal").glob("*/*.jsonl")
            if p.stat().st_size and not p.read_bytes().endswith(b"\n")
        }
        reported = {
            row[0]
            for row in con.execute(
                "SELECT file FROM journal_problems WHERE problem LIKE 'torn%'"
            ).fetchall()
        }
        assert torn_files <= reported
        con.close()
    assert len(completed) == 20
    assert sum(len(s) for s in completed.values()) > 20
