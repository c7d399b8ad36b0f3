"""Run the ``rlam`` command line in a process of its own, as a user's shell would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any


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


def verified_replay(run: str, store: Path) -> dict[str, Any]:
    """The report of ``rlam replay RUN --verify`` in a fresh process, which must pass."""
    result = run_rlam("replay", run, "--verify", "--store", str(store), "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    assert report["verified"]
    assert report["ok"]
    return report
