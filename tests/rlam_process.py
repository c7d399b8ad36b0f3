"""Run the ``rlam`` command line in a process of its own, as a user's shell would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run_rlam(
    *args: str, cwd: Path | None = None, timeout: float = 900
) -> subprocess.CompletedProcess[str]:
    """``rlam ARGS`` in ``cwd``, without the test's ``RLAM_HOME``; output captured as text."""
    return run_python("-m", "rlam_jupyter", *args, cwd=cwd, timeout=timeout)


def run_python(
    *args: str, cwd: Path | None = None, timeout: float = 900
) -> subprocess.CompletedProcess[str]:
    """``python ARGS`` in ``cwd``, without the test's ``RLAM_HOME``; output captured as text."""
    env = {k: v for k, v in os.environ.items() if k != "RLAM_HOME"}
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=timeout,
        check=False,
    )


def rlam_output(*args: str, cwd: Path | None = None) -> str:
    """The standard output of ``rlam ARGS``, which must succeed (its stderr says why not)."""
    result = run_rlam(*args, cwd=cwd)
    assert result.returncode == 0, result.stderr
    return result.stdout
