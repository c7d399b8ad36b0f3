"""The environment fingerprint: what it holds, how it shows, and how two are compared."""

from __future__ import annotations

import copy
import importlib.metadata
import platform
from pathlib import Path

import pytest

import rlam_jupyter
from rlam_jupyter.engine import Engine
from rlam_jupyter.values.fingerprint import Fingerprint, compare, fingerprint


def test_fingerprint_describes_interpreter_platform_cpu_packages() -> None:
    env = rlam_jupyter.fingerprint()
    assert env.data["python"]["version"] == platform.python_version()
    assert env.data["platform"]["machine"] == platform.machine()
    assert env.data["cpu"]["count"] >= 1
    assert env.data["packages"]["numpy"] == importlib.metadata.version("numpy")
    assert env.data["packages"]["scikit-learn"] == importlib.metadata.version("scikit-learn")
    assert len(env.env_id) == 64


def test_fingerprint_is_cached_until_the_environment_changes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    first = fingerprint()
    assert fingerprint() is first  # no second package scan
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    changed = fingerprint()
    assert changed is not first
    assert changed.data["env"]["OMP_NUM_THREADS"] == "3"
    assert first.diff(changed) == [("env.OMP_NUM_THREADS", None, "3")]


def test_fingerprint_displays_a_short_summary() -> None:
    env = fingerprint()
    text = repr(env)
    assert text.startswith(f"environment {env.env_id[:12]}")
    assert f"{len(env.data['packages'])}" in text
    assert "python" in text
    assert len(text.splitlines()) == 6  # a summary, not 200 package lines
    html = env._repr_html_()
    assert "<details>" in html
    assert "scikit-learn" in html  # the full package list is one click away


def test_compare_lists_exactly_what_differs() -> None:
    recorded = copy.deepcopy(fingerprint().data)
    recorded["packages"]["numpy"] = "1.21.0"
    recorded["packages"]["only-there"] = "2.0"
    del recorded["packages"]["scikit-learn"]
    recorded["env"]["PYTHONHASHSEED"] = "0"
    now = fingerprint().data
    differences = compare(recorded, now)
    assert sorted(differences) == sorted(
        [
            ("packages.numpy", "1.21.0", now["packages"]["numpy"]),
            ("packages.only-there", "2.0", None),
            ("packages.scikit-learn", None, now["packages"]["scikit-learn"]),
            ("env.PYTHONHASHSEED", "0", now["env"].get("PYTHONHASHSEED")),
        ]
    )
    assert Fingerprint(recorded).env_id != fingerprint().env_id
    assert compare(now, copy.deepcopy(now)) == []


def test_each_run_records_its_environment(store: Path) -> None:
    engine = Engine(store)
    run = engine.start_run("env", seed=1)
    engine.end_run(run)
    con = rlam_jupyter.connect(store)
    rows = con.execute(
        "SELECT e.env_id, e.fingerprint, r.env_id FROM environments e JOIN runs r USING (run_id)"
    ).fetchall()
    assert len(rows) == 1
    env_id, data, run_env = rows[0]
    assert env_id == run_env == fingerprint().env_id
    assert '"numpy"' in data
