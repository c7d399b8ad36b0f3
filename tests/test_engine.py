"""The engine's cache and recovery accounting, on the breast-cancer workflow in a real store."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
from IPython.core.interactiveshell import InteractiveShell

import rlam_jupyter
from rlam_jupyter.actions.default_registry import registry
from rlam_jupyter.actions.proposal import Proposal, parse_cell
from rlam_jupyter.actions.registry import Registry, build_spec
from rlam_jupyter.engine import Engine, Run
from rlam_jupyter.engine.trace import StepResult
from rlam_jupyter.frontends.magics.cell import StepFailedError
from rlam_jupyter.values.hashing import canonicalize


class _Calls:
    """How often each test action's body ran, counted in a file: a Python global the
    actions wrote to would be part of their identity (its value changes with every call,
    so no step could ever be served from the cache)."""

    def __getitem__(self, name: str) -> int:
        return _calls_file().read_text().split().count(name)

    def clear(self) -> None:
        _calls_file().write_text("")


CALLS = _Calls()


def _calls_file() -> Path:
    return Path(os.environ["RLAM_TEST_CALLS"])


def _called(name: str) -> None:
    with open(os.environ["RLAM_TEST_CALLS"], "a") as log:
        log.write(name + "\n")


def count_rows(data: pd.DataFrame) -> int:
    """Counts its own calls, so a test can see whether the body ran."""
    _called("count_rows")
    return len(data)


def always_fresh(data: pd.DataFrame) -> int:
    """An action that opts out of the cache."""
    _called("always_fresh")
    return int(data.shape[1])


def explode(data: pd.DataFrame) -> int:
    raise KeyError("missing")


WORKFLOW = """\
data = load_dataset(name="breast_cancer")
X_train, X_test, y_train, y_test = split(data=data)
X_train_s, X_test_s = scale(X_train=X_train, X_test=X_test)
model = train_model(X=X_train_s, y=y_train, C={C})
metrics = evaluate(model=model, X=X_test_s, y=y_test)
rows = count_rows(data=data)
"""


@pytest.fixture
def actions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Registry:
    """The built-in catalogue plus this module's test actions (kept out of the global registry)."""
    monkeypatch.setenv("RLAM_TEST_CALLS", str(tmp_path / "calls.txt"))
    CALLS.clear()
    reg = Registry()
    for spec in registry().values():
        reg.add(spec)
    reg.add(build_spec(count_rows))
    reg.add(build_spec(always_fresh, cache=False))
    reg.add(build_spec(explode))
    return reg


def _run(
    store: Path, actions: Registry, name: str, *, C: float = 1.0, **options: bool
) -> tuple[Engine, list[StepResult]]:
    engine = Engine(store, registry=actions)
    run = engine.start_run(name, seed=42)
    results = engine.execute_all(run, parse_cell(WORKFLOW.format(C=C), actions), **options)
    engine.end_run(run)
    return engine, results


def test_same_workflow_and_seed_is_served_entirely_from_the_cache(
    store: Path, actions: Registry
) -> None:
    first_engine, first = _run(store, actions, "first")
    assert [r.status for r in first] == ["succeeded"] * 6
    assert first_engine.executions == 6
    assert CALLS["count_rows"] == 1

    engine, second = _run(store, actions, "second")  # a new engine, as a new kernel would be
    assert [r.status for r in second] == ["cached"] * 6
    assert engine.executions == 0
    assert CALLS["count_rows"] == 1  # the body did not run again
    assert [r.cached_from for r in second] == [r.step_id for r in first]
    for a, b in zip(first, second, strict=True):
        assert dict(a.outputs) == dict(b.outputs)
        for name in a.values:
            assert canonicalize(a.values[name]).payload == canonicalize(b.values[name]).payload


