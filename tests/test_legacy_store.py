"""A store recorded by the previous release (objects hashed with the older ``pickle``
encoding) still restores, verifies as identical, forks and exports with this code.

``tests/data/legacy_store`` was written by the release before the ``pickle2`` encoding,
running ``tests/legacy_actions.py``: ``profile = make_profile(label="base", size=4)`` then
``total = profile_total(profile=profile)``, seed 7.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import tests.legacy_actions  # noqa: F401  (registers the actions the store recorded)
from rlam_jupyter import connect
from rlam_jupyter.operations.bundle import export, verify_bundle
from rlam_jupyter.operations.replay import fork, replay
from rlam_jupyter.values.hashing import canonicalize
from tests.legacy_actions import Profile

LEGACY = Path(__file__).parent / "data" / "legacy_store"


@pytest.fixture
def legacy(tmp_path: Path) -> Path:
    store = tmp_path / ".rlam"
    shutil.copytree(LEGACY, store)
    return store


def _profile_artifact(store: Path) -> tuple[str, str]:
    con = connect(store)
    try:
        row = con.execute(
            "select artifact_id, kind from artifacts where name = 'result' and kind like 'pickle%'"
        ).fetchone()
    finally:
        con.close()
    assert row is not None
    return str(row[0]), str(row[1])


def test_the_fixture_really_uses_the_older_encoding(legacy: Path) -> None:
    artifact_id, kind = _profile_artifact(legacy)
    assert kind == "pickle"
    report = replay("legacy", store=legacy, namespace={})
    profile = report["profile"]
    assert isinstance(profile, Profile)
    now = canonicalize(profile)
    assert now.kind == "pickle2"
    assert now.digest != artifact_id  # so verify must hash the way the record was hashed


def test_old_runs_verify_identical(legacy: Path) -> None:
    report = replay("legacy", verify=True, store=legacy, namespace={})
    assert [s.verify for s in report.steps] == ["identical", "identical"], report


def test_a_fork_uses_old_objects_as_they_are_and_records_new_ones_in_the_new_encoding(
    legacy: Path,
) -> None:
    downstream = fork("legacy", at=2, store=legacy, namespace={})
    assert downstream.ok
    notes = [n for r in downstream.results for n in r.notes]
    assert not any("modified in place" in n for n in notes), notes
    changed = fork("legacy", at=1, params={"label": "other"}, store=legacy, namespace={})
    assert changed.ok
    assert changed["profile"].label == "other"
    kinds = {
        row[0]
        for row in connect(legacy)
        .execute("select kind from artifacts where run_id = ?", [changed.run_id])
        .fetchall()
    }
    assert "pickle2" in kinds


def test_old_runs_export_and_verify_as_a_bundle(legacy: Path, tmp_path: Path) -> None:
    result = export(out=tmp_path / "legacy.rlam.zip", runs=["legacy"], store=legacy)
    report = verify_bundle(result.path, reexecute=True, modules=["tests.legacy_actions"])
    assert report.ok, report.text()
    outcomes = [(o["action"], o["outcome"]) for o in report.reexecution]
    assert outcomes == [("make_profile", "identical"), ("profile_total", "identical")]
