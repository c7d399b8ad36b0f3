"""A kernel that dies mid-step is visible: its step reads as interrupted, the audit counts
it, ``rlam repair`` records it; a kernel that shuts down cleanly ends its runs.

Every kernel here is a real ipykernel (jupyter_client / nbclient), killed with SIGKILL
where the point is a crash.
"""

from __future__ import annotations

import contextlib
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

from rlam_jupyter.operations.audit import audit
from rlam_jupyter.operations.browse import queries
from rlam_jupyter.operations.browse.snapshots import SnapshotCache
from rlam_jupyter.store.catalog import connect
from rlam_jupyter.store.compaction import compact
from rlam_jupyter.store.layout import StoreLayout
from rlam_jupyter.store.repair import repair

ROOT = Path(__file__).resolve().parent.parent

ACTIONS = """
import os, time, pathlib
from typing import Annotated
import rlam_jupyter as rlam
from rlam_jupyter.actions.registry import Input

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
    command = [
        sys.executable,
        "-m",
        "rlam_jupyter",
        "repair",
        "--store",
        str(kernel_env),
    ]
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
    from rlam_jupyter.frontends.demo import run_notebook

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
    from rlam_jupyter.store.journal_format import decode_line

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
    reused = {
        **header,
        "process_start_ticks": header["process_start_ticks"] - 1000,
        "process_started_us": header["process_started_us"] - 10_000_000,
    }
    assert judge(writer.path, reused).state == "dead"  # our pid, but not the process that wrote
    assert judge(writer.path, {**gone, "host": "elsewhere"}).state == "unknown"
    assert judge(writer.path, {**gone, "machine_id": "another-machine"}).state == "unknown"
    assert judge(writer.path, None).state == "unknown"  # an old journal naming nobody
    assert judge(writer.path, header).state == "alive"  # this process, lease or not


def _exited_pid() -> int:
    """The pid of a process that ran and exited (reaped), so no process has it now."""
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(done.stdout)


def _python(code: str, *args: str) -> subprocess.Popen[str]:
    """A Python process running ``code`` with this worktree's package, its stdout piped."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.Popen(
        [sys.executable, "-c", code, *args], stdout=subprocess.PIPE, text=True, env=env
    )