def test_changing_one_parameter_reruns_only_that_step_and_its_descendants(
    store: Path, actions: Registry
) -> None:
    _run(store, actions, "base", C=1.0)
    engine, results = _run(store, actions, "smaller-C", C=0.1)
    by_action = {r.action: r.status for r in results}
    assert by_action == {
        "load_dataset": "cached",
        "split": "cached",
        "scale": "cached",
        "train_model": "succeeded",  # its parameter changed
        "evaluate": "succeeded",  # its input (the model) changed
        "count_rows": "cached",  # not downstream of the model
    }
    assert engine.executions == 2
    assert CALLS["count_rows"] == 1


def test_no_cache_executes_every_step_and_records_them_as_succeeded(
    store: Path, actions: Registry
) -> None:
    _run(store, actions, "warm")
    engine, results = _run(store, actions, "cold", use_cache=False)
    assert [r.status for r in results] == ["succeeded"] * 6
    assert engine.executions == 6
    assert CALLS["count_rows"] == 2


def test_an_action_with_cache_false_always_runs(store: Path, actions: Registry) -> None:
    engine = Engine(store, registry=actions)
    run = engine.start_run("fresh", seed=1)
    cell = 'data = load_dataset(name="iris")\nn1 = always_fresh(data=data)\nn2 = always_fresh(data=data)'
    results = engine.execute_all(run, parse_cell(cell, actions))
    assert [r.status for r in results] == ["succeeded"] * 3
    assert CALLS["always_fresh"] == 2


def test_the_cache_is_shared_by_engines_and_checks_that_objects_still_exist(
    store: Path, actions: Registry
) -> None:
    first, results = _run(store, actions, "first")
    model_path = first.objects.path_of(
        first.objects.relative_path("pickle2", results[3].outputs["result"])
    )
    assert model_path.exists()
    model_path.unlink()  # e.g. a cleaned-up object store
    _engine, again = _run(store, actions, "second")
    statuses = {r.action: r.status for r in again}
    assert statuses["train_model"] == "succeeded"  # re-executed: the cached object is gone
    assert statuses["scale"] == "cached"
    assert model_path.exists()


def test_cache_entries_survive_in_the_store_not_only_in_memory(
    store: Path, actions: Registry
) -> None:
    first, _results = _run(store, actions, "first")
    logs = list((store / "cache").rglob("*.jsonl"))  # sharded by key: cache/<xx>/<writer>.jsonl
    assert {log.stem for log in logs} == {first.writer_id}
    assert sum(len(log.read_text().splitlines()) for log in logs) == 6
    logs[0].write_bytes(logs[0].read_bytes() + b'["torn')  # a writer died mid-line
    engine, _results = _run(store, actions, "second")
    assert engine.executions == 0


# ---------------------------------------------------------------- recovery


def _failing_run(store: Path, actions: Registry) -> tuple[Engine, Run, str]:
    engine = Engine(store, registry=actions)
    run = engine.start_run("recover", seed=3)
    engine.execute_all(run, parse_cell('data = load_dataset(name="iris")', actions))
    failed = engine.execute(run, parse_cell("n = explode(data=data)", actions)[0])
    assert failed.status == "failed"
    assert failed.error is not None
    assert failed.error.type == "KeyError"
    return engine, run, failed.step_id


def test_a_recovered_failure_leaves_the_run_succeeded(store: Path, actions: Registry) -> None:
    engine, run, failed_id = _failing_run(store, actions)
    recovery = engine.execute(
        run, parse_cell("n = count_rows(data=data)", actions)[0], recovers=failed_id
    )
    assert recovery.ok
    engine.end_run(run)
    con = rlam_jupyter.connect(store)
    assert con.execute("SELECT status FROM runs").fetchall() == [("succeeded",)]
    edge = con.execute("SELECT src, dst FROM edges WHERE type = 'recovers'").fetchall()
    assert edge == [(recovery.step_id, failed_id)]


def test_an_unrecovered_failure_fails_the_run(store: Path, actions: Registry) -> None:
    engine, run, _failed = _failing_run(store, actions)
    engine.execute(run, parse_cell("n = count_rows(data=data)", actions)[0])  # no --recover
    engine.end_run(run)
    con = rlam_jupyter.connect(store)
    assert con.execute("SELECT status FROM runs").fetchall() == [("failed",)]


