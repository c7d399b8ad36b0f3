"""Runs ``disk_full_scenarios.py`` in a child pytest: a store that stops taking writes.

Those scenarios cap the size of every file their process may write (``RLIMIT_FSIZE``),
which would also break this pytest's report when it goes to a file (as in CI); the
child writes its report to a pipe, which the limit does not touch.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCENARIOS = Path(__file__).with_name("disk_full_scenarios.py")


def test_store_that_stops_taking_writes_keeps_values_and_reports_gaps() -> None:
    child = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(SCENARIOS),
            "-s",
            "-q",
            "-p",
            "no:cacheprovider",
            "-o",
            "addopts=",
            "-W",
            "ignore::pytest.PytestCollectionWarning",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=SCENARIOS.parent.parent,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        check=False,
    )
    report = child.stdout + child.stderr
    assert child.returncode == 0, report
    assert "2 passed" in report, report
