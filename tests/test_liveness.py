"""A kernel that dies mid-step is visible: its step reads as interrupted, the audit counts
it, ``rlam repair`` records it; a kernel that shuts down cleanly ends its runs.

Every kernel here is a real ipykernel (jupyter_client / nbclient), killed with SIGKILL
where the point is a crash.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from jupyter_client.manager import KernelManager

from rlam_jupyter.audit import audit
from rlam_jupyter.server import queries
from rlam_jupyter.server.snapshots import SnapshotCache
from rlam_jupyter.store.catalog import connect
from rlam_jupyter.store.compaction import compact
from rlam_jupyter.store.layout import StoreLayout
from rlam_jupyter.store.repair import repair

ROOT = Path(__file__).resolve().parent.parent

ACTIONS = """
import os, time, pathlib
from typing import Annotated
import rlam_jupyter as rlam
from rlam_jupyter.actions import Input

@rlam.action
def make(n: int) -> int:
    return n * 2

@rlam.action
def grow(x: Annotated[int, Input]) -> int:
    return x + 1

@rlam.action(determinism="external")
def wait_for(gate: str, x: Annotated[int, Input]) -> int:
    pathlib.Path(gate + ".started").write_text(str(os.getpid()))
    while not pathlib.Path(gate).exists():
        time.sleep(0.02)
    return x + 1
"""


@pytest.fixture
def kernel_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A store for kernels started by the test; they inherit this worktree's code."""
    store = tmp_path / "store"
    monkeypatch.setenv("RLAM_HOME", str(store))
    monkeypatch.setenv("RLAM_AUTO_COMPACT", "0")  # keep journals to look at their lines
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    return store


@pytest.fixture
def kernel(kernel_env: Path, tmp_path: Path) -> Iterator[Any]:
    manager = KernelManager(kernel_name="python3")
    manager.start_kernel(cwd=str(tmp_path))
    client = manager.client()
    client.start_channels()
    client.wait_for_ready(timeout=60)
    try:
        yield manager, client
    finally:
        client.stop_channels()
        if manager.is_alive():
            manager.shutdown_kernel(now=True)
        manager.cleanup_resources()


def _run(client: Any, code: str) -> None:
    reply = client.execute_interactive(code, timeout=120)
    assert reply["content"]["status"] == "ok", reply["content"]


def _wait_for(path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def _statuses(store: Path) -> tuple[list[tuple[str, str]], list[tuple[int, str]]]:
    con = connect(store)
    try:
        runs = con.execute("SELECT name, status FROM runs ORDER BY name").fetchall()
        steps = con.execute("SELECT seq, status FROM steps ORDER BY seq").fetchall()
    finally:
        con.close()
    return runs, steps


def _start_blocked_step(client: Any, gate: Path) -> int:
    """Two steps done, the third waiting on ``gate``; returns the kernel's pid."""
    _run(client, "%load_ext rlam_jupyter\n" + ACTIONS)
    _run(client, "%%rlam --run doomed --seed 7\na = make(n=1)\nb = grow(x=a)")
    client.execute(f"%%rlam --run doomed\nc = wait_for(gate={str(gate)!r}, x=b)")
    _wait_for(gate.with_name(gate.name + ".started"))
    return int(gate.with_name(gate.name + ".started").read_text())


def test_a_live_writer_mid_step_is_in_flight_not_interrupted(
    kernel: Any, kernel_env: Path, tmp_path: Path
) -> None:
    _manager, client = kernel
    gate = tmp_path / "gate"
    _start_blocked_step(client, gate)
    runs, steps = _statuses(kernel_env)
    assert runs == [("doomed", "open")]
    assert steps == [(1, "succeeded"), (2, "succeeded"), (3, "accepted")]
    con = connect(kernel_env)
    assert con.execute("SELECT state FROM writers").fetchall() == [("alive",)]
    con.close()
    report = audit(store=kernel_env, reproduce=False)
    assert report.trace_completeness == 1.0
    assert any("still open" in note for note in report.runs[0].notes)
    assert repair(kernel_env).repaired == []  # a live writer is never repaired
    gate.write_text("go")
    client.get_shell_msg(timeout=60)
    assert _statuses(kernel_env)[1][-1] == (3, "succeeded")


def test_a_kernel_killed_mid_step_reads_as_interrupted_and_repair_records_it(
    kernel: Any, kernel_env: Path, tmp_path: Path
) -> None:
    manager, client = kernel
    cache = SnapshotCache()
    layout = StoreLayout(kernel_env)
    pid = _start_blocked_step(client, tmp_path / "gate")
    before = cache.get(layout)  # the sidebar's snapshot while the kernel lives
    assert queries.step_positions(before.con).column("status").to_pylist()[-1] == "accepted"

    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while manager.is_alive():
        assert time.monotonic() < deadline
        time.sleep(0.05)

    runs, steps = _statuses(kernel_env)
    assert runs == [("doomed", "interrupted")]
    assert steps == [(1, "succeeded"), (2, "succeeded"), (3, "interrupted")]
    # The sidebar's cached snapshot notices although no file changed.
    after = cache.get(layout)
    assert queries.step_positions(after.con).column("status").to_pylist()[-1] == "interrupted"

    report = audit(store=kernel_env, reproduce=False)
    assert report.trace_completeness is not None
    assert report.trace_completeness < 1.0
    (missing,) = report.missing()
    assert "step 3 (wait_for)" in missing
    assert "interrupted (writer died)" in missing
    assert f"pid {pid}" in missing
    assert [f.status for f in report.failures] == ["interrupted"]

    journals = sorted((kernel_env / "journal").glob("*/*.jsonl"))
    old = {p: p.read_bytes() for p in journals}
    repaired = repair(kernel_env)
    assert [r.steps for r in repaired.repaired] == [
        ((3, repaired.repaired[0].steps[0][1], "wait_for"),)
    ]
    after_repair = sorted((kernel_env / "journal").glob("*/*.jsonl"))
    assert {p: p.read_bytes() for p in journals} == old  # old lines untouched
    (new,) = set(after_repair) - set(journals)
    kinds = [line.split(b'"_t":"')[1].split(b'"')[0] for line in new.read_bytes().splitlines()]
    assert kinds == [b"header", b"steps", b"runs"]

    con = connect(kernel_env)
    recorded = con.execute(
        "SELECT status, error_type FROM step_events WHERE seq = 3 ORDER BY event_no"
    ).fetchall()
    assert recorded == [("accepted", None), ("interrupted", "WriterDied")]
    assert con.execute("SELECT status, ended_at IS NOT NULL FROM runs").fetchall() == [
        ("interrupted", True)
    ]
    con.close()
    assert repair(kernel_env).repaired == []  # once is enough

    assert compact(kernel_env).closed  # an ended run: compaction takes it
    later = audit(store=kernel_env, reproduce=False)
    assert later.trace_completeness == report.trace_completeness  # still a gap, now recorded
    assert "interrupted (writer died)" in later.missing()[0]


def test_rlam_repair_cli_says_what_it_recorded(
    kernel: Any, kernel_env: Path, tmp_path: Path
) -> None:
    manager, client = kernel
    pid = _start_blocked_step(client, tmp_path / "gate")
    os.kill(pid, signal.SIGKILL)
    while manager.is_alive():
        time.sleep(0.05)
    command = [sys.executable, "-m", "rlam_jupyter.cli", "repair", "--store", str(kernel_env)]
    dry = subprocess.run([*command, "--dry-run"], capture_output=True, text=True, check=True)
    assert "would record 1 interrupted step(s): step 3 (wait_for)" in dry.stdout
    assert _statuses(kernel_env)[0] == [("doomed", "interrupted")]  # still only derived
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    assert "recorded 1 interrupted step(s): step 3 (wait_for)" in done.stdout
    assert f"pid {pid}" in done.stdout
    again = subprocess.run(command, capture_output=True, text=True, check=True)
    assert "nothing to repair" in again.stdout


def _notebook(path: Path, cells: list[str]) -> Path:
    """A notebook of ``cells``; a cell whose first line says ``# raises`` may fail."""
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell(
            source.removeprefix("# raises\n"),
            metadata={"tags": ["raises-exception"]} if source.startswith("# raises\n") else {},
        )
        for source in cells
    ]
    nbformat.write(notebook, path)
    return path


