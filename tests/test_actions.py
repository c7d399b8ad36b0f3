"""@action turns typed functions into schema-checked action types."""

from __future__ import annotations

import enum
from typing import Annotated, Any, Literal, NamedTuple

import numpy as np
import pandas as pd
import pytest
from pydantic import Field

import rlam_jupyter
from rlam_jupyter.actions.default_registry import registry
from rlam_jupyter.actions.registry import Input, build_spec


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Pair(NamedTuple):
    left: pd.DataFrame
    right: pd.DataFrame


def halves(
    data: pd.DataFrame, rng: np.random.Generator, frac: Annotated[float, Field(gt=0, lt=1)] = 0.5
) -> Pair:
    """Split rows in two at random."""
    mask = rng.random(len(data)) < frac
    return Pair(data[mask], data[~mask])


def test_bare_and_configured_decorator_register_and_return_the_function() -> None:
    def bare_noop(n: int = 1) -> int:
        """Return n."""
        return n

    def configured(path: str) -> str:
        return path

    assert rlam_jupyter.action(bare_noop) is bare_noop
    decorated = rlam_jupyter.action(determinism="external", version="2", requires_approval=True)(
        configured
    )
    assert decorated is configured
    reg = registry()
    assert reg["bare_noop"].determinism == "pure"
    assert reg["configured"].determinism == "external"
    assert reg["configured"].version == "2"
    assert reg["configured"].requires_approval
    reg.remove("bare_noop")
    reg.remove("configured")


def test_schema_from_type_hints_has_ranges_enums_literals_and_inputs() -> None:
    def shaded(
        data: pd.DataFrame,
        color: Color,
        mode: Literal["fast", "exact"] = "fast",
        k: Annotated[int, Field(ge=1, le=10)] = 3,
        weights: Annotated[Any, Input] = None,
    ) -> pd.DataFrame:
        return data

    spec = build_spec(shaded)
    assert set(spec.inputs) == {"data", "weights"}
    assert spec.param_names == ("color", "mode", "k")
    schema = spec.json_schema()
    props = schema["properties"]
    assert props["k"]["minimum"] == 1
    assert props["k"]["maximum"] == 10
    assert props["mode"]["enum"] == ["fast", "exact"]
    assert schema["$defs"]["Color"]["enum"] == ["red", "blue"]
    assert props["data"]["x-rlam-input"] is True
    assert "color" in schema["required"]
    assert "data" in schema["required"]
    assert schema["additionalProperties"] is False
    assert spec.validate_params({"color": "blue"}).color is Color.BLUE  # type: ignore[attr-defined]


def test_outputs_come_from_namedtuple_and_rng_makes_it_seeded() -> None:
    spec = build_spec(halves)
    assert spec.outputs == ("left", "right")
    assert spec.wants_rng
    assert spec.determinism == "seeded"
    assert "rng" not in spec.json_schema()["properties"]


def test_tuple_outputs_need_names_and_untyped_parameters_are_refused() -> None:
    def two() -> tuple[int, int]:
        return 1, 2

    assert build_spec(two, outputs=("a", "b")).outputs == ("a", "b")
    with pytest.raises(TypeError, match="names 1 values"):
        build_spec(two, outputs=("a",))

    def untyped(x):  # type: ignore[no-untyped-def]
        return x

    with pytest.raises(TypeError, match="has no type annotation"):
        build_spec(untyped)


def test_source_change_changes_identity() -> None:
    def version_a(n: int) -> int:
        return n

    def version_b(n: int) -> int:
        return n + 1

    assert (
        build_spec(version_a, name="same").identity != build_spec(version_b, name="same").identity
    )


def test_registry_lists_catalogue_as_html_and_tools() -> None:
    reg = registry()
    for name in (
        "load_dataset",
        "load_csv",
        "describe",
        "select_columns",
        "filter_rows",
        "split",
        "scale",
        "train_model",
        "evaluate",
    ):
        assert name in reg
    html = reg._repr_html_()
    assert "<table" in html
    assert "train_model" in html
    tools = {t["function"]["name"]: t for t in reg.tools()}
    assert (
        tools["train_model"]["function"]["parameters"]["properties"]["C"]["exclusiveMinimum"] == 0.0
    )
