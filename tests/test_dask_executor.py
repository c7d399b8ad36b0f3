"""Steps executed on a real dask.distributed LocalCluster (2 worker processes).

Seeds are pinned on the worker, outputs are hashed where they were made, and the
trace says where each step ran: a run on the cluster gives the hashes of a local run
and a fork executed on the cluster verifies locally as identical.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell

from rlam_jupyter.actions.proposal import parse_cell
from rlam_jupyter.engine import Engine
from rlam_jupyter.engine.cell_plan import close_executors
from rlam_jupyter.engine.executors import DaskExecutor, executor_for
from rlam_jupyter.operations.replay import fork, replay
from rlam_jupyter.store.catalog import connect

distributed = pytest.importorskip("distributed")

BREAST_CANCER = """
data = load_dataset(name="breast_cancer")
X_train, X_test, y_train, y_test = split(data=data, test_size=0.25)
X_train_s, X_test_s = scale(X_train=X_train, X_test=X_test)
model = train_model(X=X_train_s, y=y_train, model="random_forest", n_estimators=30)
metrics = evaluate(model=model, X=X_test_s, y=y_test)
"""


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """One LocalCluster for the module: two worker processes, one thread each."""
    # IPython's shell (other tests) installs a __main__ without __spec__, which the
    # process start-up of Dask's nannies reads.
    main = sys.modules["__main__"]
    if not hasattr(main, "__spec__"):
        main.__spec__ = None
    with distributed.LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None
    ) as local:
        yield local.scheduler_address


def _run(store: Path, executor: str | None = None) -> tuple[str, list[dict[str, str]]]:
    engine = Engine(store)
    if executor is not None:
        engine.executor = executor_for(executor)
    run = engine.start_run("breast-cancer", 42)
    results = engine.execute_all(run, parse_cell(BREAST_CANCER, engine.registry))
    engine.end_run(run)
    engine.executor.close()
    assert [r.status for r in results] == ["succeeded"] * 5
    return run.run_id, [dict(r.outputs) for r in results]


def test_cluster_run_gives_the_hashes_of_a_local_run(cluster: str, tmp_path: Path) -> None:
    _, local = _run(tmp_path / "local")
    run_id, remote = _run(tmp_path / "cluster", f"dask://{cluster.removeprefix('tcp://')}")
    assert remote == local

    con = connect(tmp_path / "cluster")
    placed = con.execute(
        "SELECT executor, host, env_id FROM steps WHERE run_id = ? ORDER BY seq", [run_id]
    ).fetchall()
    assert all(executor.startswith("dask tcp://127.0.0.1:") for executor, _, _ in placed)
    worker_envs = {env for _, _, env in placed}
    recorded = {
        env_id
        for (env_id,) in con.execute(
            "SELECT env_id FROM environments WHERE run_id = ?", [run_id]
        ).fetchall()
    }
    assert worker_envs <= recorded
    local_con = connect(tmp_path / "local")
    assert local_con.execute("SELECT DISTINCT executor FROM steps").fetchall() == [(None,)]


def test_fork_on_the_cluster_verifies_locally_as_identical(cluster: str, tmp_path: Path) -> None:
    store = tmp_path / ".rlam"
    run_id, _ = _run(store)
    engine = Engine(store)
    engine.executor = DaskExecutor(cluster)
    forked = fork(run_id, at=4, params={"n_estimators": 20}, store=store, engine=engine)
    engine.executor.close()
    assert forked.ok
    assert [r.status for r in forked.results] == ["succeeded", "succeeded"]

    report = replay(forked.run_id, verify=True, store=store, engine=Engine(store))
    assert report.ok
    verdicts = {s.seq: s.verify for s in report.steps if s.seq >= 4}
    assert verdicts == {4: "identical", 5: "identical"}
    con = connect(store)
    ran_on = con.execute(
        "SELECT seq, executor FROM steps WHERE run_id = ? ORDER BY seq", [forked.run_id]
    ).fetchall()
    assert [seq for seq, _ in ran_on] == [4, 5]
    assert all(executor.startswith("dask ") for _, executor in ran_on)


def test_independent_steps_of_a_cell_run_ahead_and_record_in_order(
    shell: InteractiveShell, cluster: str
) -> None:
    shell.run_cell_magic(
        "rlam",
        "--run grid --seed 5",
        'data = load_dataset(name="breast_cancer")\n'
        "X_train, X_test, y_train, y_test = split(data=data, test_size=0.25)\n",
    )
    grid = "".join(
        f'm{i} = train_model(X=X_train, y=y_train, model="random_forest", n_estimators={n})\n'
        for i, n in enumerate((10, 20, 30))
    )
    shell.run_cell_magic("rlam", f"--run grid --executor dask://{cluster}", grid)
    assert type(shell.user_ns["m2"]).__name__ == "RandomForestClassifier"  # bound as usual
    con = connect(Path(".rlam"))
    rows = con.execute(
        "SELECT seq, executor, params FROM steps WHERE action = 'train_model' ORDER BY seq"
    ).fetchall()
    assert [seq for seq, _, _ in rows] == [3, 4, 5]
    assert [json.loads(p)["n_estimators"] for _, _, p in rows] == [10, 20, 30]
    assert all(executor.startswith("dask ") for _, executor, _ in rows)

    # the same cell run locally records the same output hashes
    shell.run_cell_magic(
        "rlam",
        "--run grid-local --seed 5 --no-cache",
        'data = load_dataset(name="breast_cancer")\n'
        "X_train, X_test, y_train, y_test = split(data=data, test_size=0.25)\n" + grid,
    )
    con = connect(Path(".rlam"))
    by_run = con.execute(
        "SELECT r.name, s.seq, s.outputs FROM steps s JOIN runs r USING (run_id) "
        "WHERE s.action = 'train_model' ORDER BY r.name, s.seq"
    ).fetchall()
    close_executors()
    on_cluster = [o for name, _, o in by_run if name == "grid"]
    local = [o for name, _, o in by_run if name == "grid-local"]
    assert on_cluster == local


def test_unknown_executor_is_refused_with_the_fix() -> None:
    with pytest.raises(Exception, match=r"dask://HOST:PORT"):
        executor_for("spark://x")