def test_a_chain_of_recoveries_counts_when_the_last_one_succeeds(
    store: Path, actions: Registry
) -> None:
    engine, run, failed_id = _failing_run(store, actions)
    second = engine.execute(run, parse_cell("n = explode(data=data)", actions)[0], recovers="2")
    assert second.status == "failed"
    assert second.recovers == failed_id  # "2" is the failed step's number in this run
    third = engine.execute(
        run, parse_cell("n = count_rows(data=data)", actions)[0], recovers=second.step_id
    )
    assert third.ok
    assert run.unrecovered_failures == []


def test_a_cached_recovery_still_counts(store: Path, actions: Registry) -> None:
    warm = Engine(store, registry=actions)
    warm_run = warm.start_run("warm-iris", seed=3)
    warm.execute_all(
        warm_run, parse_cell('data = load_dataset(name="iris")\nn = count_rows(data=data)', actions)
    )
    warm.end_run(warm_run)
    engine, run, failed_id = _failing_run(store, actions)
    recovery = engine.execute(
        run, parse_cell("n = count_rows(data=data)", actions)[0], recovers=failed_id
    )
    assert recovery.status == "cached"
    assert recovery.recovers == failed_id
    assert run.unrecovered_failures == []


def test_recovering_a_step_that_did_not_fail_is_refused_and_recorded(
    store: Path, actions: Registry
) -> None:
    engine, run, _failed = _failing_run(store, actions)
    refused = engine.execute(run, parse_cell("n = count_rows(data=data)", actions)[0], recovers="1")
    assert refused.status == "rejected"
    assert refused.error is not None
    assert "--recover 1" in refused.error.message
    assert "succeeded" in refused.error.message
    assert "Failed or rejected steps of run recover" in refused.error.message
    unknown = engine.execute(
        run, parse_cell("n = count_rows(data=data)", actions)[0], recovers="NOPE"
    )
    assert unknown.status == "rejected"
    assert unknown.error is not None
    assert "'NOPE' is not a step of this run" in unknown.error.message


def test_recover_option_of_the_cell_magic(shell: InteractiveShell) -> None:
    shell.run_cell_magic("rlam", "--run rec --quiet", 'data = load_dataset(name="iris")')
    with pytest.raises(StepFailedError) as failure:
        shell.run_cell_magic("rlam", "--quiet", 'small = select_columns(data=data, columns=["x"])')
    # the error names the step by its number and says how to answer it
    assert "`%%rlam --recover 2`" in str(failure.value)
    shell.run_cell_magic(
        "rlam",
        "--quiet --recover 2",
        'small = select_columns(data=data, columns=["target"])',
    )
    shell.run_line_magic("rlam", "end")
    con = rlam_jupyter.connect()
    step_id = con.execute("SELECT step_id FROM steps WHERE seq = 2").fetchone()[0]  # type: ignore[index]
    assert con.execute("SELECT status FROM runs WHERE name = 'rec'").fetchall() == [("succeeded",)]
    assert con.execute("SELECT dst FROM edges WHERE type = 'recovers'").fetchall() == [(step_id,)]


def test_names_inherited_by_a_run_load_only_when_a_step_uses_them(
    store: Path, actions: Registry
) -> None:
    engine = Engine(store, registry=actions)
    run = engine.start_run("lazy", seed=1)
    engine.execute(run, Proposal("load_dataset", {"name": "iris"}, {}, ("data",)))
    engine.execute(run, Proposal("load_dataset", {"name": "wine"}, {}, ("other",)))
    for binding in run.bindings.values():  # as a fork sees its parent's names
        binding.value, binding.loaded = None, False
    result = engine.execute(run, Proposal("count_rows", {}, {"data": "data"}, ("n",)))
    assert result.ok
    assert run.bindings["data"].loaded
    assert not run.bindings["other"].loaded


