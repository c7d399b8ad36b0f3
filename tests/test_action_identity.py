"""An action's identity covers the code it calls: editing a helper must never serve a stale step."""

from __future__ import annotations

import dataclasses
import functools
import importlib
import json
import linecache
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from notebook_cells import execute_cells, output_text

import rlam_jupyter
from rlam_jupyter.actions.identity import identify

SHIFT = """\
import rlam_jupyter as rlam

def _shift(x):
    return x + 1

@rlam.action(determinism="pure", version="1")
def shift(value: float) -> float:
    return _shift(value)
"""

CELL = "%%rlam --run r --seed 1 --quiet\ny = shift(value=5.1)"


def _steps(folder: Path) -> list[tuple[int, str, str, str | None]]:
    con = rlam_jupyter.connect(folder / ".rlam")
    rows = con.execute(
        "SELECT seq, action, status, action_version FROM steps ORDER BY seq"
    ).fetchall()
    return [(int(r[0]), str(r[1]), str(r[2]), r[3]) for r in rows]


def test_editing_a_helper_in_another_cell_misses_the_cache_in_a_real_kernel(
    tmp_path: Path,
) -> None:
    cells = execute_cells(
        tmp_path,
        [
            "%load_ext rlam_jupyter",
            SHIFT,
            CELL,
            "print(y)",
            "def _shift(x):\n    return x + 100",  # the helper alone is edited
            CELL,
            "print(y)",
            CELL,  # nothing changed since: served from the cache
            "print(y)",
        ],
    )
    assert output_text(cells[3]).strip() == "6.1"
    assert output_text(cells[6]).strip() == "105.1"
    assert output_text(cells[8]).strip() == "105.1"
    steps = _steps(tmp_path)
    assert [s[2] for s in steps] == ["succeeded", "succeeded", "cached"]
    assert steps[0][3] != steps[1][3]  # another action version: the helper is part of it
    assert steps[1][3] == steps[2][3]


def test_a_global_constant_a_class_and_a_user_module_are_part_of_the_identity(
    tmp_path: Path,
) -> None:
    (tmp_path / "lab_helpers.py").write_text("def scale(x):\n    return x * 2\n")
    cells = execute_cells(
        tmp_path,
        [
            "%load_ext rlam_jupyter\nimport rlam_jupyter as rlam\nimport lab_helpers",
            textwrap.dedent(
                """\
                OFFSET = 1.0

                class Model:
                    def predict(self, x):
                        return x + OFFSET

                @rlam.action(determinism="pure")
                def offset_scale(value: float) -> float:
                    return lab_helpers.scale(Model().predict(value))
                """
            ),
            "%%rlam --run r --quiet\np = offset_scale(value=1.0)",
            "print(p)",
            "OFFSET = 2.0",
            "%%rlam --run r --quiet\np = offset_scale(value=1.0)",
            "print(p)",
            "class Model:\n    def predict(self, x):\n        return x - OFFSET",
            "%%rlam --run r --quiet\np = offset_scale(value=1.0)",
            "print(p)",
            "import importlib, pathlib\n"
            "pathlib.Path('lab_helpers.py').write_text('def scale(x):\\n    return x * 10\\n')\n"
            "importlib.reload(lab_helpers)",
            "%%rlam --run r --quiet\np = offset_scale(value=1.0)",
            "print(p)",
            "%%rlam --run r --quiet\np = offset_scale(value=1.0)",
        ],
    )
    printed = [output_text(cells[i]).strip() for i in (3, 6, 9, 12)]
    assert printed == ["4.0", "6.0", "-2.0", "-10.0"]
    assert [s[2] for s in _steps(tmp_path)] == ["succeeded"] * 4 + ["cached"]


def test_code_whose_dependencies_cannot_be_known_is_never_served_from_the_cache(
    tmp_path: Path,
) -> None:
    cells = execute_cells(
        tmp_path,
        [
            "%load_ext rlam_jupyter\nimport rlam_jupyter as rlam",
            textwrap.dedent(
                """\
                @rlam.action(determinism="pure")
                def dynamic(value: float) -> float:
                    found = {}
                    exec("r = v * 2", {"v": value}, found)
                    return found["r"]
                """
            ),
            "%%rlam --run r --quiet\nd = dynamic(value=2.0)",
            "%%rlam --run r --quiet\nd = dynamic(value=2.0)",
        ],
    )
    assert "not served from the cache" in output_text(cells[3])
    assert "exec()" in output_text(cells[3])
    assert [s[2] for s in _steps(tmp_path)] == ["succeeded", "succeeded"]
    con = rlam_jupyter.connect(tmp_path / ".rlam")
    keys = con.execute("SELECT DISTINCT cache_key FROM steps").fetchall()
    assert keys == [(None,)]  # no key that a later cache lookup could match
    (why,) = con.execute("SELECT DISTINCT uncacheable FROM actions").fetchone() or ("",)
    assert "exec()" in why


def test_the_identity_names_package_versions_and_is_stable_across_calls() -> None:
    def norm(values: list[float]) -> float:
        return float(np.linalg.norm(values))

    first = identify("norm", "1", norm)
    assert first.packages["numpy"] == np.__version__
    assert first.uncacheable is None
    assert identify("norm", "1", norm).digest == first.digest
    assert identify("norm", "2", norm).digest != first.digest


