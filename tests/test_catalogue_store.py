"""A store the built-in catalogue recorded with 0.2.0 before the package moved into layers
(``rlam_jupyter.catalogue`` then, ``rlam_jupyter.actions.catalogue`` now) still verifies
by re-execution and still serves its cache: where a module lives is not what it computes.

``tests/data/catalogue_store`` was written at d6a58a3 by one run ``catalogue``, seed 3:
``load_dataset(iris)``, ``split``, ``scale``, ``train_model(logistic_regression)``,
``evaluate``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from rlam_jupyter.actions.proposal import parse_cell
from rlam_jupyter.engine import Engine
from rlam_jupyter.operations.audit import audit

RECORDED = Path(__file__).parent / "data" / "catalogue_store"
BODY = """data = load_dataset(name="iris")
X_train, X_test, y_train, y_test = split(data=data, target="target", test_size=0.25)
X_train_s, X_test_s = scale(X_train=X_train, X_test=X_test)
model = train_model(X=X_train_s, y=y_train, model="logistic_regression")
metrics = evaluate(model=model, X=X_test_s, y=y_test)
"""


@pytest.fixture
def store(tmp_path: Path) -> Path:
    copy = tmp_path / ".rlam"
    shutil.copytree(RECORDED, copy)
    return copy


def test_the_recorded_catalogue_run_reproduces(store: Path) -> None:
    report = audit("catalogue", store)
    assert report.skipped() == []
    assert report.passes(allow_skipped=False)


def test_the_same_steps_are_served_from_the_recorded_cache(store: Path) -> None:
    engine = Engine(store)
    run = engine.start_run("again", 3)
    results = [engine.execute(run, p) for p in parse_cell(BODY, engine.registry)]
    engine.end_run(run)
    assert [r.status for r in results] == ["cached"] * 5
