"""A store that stops taking writes while a notebook runs: the value stays, the gap is reported.

A read-only folder does not stop root, so the kernel's own limits do it: with
``RLIMIT_FSIZE`` at the journal's current size, every further append fails with
EFBIG, for root too, while the journal keeps what it had (as on a full disk).
``tests/test_journal.py`` does the same with ``/dev/full`` (ENOSPC).

The limit holds for every file the process writes, pytest's own report and capture
files included, so these scenarios are not collected directly: ``test_store_disk_full.py``
runs them in a child pytest whose output is a pipe.
"""

from __future__ import annotations

import errno
import resource
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

import rlam_jupyter
from rlam_jupyter.actions.registry import Registry, build_spec
from rlam_jupyter.frontends.kernel import session_of


@pytest.fixture
def file_size_limit() -> Iterator[list[int]]:
    """Lets a test cap the size of files this process may write; lifted afterwards."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a kill
    yield [soft, hard]
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    signal.signal(signal.SIGXFSZ, handler)


def test_a_file_size_limit_stops_root_too(tmp_path: Path, file_size_limit: list[int]) -> None:
    target = tmp_path / "f"
    target.write_bytes(b"12345")
    resource.setrlimit(resource.RLIMIT_FSIZE, (5, file_size_limit[1]))
    with target.open("ab", buffering=0) as out, pytest.raises(OSError, match="too large") as no:
        out.write(b"6")
    assert no.value.errno == errno.EFBIG


def test_store_refusing_writes_mid_step_keeps_the_value_and_reports_the_missing_record(
    shell: InteractiveShell, capsys: pytest.CaptureFixture[str], file_size_limit: list[int]
) -> None:
    session = session_of(shell)

    def measure(x: int, fill_disk: bool = False) -> int:
        """Ten times x; with fill_disk the store stops taking writes while it computes."""
        if fill_disk:
            journal = session.current.writer.path  # type: ignore[union-attr]
            resource.setrlimit(resource.RLIMIT_FSIZE, (journal.stat().st_size, file_size_limit[1]))
        return 10 * x

    actions = Registry()
    actions.add(build_spec(measure))
    session.engine.registry = actions

    shell.run_cell_magic("rlam", "--run full --quiet", "a = measure(x=1)")
    result = shell.run_cell("%%rlam --quiet\nb = measure(x=4, fill_disk=True)\n")
    error: Any = result.error_in_exec
    assert isinstance(error, UsageError)
    assert "File too large" in str(error)
    assert "trace record(s) of run" in str(error)
    assert "%rlam status" in str(error)
    assert shell.user_ns["b"] == 40  # the computed value is not lost

    # The trace shows the step as started but not finished, and says records are pending.
    con = rlam_jupyter.connect()
    assert con.execute("SELECT seq, status FROM steps ORDER BY seq").fetchall() == [
        (1, "succeeded"),
        (2, "accepted"),
    ]
    writer = session.current.writer  # type: ignore[union-attr]
    pending = len(writer.unwritten)
    assert pending >= 2  # the artifact, its edges and the step's final record
    capsys.readouterr()
    shell.run_line_magic("rlam", "status")
    assert f"0 pending trace record(s) written; {pending} still pending" in capsys.readouterr().out

    # While the store refuses writes nothing more runs unrecorded.
    refused = shell.run_cell("%%rlam --quiet\nc = measure(x=5)\n")
    assert isinstance(refused.error_in_exec, UsageError)
    assert "nothing more runs until it can record" in str(refused.error_in_exec)
    assert "c" not in shell.user_ns

    # Space again: `%rlam status` writes what was pending; the trace is whole.
    resource.setrlimit(resource.RLIMIT_FSIZE, tuple(file_size_limit))
    capsys.readouterr()
    shell.run_line_magic("rlam", "status")
    assert f"{pending} pending trace record(s) written; 0 still pending" in capsys.readouterr().out
    assert writer.unwritten == []
    con = rlam_jupyter.connect()
    assert con.execute("SELECT seq, status FROM steps ORDER BY seq").fetchall() == [
        (1, "succeeded"),
        (2, "succeeded"),
    ]
    outputs = con.execute("SELECT outputs FROM steps WHERE seq = 2").fetchone()
    artifact = con.execute("SELECT preview FROM artifacts WHERE step_id LIKE '%-000002'").fetchone()
    assert outputs is not None
    assert artifact == ("40",)