def test_each_action_version_records_its_defining_source(tmp_path: Path) -> None:
    execute_cells(tmp_path, ["%load_ext rlam_jupyter", SHIFT, CELL])
    con = rlam_jupyter.connect(tmp_path / ".rlam")
    origin, source, dependencies = con.execute(
        "SELECT origin, source, dependencies FROM actions WHERE name = 'shift'"
    ).fetchone() or ("", "{}", "[]")
    assert origin == "cell"
    code = json.loads(source)["code"]
    assert "def _shift(x):" in code
    assert "def shift(value: float)" in code
    assert "import rlam_jupyter as rlam" in code
    assert "calls __main__._shift" in json.loads(dependencies)


# ---------------------------------------------------------------- what the identity sees


def _module(folder: Path, name: str, text: str) -> None:
    path = folder.joinpath(*name.split("."))
    if "." in name:
        path.parent.mkdir(parents=True, exist_ok=True)
        (path.parent / "__init__.py").touch()
    path.with_suffix(".py").write_text(text)


def test_user_code_inside_a_value_is_part_of_the_identity(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dict of helpers or a partial is pickled by name: the helpers' code must be walked."""
    _module(tmp_path, "dispatch_helpers", "def double(x):\n    return x * 2\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import dispatch_helpers

    table = {"double": dispatch_helpers.double}
    bound = functools.partial(dispatch_helpers.double)

    def through_table(x: float) -> float:
        return float(table["double"](x) + bound(x))

    before = identify("t", "1", through_table)
    _module(tmp_path, "dispatch_helpers", "def double(x):\n    return x * 3\n")
    importlib.reload(dispatch_helpers)
    table["double"] = dispatch_helpers.double
    bound = functools.partial(dispatch_helpers.double)
    after = identify("t", "1", through_table)
    assert before.uncacheable is None
    assert before.digest != after.digest


def test_a_submodule_imported_inside_the_action_is_part_of_the_identity(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _module(tmp_path, "labpkg.sub", "def f(x):\n    return x + 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    def uses_sub(x: float) -> float:
        from labpkg import sub

        return float(sub.f(x))

    before = identify("u", "1", uses_sub)  # labpkg not even imported yet
    _module(tmp_path, "labpkg.sub", "def f(x):\n    return x + 2\n")
    assert identify("u", "1", uses_sub).digest != before.digest


def test_the_matplotlib_style_and_the_sklearn_config_are_part_of_the_identity() -> None:
    import matplotlib
    import sklearn

    from rlam_jupyter.actions.default_registry import registry

    plot = registry()["plot"]
    before = plot.current_identity()
    with matplotlib.rc_context({"axes.facecolor": "#eeeeee"}):
        assert plot.current_identity().digest != before.digest
    assert plot.current_identity().digest == before.digest
    split = registry()["split"]
    plain = split.current_identity().digest
    with sklearn.config_context(assume_finite=True):
        configured = split.current_identity().digest
    assert configured != plain


def test_a_pure_python_cell_depends_on_the_modules_it_imports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rlam_jupyter.actions.python_cell import python_spec

    _module(tmp_path, "cell_helpers", "K = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = python_spec("import cell_helpers\ny = cell_helpers.K\n", [], ["y"], pure=True)
    before = spec.current_identity()
    _module(tmp_path, "cell_helpers", "K = 2\n")
    assert spec.current_identity().digest != before.digest


def test_a_module_edited_after_import_does_not_lend_its_new_source_to_old_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The old code runs until the module is reloaded: its results must not be cached under
    the identity a fresh kernel (running the new code) computes."""
    _module(tmp_path, "edited_helpers", "def g(x):\n    return x + 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import edited_helpers

    def calls_g(x: float) -> float:
        return float(edited_helpers.g(x))

    _module(tmp_path, "edited_helpers", "def g(x):\n    return x + 1000\n")
    linecache.checkcache()
    stale = identify("g", "1", calls_g)  # old code loaded, new source on disk
    importlib.reload(edited_helpers)
    fresh = identify("g", "1", calls_g)
    assert stale.digest != fresh.digest


class _Unreadable:
    def __reduce__(self) -> Any:
        raise RuntimeError("no pickling")

    def __repr__(self) -> str:
        raise RuntimeError("no repr either")


UNREADABLE = _Unreadable()


def reads_unreadable(x: float) -> float:
    return x if UNREADABLE else -x


def test_a_dependency_that_cannot_be_read_makes_the_step_uncacheable_not_lost(
    store: Path,
) -> None:
    from rlam_jupyter.actions.proposal import Proposal
    from rlam_jupyter.actions.registry import Registry, build_spec
    from rlam_jupyter.engine import Engine

    actions = Registry()
    actions.add(build_spec(reads_unreadable))
    engine = Engine(store, registry=actions)
    run = engine.start_run("r", 1)
    result = engine.execute(run, Proposal("reads_unreadable", {"x": 1.0}, targets=("y",)))
    assert result.status == "succeeded"
    assert any("not served from the cache" in note for note in result.notes)


@dataclasses.dataclass(frozen=True)
class Settings:
    scale: float = 2.0

    @functools.cached_property
    def doubled(self) -> float:
        return self.scale * 2


def scaled(x: float) -> float:
    return x * Settings().doubled


def test_dataclasses_and_cached_properties_stay_cacheable() -> None:
    identity = identify("s", "1", scaled)
    assert identity.uncacheable is None
    assert any(line.endswith(".Settings") for line in identity.describe())
