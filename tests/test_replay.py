"""Replay, verify, fork and diff of recorded runs: Python API, %rlam commands, rlam CLI,
and a replay in a brand-new kernel process."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

import rlam_jupyter
from rlam_jupyter.actions.default_registry import registry
from rlam_jupyter.actions.proposal import parse_cell
from rlam_jupyter.actions.registry import Registry, build_spec
from rlam_jupyter.engine import Engine
from rlam_jupyter.errors import RlamError
from rlam_jupyter.frontends import cli
from rlam_jupyter.operations.replay import ForkRejected, diff, fork, fork_tree, replay
from rlam_jupyter.store.journal import JournalWriter, now_us
from rlam_jupyter.store.layout import StoreLayout
from rlam_jupyter.values.fingerprint import fingerprint

WORKFLOW = """\
data = load_dataset(name="breast_cancer")
X_train, X_test, y_train, y_test = split(data=data)
X_train_s, X_test_s = scale(X_train=X_train, X_test=X_test)
model = train_model(X=X_train_s, y=y_train, C=1.0)
metrics = evaluate(model=model, X=X_test_s, y=y_test)
summary = describe(data=data)
"""


def wall_clock() -> float:
    """Deliberately nondeterministic: reads the clock, no seed can pin it."""
    return time.time()


def broken(data: pd.DataFrame) -> int:
    raise RuntimeError()


@pytest.fixture
def actions() -> Registry:
    reg = Registry()
    for spec in registry().values():
        reg.add(spec)
    reg.add(build_spec(wall_clock))
    reg.add(build_spec(broken))
    return reg


def record(store: Path, actions: Registry, name: str = "bc", body: str = WORKFLOW) -> str:
    engine = Engine(store, registry=actions)
    run = engine.start_run(name, seed=42)
    engine.execute_all(run, parse_cell(body, actions))
    engine.end_run(run)
    return run.run_id


# ---------------------------------------------------------------- replay


def test_replay_restores_every_name_without_executing(store: Path, actions: Registry) -> None:
    run_id = record(store, actions)
    namespace: dict[str, object] = {}
    report = replay("bc", store=store, namespace=namespace, registry=actions)
    assert report.run_id == run_id
    assert [s.status for s in report.steps] == ["restored"] * 6
    assert set(namespace) == {
        "data",
        "X_train",
        "X_test",
        "y_train",
        "y_test",
        "X_train_s",
        "X_test_s",
        "model",
        "metrics",
        "summary",
    }
    assert namespace["metrics"] == report["metrics"]
    assert report["metrics"]["accuracy"] > 0.9  # type: ignore[index]
    assert report.ok
    assert report.env_differences == []
    assert "6 restored" in repr(report)
    assert "<table" in report._repr_html_()


def test_replay_upto_a_step_restores_only_what_existed_then(store: Path, actions: Registry) -> None:
    run_id = record(store, actions)
    report = replay(run_id[:10], upto=3, store=store, namespace={}, registry=actions)
    assert [s.seq for s in report.steps] == [1, 2, 3]
    assert "model" not in report.values
    assert "X_train_s" in report.values
    by_step_id = replay("bc", upto=f"{run_id}-000002", store=store, namespace={})
    assert [s.seq for s in by_step_id.steps] == [1, 2]
    with pytest.raises(RlamError, match=r"has no step 99; its steps are 1\.\.6"):
        replay("bc", upto=99, store=store, namespace={})


def test_replay_reports_a_failed_step_as_failed_never_as_none(
    store: Path, actions: Registry
) -> None:
    record(store, actions, body='data = load_dataset(name="iris")\nn = broken(data=data)')
    report = replay("bc", store=store, namespace={}, registry=actions)
    assert [s.status for s in report.steps] == ["restored", "failed"]
    assert report.steps[1].detail.startswith("RuntimeError: RuntimeError()")
    assert "n" not in report.values
    assert "failed" in repr(report)


def test_replay_reports_a_missing_object_instead_of_restoring_garbage(
    store: Path, actions: Registry
) -> None:
    record(store, actions, body='data = load_dataset(name="iris")')
    for path in (store / "objects").rglob("*.table"):
        path.unlink()
    report = replay("bc", store=store, namespace={})
    assert report.steps[0].status == "missing"
    assert "is missing from the store" in report.steps[0].detail
    assert not report.ok
    assert "data" not in report.values


def test_unknown_run_is_a_clear_error(store: Path, actions: Registry) -> None:
    record(store, actions, body='data = load_dataset(name="iris")')
    with pytest.raises(RlamError, match="no run 'nope' in this store"):
        replay("nope", store=store, namespace={})


# ---------------------------------------------------------------- verify


def test_verify_reports_every_step_identical(store: Path, actions: Registry) -> None:
    record(store, actions)
    report = replay("bc", verify=True, store=store, namespace={}, registry=actions)
    assert [s.verify for s in report.steps] == ["identical"] * 6
    assert report.ok
    assert "6 identical" in report.summary()


def test_verify_catches_a_nondeterministic_action(store: Path, actions: Registry) -> None:
    record(store, actions, body='data = load_dataset(name="iris")\nnow = wall_clock()')
    time.sleep(0.01)
    report = replay("bc", verify=True, store=store, namespace={}, registry=actions)
    assert [s.verify for s in report.steps] == ["identical", "diverged"]
    assert report.steps[1].differences[0].startswith("result: recorded ")
    assert not report.ok
    assert [s.seq for s in report.diverged] == [2]


def test_verify_skips_external_steps_and_uses_their_recorded_output(
    store: Path, actions: Registry, tmp_path: Path
) -> None:
    csv = tmp_path / "data.csv"
    pd.DataFrame({"a": [1, 2, 3], "target": [0, 1, 0]}).to_csv(csv, index=False)
    record(store, actions, body=f'data = load_csv(path="{csv}")\nsummary = describe(data=data)')
    csv.write_text("a,target\n9,9\n")  # the file changed since: replay must not read it
    report = replay("bc", verify=True, store=store, namespace={}, registry=actions)
    assert [s.verify for s in report.steps] == ["skipped (external)", "identical"]
    assert report.values["data"]["a"].tolist() == [1, 2, 3]


def test_verify_of_a_failed_step_checks_it_fails_the_same_way(
    store: Path, actions: Registry
) -> None:
    record(store, actions, body='data = load_dataset(name="iris")\nn = broken(data=data)')
    report = replay("bc", verify=True, store=store, namespace={}, registry=actions)
    assert report.steps[1].verify == "identical"
    assert "fails again with RuntimeError" in report.steps[1].differences[0]


def test_verify_without_the_action_registered_says_so(store: Path, actions: Registry) -> None:
    record(store, actions, body="now = wall_clock()")
    report = replay("bc", verify=True, store=store, namespace={})  # global registry only
    assert report.steps[0].verify == "skipped (action not registered)"


# ---------------------------------------------------------------- environment


def record_other_environment(store: Path, run_id: str, **packages: str) -> None:
    """Append to the run's journal an environment whose package versions differ, as a
    run recorded on another machine would have."""
    data = json.loads(json.dumps(fingerprint().data))
    data["packages"].update(packages)
    writer = JournalWriter(StoreLayout(store.resolve()), run_id)
    writer.append(
        "environments",
        {
            "env_id": "other-machine",
            "run_id": run_id,
            "fingerprint": json.dumps(data),
            "recorded_at": now_us(),
        },
    )
    writer.close()


def test_replay_lists_the_exact_package_versions_that_differ(
    store: Path, actions: Registry
) -> None:
    run_id = record(store, actions, body='data = load_dataset(name="iris")')
    record_other_environment(store, run_id, numpy="1.21.0", **{"rlam-ghost": "0.1"})
    report = replay("bc", store=store, namespace={})
    current = fingerprint().data["packages"]
    assert ("packages.numpy", "1.21.0", current["numpy"]) in report.env_differences
    assert ("packages.rlam-ghost", "0.1", None) in report.env_differences
    assert len(report.env_differences) == 2
    text = repr(report)
    assert f"packages.numpy: 1.21.0 (recorded) → {current['numpy']} (now)" in text
    assert "packages.rlam-ghost: 0.1 (recorded) → absent (now)" in text


def test_a_stale_or_missing_saved_index_is_rebuilt_from_the_store(
    store: Path, actions: Registry
) -> None:
    run_id = record(store, actions, body='data = load_dataset(name="iris")')
    saved = store / "index" / f"{run_id}.arrow"
    assert saved.exists()
    saved.unlink()
    assert replay("bc", store=store, namespace={}).steps[0].status == "restored"
    assert saved.exists()  # rebuilt and saved again
    saved.write_bytes(b"not an arrow file")
    assert replay("bc", store=store, namespace={}).steps[0].status == "restored"


# ---------------------------------------------------------------- fork


def test_fork_reruns_only_the_changed_step_and_its_descendants(
    store: Path, actions: Registry
) -> None:
    parent = record(store, actions)
    result = fork("bc", at=4, params={"C": 0.1}, store=store, namespace={}, registry=actions)
    assert [(r.seq, r.action, r.status) for r in result.results] == [
        (4, "train_model", "succeeded"),
        (5, "evaluate", "succeeded"),
        (6, "describe", "cached"),
    ]
    assert result.shared_steps == 3
    assert result["metrics"]["accuracy"] > 0.9
    con = rlam_jupyter.connect(store)
    fork_run = con.execute(
        "SELECT parent_run_id, fork_seq, status FROM runs WHERE run_id = ?", [result.run_id]
    ).fetchone()
    assert fork_run == (parent, 4, "succeeded")
    edge = con.execute("SELECT src, dst, role FROM edges WHERE type = 'forked_from'").fetchall()
    assert edge == [(result.run_id, parent, "4")]
    # the prefix is shared by reference: the fork's own journal holds no step before 4
    own = con.execute(
        "SELECT min(seq), count(*) FROM step_events WHERE run_id = ?", [result.run_id]
    ).fetchone()
    assert own is not None
    assert own[0] == 4
    inherited = con.execute(
        "SELECT seq, run_id, inherited_depth FROM run_steps(?) ORDER BY seq", [result.run_id]
    ).fetchall()
    assert [(s, r == parent, d) for s, r, d in inherited] == [
        (1, True, 1),
        (2, True, 1),
        (3, True, 1),
        (4, False, 0),
        (5, False, 0),
        (6, False, 0),
    ]


def test_forks_of_forks_and_the_fork_tree(store: Path, actions: Registry) -> None:
    root = record(store, actions)
    child = fork("bc", at=4, params={"C": 0.1}, store=store, namespace={}, registry=actions)
    grandchild = fork(
        child.run_id, at=2, params={"test_size": 0.3}, store=store, namespace={}, registry=actions
    )
    assert [(r.action, r.status) for r in grandchild.results] == [
        ("split", "succeeded"),
        ("scale", "succeeded"),
        ("train_model", "succeeded"),
        ("evaluate", "succeeded"),
        ("describe", "cached"),  # its input, the loaded data, is unchanged
    ]
    assert grandchild.shared_steps == 1
    # C=0.1 from the child is kept: the grandchild re-proposes the child's steps
    steps = replay(grandchild.run_id, store=store, namespace={}).steps
    assert [s.inherited_from for s in steps][:1] == [root]
    sibling = fork(child.run_id, at=5, store=store, namespace={}, registry=actions)
    assert [r.status for r in sibling.results] == ["cached", "cached"]
    tree = fork_tree(child.run_id, store=store)
    assert list(tree["run_id"]) == [root, child.run_id, grandchild.run_id, sibling.run_id]
    assert list(tree["depth"]) == [0, 1, 2, 2]
    assert list(tree["is_selected"]) == [False, True, False, False]
    assert list(tree["fork_seq"].fillna(0).astype(int)) == [0, 4, 2, 5]


def test_a_bad_override_is_refused_clearly_and_recorded(store: Path, actions: Registry) -> None:
    parent = record(store, actions)
    with pytest.raises(
        ForkRejected, match=r"refused, nothing ran .*C=-1: Input should be greater than 0"
    ):
        fork("bc", at=4, params={"C": -1}, store=store, namespace={}, registry=actions)
    with pytest.raises(ForkRejected, match="unknown parameter 'gamma'"):
        fork("bc", at=4, params={"gamma": 1}, store=store, namespace={}, registry=actions)
    con = rlam_jupyter.connect(store)
    refused = con.execute(
        "SELECT s.seq, s.status, r.parent_run_id, r.status FROM steps s JOIN runs r USING (run_id) "
        "WHERE r.parent_run_id IS NOT NULL ORDER BY s.recorded_at"
    ).fetchall()
    assert refused == [(4, "rejected", parent, "failed")] * 2


def test_fork_can_rebind_an_input_and_stop_after_the_step(store: Path, actions: Registry) -> None:
    record(store, actions)
    result = fork(
        "bc",
        at=4,
        params={"X": "X_train", "max_iter": 5000},
        downstream=False,
        store=store,
        namespace={},
        registry=actions,
    )
    assert [(r.seq, r.status) for r in result.results] == [(4, "succeeded")]
    with pytest.raises(RlamError, match=r"has no step 7; its steps are 1\.\.6"):
        fork("bc", at=7, store=store, namespace={}, registry=actions)


def test_fork_from_a_store_without_saved_indexes(store: Path, actions: Registry) -> None:
    record(store, actions)
    shutil.rmtree(store / "index")
    shutil.rmtree(store / "cache")  # e.g. a store imported from a bundle
    result = fork("bc", at=5, store=store, namespace={}, registry=actions)
    assert [r.status for r in result.results] == ["cached", "cached"]


# ---------------------------------------------------------------- diff


def test_diff_shows_the_changed_parameter_outputs_and_metrics(
    store: Path, actions: Registry
) -> None:
    record(store, actions)
    result = fork("bc", at=4, params={"C": 0.01}, store=store, namespace={}, registry=actions)
    comparison = diff("bc", result.run_id, store=store)
    assert [s.seq for s in comparison.differing] == [4, 5]
    train = comparison.differing[0]
    assert "param C: 1.0 → 0.01" in train.differences
    assert any(d.startswith("output result: ") for d in train.differences)
    assert not any("seed" in d for d in train.differences)  # a fork keeps the seeds
    assert [s.shared for s in comparison.steps] == [True, True, True, False, False, False]
    assert {m.metric for m in comparison.metrics} == {"accuracy", "f1", "roc_auc"}
    assert all(m.seq == 5 for m in comparison.metrics)
    text = repr(comparison)
    assert "6 aligned step(s), 4 identical (3 shared by reference), 2 differ" in text
    assert "accuracy" in text
    assert "<table" in comparison._repr_html_()
    assert diff("bc", "bc", store=store).identical


def test_diff_of_two_independent_runs_shows_seeds_and_environment(
    store: Path, actions: Registry
) -> None:
    first = record(
        store,
        actions,
        name="a",
        body='data = load_dataset(name="iris")\nX_train, X_test, y_train, y_test = split(data=data)',
    )
    engine = Engine(store, registry=actions)
    run = engine.start_run("b", seed=7)
    engine.execute_all(
        run,
        parse_cell(
            'data = load_dataset(name="iris")\nX_train, X_test, y_train, y_test = split(data=data)',
            actions,
        ),
    )
    engine.end_run(run)
    record_other_environment(store, run.run_id, numpy="1.21.0")
    writer = JournalWriter(StoreLayout(store.resolve()), run.run_id)
    writer.append(
        "runs",
        {
            "run_id": run.run_id,
            "name": "b",
            "seed": 7,
            "env_id": "other-machine",
            "status": "succeeded",
            "created_at": run.created_us,
        },
    )
    writer.close()
    comparison = diff(first, "b", store=store)
    assert [s.seq for s in comparison.differing] == [2]
    assert any(d.startswith("seed: ") for d in comparison.differing[0].differences)
    current = fingerprint().data["packages"]["numpy"]
    assert comparison.env_differences == [("packages.numpy", current, "1.21.0")]


# ---------------------------------------------------------------- %rlam commands


def test_replay_fork_and_diff_commands_in_a_kernel(shell: InteractiveShell) -> None:
    shell.run_cell_magic("rlam", "--run bc --seed 42 --quiet", WORKFLOW)
    shell.run_line_magic("rlam", "end")
    for name in ("model", "metrics", "data"):
        shell.user_ns.pop(name)
    report = shell.run_line_magic("rlam", "replay bc --upto 4")
    assert report.ok
    assert "model" in shell.user_ns
    assert "metrics" not in shell.user_ns
    before = shell.user_ns["model"].coef_.copy()

    forked = shell.run_line_magic("rlam", "fork bc --at 4 --set C=0.1 --name small-C")
    assert forked.name == "small-C"
    assert [r.status for r in forked.results] == ["succeeded", "succeeded", "cached"]
    assert not np.array_equal(shell.user_ns["model"].coef_, before)  # the fork's model
    assert shell.user_ns["metrics"] == forked["metrics"]
    # the fork is the current run: the next cell continues it
    shell.run_cell_magic("rlam", "--quiet", "predicted = predict(model=model, X=X_test_s)")
    session = shell._rlam_session  # type: ignore[attr-defined]
    assert session.current.name == "small-C"
    assert session.current.results[-1].seq == 7

    comparison = shell.run_line_magic("rlam", "diff bc small-C")
    assert [s.seq for s in comparison.differing] == [4, 5, 7]

    with pytest.raises(UsageError, match="the following arguments are required: --at"):
        shell.run_line_magic("rlam", "fork bc")
    with pytest.raises(UsageError, match="C=-1"):
        shell.run_line_magic("rlam", "fork bc --at 4 --set C=-1")
    with pytest.raises(UsageError, match="--set 'C': write name=value"):
        shell.run_line_magic("rlam", "fork bc --at 4 --set C")
    with pytest.raises(UsageError, match="no run 'nope'"):
        shell.run_line_magic("rlam", "replay nope")


def test_fork_set_values_are_python_or_json_literals(shell: InteractiveShell) -> None:
    shell.run_cell_magic("rlam", "--run rf --seed 1 --quiet", WORKFLOW)
    forked = shell.run_line_magic(
        "rlam",
        'fork rf --at 4 --set model="random_forest" --set n_estimators=10 --set max_depth=null',
    )
    assert type(shell.user_ns["model"]).__name__ == "RandomForestClassifier"
    assert shell.user_ns["model"].n_estimators == 10
    assert forked.ok


# ---------------------------------------------------------------- rlam CLI


def test_cli_replay_verify_diff_and_forks(
    store: Path,
    actions: Registry,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    record(store, actions)
    child = fork("bc", at=4, params={"C": 0.5}, store=store, namespace={}, registry=actions)
    assert cli.main(["replay", "bc", "--store", str(store), "--verify"]) == 0
    out = capsys.readouterr().out
    assert "6 identical" in out
    assert cli.main(["replay", child.run_id, "--store", str(store), "--json", "--upto", "4"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["counts"] == {"restored": 4}
    assert cli.main(["diff", "bc", child.name, "--store", str(store)]) == 0
    assert "param C: 1.0 → 0.5" in capsys.readouterr().out
    assert cli.main(["forks", "bc", "--store", str(store)]) == 0
    assert child.name in capsys.readouterr().out
    # actions defined outside the catalogue: --actions imports the module that registers them
    (tmp_path / "clock_actions.py").write_text(
        "import time\nimport rlam_jupyter\n\n"
        "@rlam_jupyter.action\ndef cli_clock() -> float:\n    return time.time()\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    clock = Registry()
    clock.add(build_spec(wall_clock, name="cli_clock"))
    record(store, clock, name="clock", body="now = cli_clock()")
    # a step that was not re-executed is never passed as verified, unless the user says so
    assert cli.main(["replay", "clock", "--store", str(store), "--verify"]) == cli.EXIT_CHECK_FAILED
    out = capsys.readouterr().out
    assert "skipped (action not registered)" in out
    assert "rlam replay, rlam mcp: --actions MODULE_OR_FILE" in " ".join(out.split())
    allowed = ["replay", "clock", "--store", str(store), "--verify", "--allow-skipped"]
    assert cli.main(allowed) == 0
    assert "1 step(s) not verified" in capsys.readouterr().out
    try:
        # --actions imports a module that registers another cli_clock: other code than the
        # one recorded, so the recorded result is not checked against it
        args = ["replay", "clock", "--store", str(store), "--verify", "--actions", "clock_actions"]
        assert cli.main(args) == cli.EXIT_CHECK_FAILED
        assert "cannot be checked against other code" in capsys.readouterr().out
        # recorded from that module, the step is re-executed with it, and diverges
        record(store, registry(), name="clock2", body="now = cli_clock()")
        args = ["replay", "clock2", "--store", str(store), "--verify", "--actions", "clock_actions"]
        assert cli.main(args) == cli.EXIT_CHECK_FAILED
        assert "diverged" in capsys.readouterr().out
    finally:
        registry().remove("cli_clock")


# ---------------------------------------------------------------- a new kernel


def _notebook(path: Path, cells: list[str]) -> Path:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    nbformat.write(notebook, path)
    return path


def test_replay_in_a_new_kernel_restores_the_model_with_the_same_predictions(
    tmp_path: Path,
) -> None:
    from rlam_jupyter.frontends.demo import run_notebook

    train = _notebook(
        tmp_path / "train.ipynb",
        [
            "%load_ext rlam_jupyter",
            "%%rlam --run bc --seed 42 --quiet\n"
            + WORKFLOW.replace("C=1.0", 'model="random_forest", n_estimators=20'),
            "import numpy as np\nnp.save('predictions.npy', model.predict_proba(X_test_s))",
        ],
    )
    run_notebook(train)
    restore = _notebook(
        tmp_path / "restore.ipynb",
        [
            "%load_ext rlam_jupyter",
            "report = %rlam replay bc --upto 4",
            "import numpy as np\n"
            "assert report.ok, report\n"
            "assert 'metrics' not in dir()\n"
            "np.save('replayed.npy', model.predict_proba(X_test_s))",
        ],
    )
    run_notebook(restore)
    original = np.load(tmp_path / "predictions.npy")
    replayed = np.load(tmp_path / "replayed.npy")
    assert original.shape == (143, 2)
    assert np.array_equal(original, replayed)


def bump(data: pd.DataFrame) -> int:
    """Edits its input in place (a bug an action may have); returns a constant."""
    data["mean radius"] += 1.0
    return 0


def radius_total(data: pd.DataFrame) -> float:
    """Innocent: reads the column the step before it edited in place."""
    return float(data["mean radius"].sum())


def test_verify_hands_each_step_its_recorded_inputs_even_after_an_in_place_edit(
    store: Path, actions: Registry
) -> None:
    actions.add(build_spec(bump))
    actions.add(build_spec(radius_total))
    body = 'data = load_dataset(name="breast_cancer")\nb = bump(data=data)\nt = radius_total(data=data)\n'
    record(store, actions, body=body)
    report = replay("bc", verify=True, store=store, namespace={}, registry=actions)
    assert [s.verify for s in report.steps] == ["identical"] * 3