def _end(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.kill()
    process.wait(timeout=30)
    if process.stdout is not None:
        process.stdout.close()


def test_on_windows_liveness_never_sends_a_signal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On Windows ``os.kill(pid, 0)`` is CTRL_C_EVENT: it would interrupt the writer it
    asks about. Windows cannot run here, so this test (alone in the file) substitutes:
    ``os.name`` reads ``"nt"`` and ``os.kill`` is a sentinel that fails if reached."""
    from rlam_jupyter.store import liveness
    from rlam_jupyter.store.journal import JournalWriter

    writer = JournalWriter(StoreLayout(tmp_path), "R1")
    writer.append("runs", {"run_id": "R1", "status": "open"})
    writer.close()
    header = {**_header_of(writer.path), "pid": _exited_pid()}
    assert liveness.judge(writer.path, header).state == "dead"  # on Linux: known gone

    def forbidden(pid: int, sig: int) -> None:
        raise AssertionError(f"os.kill({pid}, {sig}) reached on Windows")

    with monkeypatch.context() as windows:  # undone before asserting: pytest needs os.name
        windows.setattr(os, "kill", forbidden)
        windows.setattr(os, "name", "nt")
        try:
            exists: object = liveness._process_exists(os.getpid())
            verdict: object = liveness.judge(writer.path, header)
        except BaseException as exc:
            exists = verdict = exc
    # No Win32 API here: existence cannot be established, so it is unknown, never dead.
    assert exists is None
    assert isinstance(verdict, liveness.Liveness), verdict
    assert verdict.state == "unknown"
    assert str(header["pid"]) in verdict.reason


FORKING_WRITER = """
import multiprocessing, pathlib, sys, time
from rlam_jupyter.store.journal import JournalWriter
from rlam_jupyter.store.layout import StoreLayout

out = pathlib.Path(sys.argv[1])
writer = JournalWriter(StoreLayout(out / "store"), "R1")
writer.append("runs", {"run_id": "R1", "name": "forked", "status": "open"})

def child():
    try:
        writer.append("runs", {"run_id": "R1", "name": "forked", "status": "succeeded"})
    except Exception as exc:
        (out / "child-said").write_text(f"{type(exc).__name__}: {exc}")
    else:
        (out / "child-said").write_text("appended")
    time.sleep(120)

child_process = multiprocessing.get_context("fork").Process(target=child)
child_process.start()
while not (out / "child-said").exists():
    time.sleep(0.01)
print(child_process.pid, writer.path, flush=True)
time.sleep(120)
"""


def test_a_forked_child_does_not_keep_a_killed_writers_run_alive(tmp_path: Path) -> None:
    from rlam_jupyter.store.liveness import judge, lease_held

    writer = _python(FORKING_WRITER, str(tmp_path))
    child_pid = 0
    try:
        assert writer.stdout is not None
        child_text, journal_text = writer.stdout.readline().split(" ", 1)
        child_pid, journal = int(child_text), Path(journal_text.strip())
        said = (tmp_path / "child-said").read_text()
        # The child may not write the parent's journal (one writer per file): it is told why.
        assert said.startswith("StoreWriteError: ")
        assert "forked" in said
        assert str(writer.pid) in said
        assert b"succeeded" not in journal.read_bytes()

        header = _header_of(journal)
        assert judge(journal, header).state == "alive"
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=30)
        os.kill(child_pid, 0)  # the forked child outlives its parent
        assert lease_held(journal) is False  # it did not take the lease along
        verdict = judge(journal, header)
        assert verdict.state == "dead", verdict.reason
        assert f"no process {writer.pid}" in verdict.reason
    finally:
        _end(writer)
        if child_pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child_pid, signal.SIGKILL)


HOLD_LOCK = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(120)
"""


def test_a_lease_held_by_another_process_does_not_revive_a_gone_writer(tmp_path: Path) -> None:
    from rlam_jupyter.store.journal import JournalWriter
    from rlam_jupyter.store.liveness import judge, lease_held

    writer = JournalWriter(StoreLayout(tmp_path), "R1")
    writer.append("runs", {"run_id": "R1", "status": "open"})
    writer.close()
    header = _header_of(writer.path)
    holder = _python(HOLD_LOCK, str(writer.path))  # as an inherited fd would hold it
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "held\n"
        assert lease_held(writer.path) is True
        gone = {**header, "pid": _exited_pid()}
        assert judge(writer.path, gone).state == "dead"
        reused = {
            **header,
            "process_start_ticks": header["process_start_ticks"] - 100,
            "process_started_us": header["process_started_us"] - 10_000_000,
        }
        assert judge(writer.path, reused).state == "dead"  # our pid, another process
        assert judge(writer.path, header).state == "alive"  # the named writer lives
        # Another host's process cannot be looked at: the held lease is what tells.
        assert judge(writer.path, {**gone, "host": "elsewhere"}).state == "alive"
    finally:
        _end(holder)


HAMMER = """
import sys, time
from pathlib import Path
from rlam_jupyter.store.liveness import lease_held
path = Path(sys.argv[1])
print("testing", flush=True)
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    lease_held(path)
"""


def test_a_reader_testing_the_lease_does_not_cost_a_writer_its_lease(tmp_path: Path) -> None:
    from rlam_jupyter.store.journal import JournalWriter

    layout = StoreLayout(tmp_path)
    first = JournalWriter(layout, "R1", "W1")
    first.append("runs", {"run_id": "R1", "status": "open"})
    first.close()
    reader = _python(HAMMER, str(first.path))
    try:
        assert reader.stdout is not None
        assert reader.stdout.readline() == "testing\n"
        leased = []
        for n in range(100):
            writer = JournalWriter(layout, "R1", "W1")  # opens (and locks) on its first write
            writer.append("runs", {"run_id": "R1", "status": "open", "seed": n})
            leased.append(writer.leased)
            writer.close()
        assert all(leased), f"{leased.count(False)} of 100 opens went without the lease"
    finally:
        _end(reader)


def test_start_times_are_compared_in_clock_ticks_so_a_clock_step_changes_nothing(
    tmp_path: Path,
) -> None:
    from rlam_jupyter.store.journal import JournalWriter
    from rlam_jupyter.store.liveness import judge

    writer = JournalWriter(StoreLayout(tmp_path), "R1")
    writer.append("runs", {"run_id": "R1", "status": "open"})
    writer.close()  # no lease: the header alone decides
    header = _header_of(writer.path)
    stat = Path(f"/proc/{os.getpid()}/stat").read_text()
    assert header["process_start_ticks"] == int(stat[stat.rindex(")") + 2 :].split()[19])
    # Recorded before the wall clock stepped an hour (NTP, a VM resumed): the epoch start
    # derived from btime moved, the ticks after boot did not.
    stepped = {**header, "process_started_us": header["process_started_us"] - 3_600_000_000}
    assert judge(writer.path, stepped).state == "alive"
    other = {**header, "process_start_ticks": header["process_start_ticks"] + 1}
    assert judge(writer.path, other).state == "dead"  # exact: one tick is another process
    older = {k: v for k, v in stepped.items() if k != "process_start_ticks"}
    assert judge(writer.path, older).state == "dead"  # an older header: epoch time decides


DYING_WRITER = """
import os, pathlib, sys
from rlam_jupyter.store.journal import JournalWriter, now_us
from rlam_jupyter.store.layout import StoreLayout

writer = JournalWriter(StoreLayout(pathlib.Path(sys.argv[1])), "R1")
writer.append("runs", {"run_id": "R1", "name": "dies", "status": "open",
                       "writer": writer.writer_id, "created_at": now_us()})
writer.append("steps", {"run_id": "R1", "step_id": "R1-000001", "seq": 1, "action": "make",
                        "params": "{}", "status": "accepted", "recorded_at": now_us()})
print(writer.writer_id, flush=True)
os._exit(0)  # dies mid-step: nothing ends the run
"""


def test_repair_keeps_the_dead_writer_as_the_runs_writer(tmp_path: Path) -> None:
    store = tmp_path / "store"
    dying = _python(DYING_WRITER, str(store))
    assert dying.stdout is not None
    dead_writer = dying.stdout.readline().strip()
    _end(dying)
    assert _statuses(store) == ([("dies", "interrupted")], [(1, "interrupted")])
    (repaired,) = repair(store).repaired
    assert repaired.steps == ((1, "R1-000001", "make"),)
    con = connect(store)
    try:
        # Bundle export finds a kernel's runs (and their forks) by this column.
        assert con.execute("SELECT status, writer FROM runs").fetchall() == [
            ("interrupted", dead_writer)
        ]
    finally:
        con.close()