def test_inputs_edited_in_place_are_caught_and_replaced_by_the_recorded_value(
    store: Path, actions: Registry
) -> None:
    engine = Engine(store, registry=actions)
    run = engine.start_run("in-place", seed=3)
    engine.execute_all(run, parse_cell(WORKFLOW.format(C=1.0), actions), use_cache=False)
    recorded_rows = run.bindings["rows"].value
    data = run.bindings["data"].value
    data.loc[len(data)] = data.iloc[0]  # an in-place edit, as a user might make one
    counted = engine.execute(
        run, Proposal("count_rows", {}, {"data": "data"}, ("n",)), use_cache=False
    )
    assert counted.values["result"] == recorded_rows
    assert any("modified in place" in note for note in counted.notes)
    run.bindings["model"].value.coef_[:] = 0.0  # the model is handed on live, not restored
    scored = engine.execute(
        run,
        Proposal("evaluate", {}, {"model": "model", "X": "X_test_s", "y": "y_test"}, ("m",)),
        use_cache=False,
    )
    assert scored.values["result"] == run.bindings["metrics"].value
    assert any("'model' was modified in place" in note for note in scored.notes)
    again = engine.execute(
        run, Proposal("count_rows", {}, {"data": "data"}, ("n2",)), use_cache=False
    )
    assert again.notes == ()  # the restored value is known good: no second note


def test_object_store_recreates_a_missing_shard_folder(tmp_path: Path) -> None:
    import shutil

    engine = Engine(tmp_path / ".rlam")
    canonical = canonicalize({"a": 1})
    path = engine.objects.put(canonical)
    assert path is not None
    shutil.rmtree(engine.objects.path_of(path).parent)
    assert engine.objects.put(canonical) == path
    assert engine.objects.get(path) == {"a": 1}


def interrupted_here(data: pd.DataFrame) -> int:
    """What Ctrl-C in the middle of a long step looks like from inside it."""
    raise KeyboardInterrupt


def test_a_step_interrupted_by_the_user_is_recorded_as_interrupted_and_can_be_recovered(
    store: Path, actions: Registry
) -> None:
    actions.add(build_spec(interrupted_here))
    engine = Engine(store, registry=actions)
    run = engine.start_run("stop", seed=1)
    engine.execute_all(run, parse_cell('data = load_dataset(name="iris")', actions))
    with pytest.raises(KeyboardInterrupt):
        engine.execute(run, parse_cell("n = interrupted_here(data=data)", actions)[0])
    recovery = engine.execute(
        run, parse_cell("n = count_rows(data=data)", actions)[0], recovers="2"
    )
    assert recovery.ok
    engine.end_run(run)
    con = rlam_jupyter.connect(store)
    assert con.execute("SELECT status, error_type FROM steps WHERE seq = 2").fetchone() == (
        "interrupted",
        "KeyboardInterrupt",
    )
    report = rlam_jupyter.audit("stop", store)
    assert report.trace_completeness == 1.0  # its outcome is on record
    assert [(f.status, f.recovered_by) for f in report.failures] == [
        ("interrupted", recovery.step_id)
    ]


def test_a_failed_steps_traceback_starts_at_the_actions_own_frames(tmp_path: Path) -> None:
    """The recorded traceback shows the user's code, not the engine that called it."""

    def divide(x: int) -> float:
        return x / 0

    actions = Registry()
    actions.add(build_spec(divide))
    engine = Engine(tmp_path / ".rlam", registry=actions)
    run = engine.start_run("failing", 0)
    result = engine.execute(run, Proposal("divide", {"x": 1}, targets=("y",)))
    engine.end_run(run)
    assert result.status == "failed"
    assert result.error is not None
    recorded = result.error.traceback
    assert "in divide" in recorded
    assert "ZeroDivisionError" in recorded
    package = Path(rlam_jupyter.__file__).parent
    assert str(package / "engine") not in recorded