def test_a_notebook_run_headlessly_ends_its_runs_and_compact_takes_them(
    kernel_env: Path, tmp_path: Path
) -> None:
    from rlam_jupyter.demo import run_notebook

    failing = """
@rlam.action
def explode(n: int) -> int:
    raise ValueError("no")
"""
    notebook = _notebook(
        tmp_path / "headless.ipynb",
        [
            "%load_ext rlam_jupyter\n" + ACTIONS + failing,
            "%%rlam --run good --seed 1\na = make(n=1)",
            "# raises\n%%rlam --run bad --seed 1\nb = explode(n=1)",
        ],
    )
    run_notebook(notebook)
    assert _statuses(kernel_env)[0] == [("bad", "failed"), ("good", "succeeded")]
    report = compact(kernel_env)
    assert len(report.closed) == 2
    assert list((kernel_env / "journal").glob("*/*.jsonl")) == []


def _header_of(path: Path) -> dict[str, Any]:
    from rlam_jupyter.store.journal import decode_line

    record = decode_line(path.read_bytes().split(b"\n")[0])
    assert record is not None
    return record


def test_verdicts_never_call_an_unknown_writer_dead(tmp_path: Path) -> None:
    from rlam_jupyter.store.journal import JournalWriter
    from rlam_jupyter.store.liveness import judge

    writer = JournalWriter(StoreLayout(tmp_path), "R1")
    writer.append("runs", {"run_id": "R1", "status": "open"})
    header = _header_of(writer.path)
    assert header["lease"] == "flock"
    assert header["pid"] == os.getpid()
    assert judge(writer.path, header).state == "alive"  # held by this very process

    exited = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    gone = {**header, "pid": int(exited.stdout), "process_started_us": 1}
    writer.close()  # the lease is released: only the header decides now
    verdict = judge(writer.path, gone)
    assert verdict.state == "dead"
    assert exited.stdout.strip() in verdict.reason
    reused = {**header, "process_started_us": header["process_started_us"] - 10_000_000}
    assert judge(writer.path, reused).state == "dead"  # our pid, but not the process that wrote
    assert judge(writer.path, {**gone, "host": "elsewhere"}).state == "unknown"
    assert judge(writer.path, {**gone, "machine_id": "another-machine"}).state == "unknown"
    assert judge(writer.path, None).state == "unknown"  # an old journal naming nobody
    assert judge(writer.path, header).state == "alive"  # this process, lease or not
