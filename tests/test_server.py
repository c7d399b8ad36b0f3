"""The trace browser's REST API against a real ``jupyter server`` process.

A store with a workflow (one failing step) and a fork of it sits beside a notebook
in the server root; every answer is compared with what ``connect()`` says.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jupyter_app import JupyterApp, running

import rlam_jupyter
from rlam_jupyter.actions.proposal import parse_cell
from rlam_jupyter.engine.session import Session
from rlam_jupyter.operations.browse.snapshots import (
    PathError,
    SnapshotCache,
    resolve_request_store,
    store_stamp,
)
from rlam_jupyter.store.layout import StoreLayout

WORKFLOW = """\
data = load_dataset(name="iris")
X_train, X_test, y_train, y_test = split(data=data, target="target")
Xs_train, Xs_test = scale(X_train=X_train, X_test=X_test)
model = train_model(X=Xs_train, y=y_train, C=1.0)
metrics = evaluate(model=model, X=Xs_test, y=y_test)
"""
FAILING = 'extra = load_csv(path="missing.csv")'
NOTEBOOK = "project/analysis.ipynb"


def record_workflow(store: Path) -> tuple[str, str]:
    """Record the iris workflow plus a failing step; fork it at training with C=0.1."""
    session = Session.create(store=str(store))
    run = session.start("iris", 42)
    session.execute(run, parse_cell(WORKFLOW, session.engine.registry))
    session.execute(run, parse_cell(FAILING, session.engine.registry))
    session.close()
    fork = rlam_jupyter.fork(run.run_id, at=4, params={"C": 0.1}, store=str(store))
    return run.run_id, fork.run_id


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("server-root")
    (root / "project").mkdir()
    (root / NOTEBOOK).write_text(
        json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5})
    )
    record_workflow(root / "project" / ".rlam")
    return root


@pytest.fixture(scope="module")
def server(root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterApp]:
    with running("server", root, tmp_path_factory.mktemp("server-work")) as app:
        yield app


@pytest.fixture(scope="module")
def con(root: Path) -> Any:
    return rlam_jupyter.connect(root / "project" / ".rlam")


def run_ids(con: Any) -> tuple[str, str]:
    parent = con.execute("SELECT run_id FROM runs WHERE parent_run_id IS NULL").fetchone()[0]
    fork = con.execute("SELECT run_id FROM runs WHERE parent_run_id IS NOT NULL").fetchone()[0]
    return parent, fork


def endpoints(con: Any) -> list[str]:
    parent, _ = run_ids(con)
    artifact = con.execute("SELECT artifact_id FROM artifacts LIMIT 1").fetchone()[0]
    return [
        "rlam/api/stamp",
        "rlam/api/runs",
        f"rlam/api/runs/{parent}",
        f"rlam/api/runs/{parent}/steps",
        f"rlam/api/runs/{parent}/steps/1",
        f"rlam/api/runs/{parent}/graph",
        f"rlam/api/runs/{parent}/environment",
        f"rlam/api/artifacts/{artifact}",
        "rlam/api/actions",
    ]


def test_the_extension_is_enabled_by_the_installed_config() -> None:
    import subprocess
    import sys

    for command in (["server", "extension", "list"], ["labextension", "list"]):
        listed = subprocess.run(
            [sys.executable, "-m", "jupyter", *command],
            capture_output=True,
            text=True,
            check=True,
        )
        text = listed.stdout + listed.stderr
        name = "rlam_jupyter" if command[0] == "server" else "rlam-jupyter"
        line = next(line for line in text.splitlines() if name in line and "enabled" in line)
        assert "enabled" in line, text


def test_every_endpoint_refuses_requests_without_a_token(server: JupyterApp, con: Any) -> None:
    for endpoint in endpoints(con):
        status, body = server.get(endpoint, token=False, path=NOTEBOOK)
        assert status == 403, endpoint
        assert "message" in body, endpoint


def test_every_endpoint_answers_with_a_token(server: JupyterApp, con: Any) -> None:
    for endpoint in endpoints(con):
        status, body = server.get(endpoint, path=NOTEBOOK)
        assert status == 200, (endpoint, body)


def test_the_api_is_read_only(server: JupyterApp) -> None:
    status, body = server.get("rlam/api/runs", token=False, method="POST", path=NOTEBOOK)
    assert status == 403  # no token, no XSRF cookie
    assert "message" in body
    status, body = server.get("rlam/api/runs", method="DELETE", path=NOTEBOOK)
    assert status == 405
    assert "message" in body


def test_runs_match_connect_and_form_a_fork_tree(server: JupyterApp, con: Any) -> None:
    status, body = server.get("rlam/api/runs", path=NOTEBOOK)
    assert status == 200
    assert body["store"] == str((server.root / "project" / ".rlam").resolve())
    expected = con.execute(
        "SELECT run_id, name, seed, parent_run_id, fork_seq FROM runs ORDER BY created_at"
    ).fetchall()
    assert [
        (r["run_id"], r["name"], r["seed"], r["parent_run_id"], r["fork_seq"]) for r in body["runs"]
    ] == [tuple(row) for row in expected]
    parent_id, fork_id = run_ids(con)
    runs = {r["run_id"]: r for r in body["runs"]}
    assert runs[parent_id]["steps"] == 6
    assert runs[parent_id]["failed"] == 1
    assert runs[fork_id]["parent_run_id"] == parent_id
    assert runs[fork_id]["shared"] == 3  # load, split, scale are the parent's


def test_steps_are_paginated_in_seq_order_like_run_steps(server: JupyterApp, con: Any) -> None:
    parent, fork = run_ids(con)
    for run_id in (parent, fork):
        expected = con.execute(
            "SELECT seq, action, status FROM run_steps(?) ORDER BY seq", [run_id]
        ).fetchall()
        seen = []
        for offset in range(0, len(expected), 2):
            status, page = server.get(
                f"rlam/api/runs/{run_id}/steps", path=NOTEBOOK, offset=offset, limit=2
            )
            assert status == 200
            assert page["total"] == len(expected)
            seen += [(s["seq"], s["action"], s["status"]) for s in page["steps"]]
        assert seen == [tuple(row) for row in expected]
    status, page = server.get(f"rlam/api/runs/{fork}/steps", path=NOTEBOOK)
    inherited = [s["seq"] for s in page["steps"] if s["inherited"]]
    assert inherited == [1, 2, 3]


def test_steps_filter_by_status_and_action(server: JupyterApp, con: Any) -> None:
    parent, _ = run_ids(con)
    status, page = server.get(
        f"rlam/api/runs/{parent}/steps", path=NOTEBOOK, status="failed,rejected"
    )
    assert status == 200
    failed = con.execute(
        "SELECT seq, action FROM run_steps(?) WHERE status = 'failed'", [parent]
    ).fetchall()
    assert [(s["seq"], s["action"]) for s in page["steps"]] == [tuple(r) for r in failed]
    assert page["counts"] == {"succeeded": 5, "failed": 1}
    status, page = server.get(f"rlam/api/runs/{parent}/steps", path=NOTEBOOK, action="split")
    assert [s["action"] for s in page["steps"]] == ["split"]
    status, body = server.get(f"rlam/api/runs/{parent}/steps", path=NOTEBOOK, limit=0)
    assert status == 400
    assert "limit" in body["message"]


def test_one_step_shows_params_inputs_outputs_and_error(server: JupyterApp, con: Any) -> None:
    parent, fork = run_ids(con)
    status, step = server.get(f"rlam/api/runs/{parent}/steps/4", path=NOTEBOOK)
    assert status == 200
    assert step["action"] == "train_model"
    assert step["params"]["C"] == 1.0
    producers = {link["name"]: link["producer"]["seq"] for link in step["input_links"]}
    assert producers == {"Xs_train": 3, "y_train": 2}
    (output,) = step["output_artifacts"]
    recorded = json.loads(
        con.execute("SELECT outputs FROM run_steps(?) WHERE seq = 4", [parent]).fetchone()[0]
    )
    assert output["artifact_id"] == recorded["result"]
    assert "LogisticRegression" in output["preview"]
    assert step["environment"]["same_as_run"] is True
    assert step["environment"]["fingerprint"]["python"]["version"]

    status, failed = server.get(f"rlam/api/runs/{parent}/steps/6", path=NOTEBOOK)
    assert failed["status"] == "failed"
    assert failed["error_type"] == "FileNotFoundError"
    assert "missing.csv" in failed["traceback"]
    assert [e["status"] for e in failed["events"]] == ["accepted", "failed"]

    status, forked = server.get(f"rlam/api/runs/{fork}/steps/4", path=NOTEBOOK)
    assert forked["params"]["C"] == 0.1
    assert forked["run_id"] == fork
    status, missing = server.get(f"rlam/api/runs/{parent}/steps/99", path=NOTEBOOK)
    assert status == 404
    assert "no step 99" in missing["message"]


def test_artifact_graph_environment_and_action_schemas(server: JupyterApp, con: Any) -> None:
    parent, _ = run_ids(con)
    artifact_id, step_id = con.execute(
        "SELECT artifact_id, step_id FROM artifacts WHERE name = 'result' ORDER BY step_id LIMIT 1"
    ).fetchone()
    status, artifact = server.get(f"rlam/api/artifacts/{artifact_id}", path=NOTEBOOK)
    assert status == 200
    assert step_id in [p["step_id"] for p in artifact["produced_by"]]

    status, graph = server.get(f"rlam/api/runs/{parent}/graph", path=NOTEBOOK)
    steps = [n for n in graph["nodes"] if n["kind"] == "step"]
    assert len(steps) == 6
    types = {e["type"] for e in graph["edges"]}
    assert {"used", "generated", "derived_from"} <= types
    expected_used = con.execute(
        "SELECT count(DISTINCT (src, dst, role)) FROM edges WHERE type = 'used' AND run_id = ?",
        [parent],
    ).fetchone()[0]
    assert sum(e["type"] == "used" for e in graph["edges"]) == expected_used

    status, env = server.get(f"rlam/api/runs/{parent}/environment", path=NOTEBOOK)
    env_id = con.execute("SELECT env_id FROM runs WHERE run_id = ?", [parent]).fetchone()[0]
    assert env["env_id"] == env_id
    assert env["fingerprint"]["python"]

    status, actions = server.get("rlam/api/actions", path=NOTEBOOK)
    schema = actions["actions"]["train_model"]["params_schema"]
    assert schema["properties"]["C"]["exclusiveMinimum"] == 0


def test_runs_can_be_named_by_name_or_id_prefix(server: JupyterApp, con: Any) -> None:
    parent, _ = run_ids(con)
    for ref in ("iris", parent[:20]):
        status, run = server.get(f"rlam/api/runs/{ref}", path=NOTEBOOK)
        assert status == 200
        assert run["run_id"] == parent
    status, body = server.get("rlam/api/runs/nothing-like-this", path=NOTEBOOK)
    assert status == 404
    assert "rlam runs" in body["message"]


@pytest.mark.parametrize(
    "path",
    ["../", "../../etc/passwd", "/etc", "project/../../outside", "..", "C:/Windows"],
)
def test_paths_outside_the_root_are_refused(server: JupyterApp, path: str) -> None:
    status, body = server.get("rlam/api/runs", path=path)
    assert status == 403
    assert "root" in body["message"] or "absolute" in body["message"]


def test_a_symlink_out_of_the_root_is_refused(
    server: JupyterApp, tmp_path_factory: pytest.TempPathFactory
) -> None:
    outside = tmp_path_factory.mktemp("outside")
    link = server.root / "escape"
    if not link.exists():
        link.symlink_to(outside, target_is_directory=True)
    status, body = server.get("rlam/api/runs", path="escape/x.ipynb")
    assert status == 403
    assert "outside the server root" in body["message"]


def test_a_notebook_without_a_store_has_no_runs(server: JupyterApp) -> None:
    status, body = server.get("rlam/api/runs", path="fresh/new.ipynb")
    assert status == 200
    assert body["runs"] == []
    status, stamp = server.get("rlam/api/stamp", path="fresh/new.ipynb")
    assert stamp["exists"] is False


def test_new_steps_change_the_stamp_and_show_up(server: JupyterApp, root: Path) -> None:
    path = "live/analysis.ipynb"
    store = root / "live" / ".rlam"
    session = Session.create(store=str(store))
    run = session.start("live", 1)
    session.execute(run, parse_cell('data = load_dataset(name="iris")', session.engine.registry))
    _, before = server.get("rlam/api/stamp", path=path)
    _, page = server.get(f"rlam/api/runs/{run.run_id}/steps", path=path)
    assert page["total"] == 1
    session.execute(run, parse_cell("summary = describe(data=data)", session.engine.registry))
    _, after = server.get("rlam/api/stamp", path=path)
    assert after["stamp"] != before["stamp"]
    _, page = server.get(f"rlam/api/runs/{run.run_id}/steps", path=path)
    assert [s["action"] for s in page["steps"]] == ["load_dataset", "describe"]
    session.close()


def test_a_figure_output_is_served_as_its_png(server: JupyterApp, root: Path) -> None:
    pytest.importorskip("matplotlib")
    from rlam_jupyter.values import figures

    path = "figures/analysis.ipynb"
    session = Session.create(store=str(root / "figures" / ".rlam"))
    run = session.start("figures", 1)
    body = (
        'data = load_dataset(name="iris")\nfig = plot(data=data, x="petal width (cm)", kind="hist")'
    )
    session.execute(run, parse_cell(body, session.engine.registry))
    session.close()
    _, step = server.get(f"rlam/api/runs/{run.run_id}/steps/2", path=path)
    (output,) = step["output_artifacts"]
    assert output["kind"] == "figure"
    endpoint = f"rlam/api/artifacts/{output['artifact_id']}/image"
    status, content_type, png = server.get_raw(endpoint, path=path)
    assert (status, content_type) == (200, "image/png")
    stored = root / "figures" / ".rlam" / "objects" / output["artifact_id"][:2]
    assert png == figures.unpack((stored / f"{output['artifact_id']}.figure").read_bytes()).png
    assert server.get_raw(endpoint, token=False, path=path)[0] == 403
    not_a_figure = step["input_links"][0]["artifact_id"]
    status, _, reply = server.get_raw(f"rlam/api/artifacts/{not_a_figure}/image", path=path)
    assert status == 404
    assert "no stored figure" in json.loads(reply)["message"]


# ---------------------------------------------------------------- without a server


def test_store_of_a_notebook_is_beside_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RLAM_HOME", raising=False)
    (tmp_path / "a").mkdir()
    assert resolve_request_store(tmp_path, "a/nb.ipynb").root == tmp_path / "a" / ".rlam"
    assert resolve_request_store(tmp_path, "a").root == tmp_path / "a" / ".rlam"
    assert resolve_request_store(tmp_path, "").root == tmp_path / ".rlam"
    monkeypatch.setenv("RLAM_HOME", str(tmp_path / "shared"))
    assert resolve_request_store(tmp_path, "a/nb.ipynb").root == tmp_path / "shared"
    with pytest.raises(PathError) as bad:
        resolve_request_store(tmp_path, "a/\x00")
    assert bad.value.status == 400


def test_snapshots_are_reused_until_the_store_changes(tmp_path: Path) -> None:
    store = tmp_path / ".rlam"
    session = Session.create(store=str(store))
    run = session.start("cache", 0)
    session.execute(run, parse_cell('data = load_dataset(name="iris")', session.engine.registry))
    cache = SnapshotCache()
    layout = StoreLayout(store)
    first = cache.get(layout)
    assert cache.get(layout) is first
    assert first.stamp == store_stamp(layout)
    session.execute(run, parse_cell("summary = describe(data=data)", session.engine.registry))
    second = cache.get(layout)
    assert second is not first
    assert second.con.execute("SELECT count(*) FROM steps").fetchone()[0] == 2
    session.close()
    cache.clear()
    assert os.path.isdir(store)


def test_appended_steps_update_the_snapshot_in_place_and_match_connect(tmp_path: Path) -> None:
    store = tmp_path / ".rlam"
    session = Session.create(store=str(store))
    run = session.start("live", 0)
    session.execute(run, parse_cell('data = load_dataset(name="iris")', session.engine.registry))
    cache = SnapshotCache()
    layout = StoreLayout(store)
    views = ["steps", "step_events", "artifacts", "edges", "runs", "journal_problems"]

    def same_as_connect(con: Any) -> None:
        fresh = rlam_jupyter.connect(store)
        for view in views:
            query = f"SELECT * FROM {view} ORDER BY ALL"
            assert con.execute(query).fetchall() == fresh.execute(query).fetchall(), view

    first = cache.get(layout)
    first.materialise("artifacts", "edges")
    session.execute(run, parse_cell("summary = describe(data=data)", session.engine.registry))
    second = cache.get(layout)
    assert second.con is first.con  # brought up to date, not rebuilt
    assert second.con.execute("SELECT count(*) FROM steps").fetchone()[0] == 2
    same_as_connect(second.materialise("artifacts", "edges"))
    session.close()  # ends the run: compaction moves it to Parquet, a new connection
    third = cache.get(layout)
    assert third.con is not second.con
    same_as_connect(third.con)
    cache.clear()
