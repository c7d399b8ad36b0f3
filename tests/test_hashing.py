"""Content hashes are canonical: equal content, equal hash; restore gives back equal content."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlam_jupyter.values.hashing import canonicalize, hash_value, quick_fingerprint, restore

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=5), children, max_size=5)
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_json_values_round_trip_with_stable_hash(value: object) -> None:
    canonical = canonicalize(value)
    assert canonical.kind == "json"
    again = restore(canonical.kind, canonical.payload)
    assert again == value
    assert hash_value(again) == canonical.digest


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.floats(allow_nan=False, width=32), min_size=1, max_size=50),
    st.sampled_from(["f8", "f4"]),
)
def test_arrays_and_frames_round_trip(values: list[float], dtype: str) -> None:
    array = np.asarray(values, dtype=dtype)
    canonical = canonicalize(array)
    again = restore(canonical.kind, canonical.payload)
    assert again.dtype == array.dtype
    assert np.array_equal(again, array)
    assert hash_value(again) == canonical.digest
    frame = pd.DataFrame({"x": array, "y": np.arange(len(array))}, index=np.arange(len(array)) * 3)
    canonical = canonicalize(frame)
    again = restore(canonical.kind, canonical.payload)
    pd.testing.assert_frame_equal(again, frame)
    assert hash_value(again) == canonical.digest


def test_kinds_and_layout_do_not_collide_or_leak() -> None:
    assert hash_value(1) != hash_value("1") != hash_value([1])
    assert hash_value(1) != hash_value(1.0)
    a = np.arange(6, dtype="f8").reshape(2, 3)
    assert hash_value(a) == hash_value(np.asfortranarray(a))
    assert hash_value(a) != hash_value(a.astype("f4"))
    frame = pd.DataFrame({"a": [1.0, 2.0]})
    assert hash_value(frame) != hash_value(frame.rename(columns={"a": "b"}))
    assert hash_value(frame) == hash_value(frame.copy())


def test_estimators_hash_by_state_and_unpicklables_are_marked() -> None:
    from sklearn.linear_model import LogisticRegression

    x = np.array([[0.0], [1.0], [2.0], [3.0]])
    y = np.array([0, 0, 1, 1])
    first = LogisticRegression().fit(x, y)
    second = LogisticRegression().fit(x, y)
    assert hash_value(first) == hash_value(second)
    assert hash_value(first) != hash_value(LogisticRegression(C=0.1).fit(x, y))
    opaque = canonicalize(lambda v: v)
    assert not opaque.restorable
    assert "cannot be restored" in opaque.note


def _numeric_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {"a": np.arange(6, dtype="float64"), "b": np.arange(6, dtype="int64")},
        index=pd.Index(np.arange(10, 16), dtype="int64"),
    )


def _set_value(f: pd.DataFrame) -> None:
    f.iloc[2, 1] = 99


def _rename_column(f: pd.DataFrame) -> None:
    f.columns = pd.Index(["a", "c"])


def _change_dtype(f: pd.DataFrame) -> None:
    f["a"] = f["a"].astype("float32")


def _shift_index(f: pd.DataFrame) -> None:
    f.index = f.index + 1


def _name_index(f: pd.DataFrame) -> None:
    f.index.name = "row"


def _add_column(f: pd.DataFrame) -> None:
    f["d"] = 1.0


@pytest.mark.parametrize(
    "edit", [_set_value, _rename_column, _change_dtype, _shift_index, _name_index, _add_column]
)
def test_quick_fingerprint_changes_with_everything_the_canonical_hash_sees(
    edit: Callable[[pd.DataFrame], None],
) -> None:
    frame = _numeric_frame()
    base = quick_fingerprint(frame)
    assert base is not None
    assert base == quick_fingerprint(frame.copy())
    edited = frame.copy()
    edit(edited)
    assert canonicalize(edited).digest != canonicalize(frame).digest
    assert quick_fingerprint(edited) != base


def test_quick_fingerprint_of_a_series_sees_its_name() -> None:
    series = _numeric_frame()["a"]
    assert quick_fingerprint(series) is not None
    assert quick_fingerprint(series) != quick_fingerprint(series.rename("z"))


def test_quick_fingerprint_refuses_what_it_cannot_vouch_for() -> None:
    assert quick_fingerprint(pd.DataFrame({"s": ["x", "y"]})) is None
    assert quick_fingerprint(pd.DataFrame({"o": [object()]})) is None
    assert quick_fingerprint(pd.DataFrame({"c": pd.Categorical(["a"])})) is None
    multi = pd.DataFrame(np.zeros((2, 2)), columns=pd.MultiIndex.from_tuples([("a", 1), ("a", 2)]))
    assert quick_fingerprint(multi) is None
    assert quick_fingerprint(np.zeros(3)) is None
    assert quick_fingerprint({"a": 1}) is None


class _Holder:
    def __init__(self, first: str, second: str) -> None:
        self.first = first
        self.second = second


def test_pickled_hash_ignores_object_identity() -> None:
    """Equal state, different sharing of equal strings: a plain pickle differs, the hash must not."""
    import pickle

    text = "".join(["ab", "cd"])
    shared = _Holder(text, text)
    separate = _Holder(text, "".join(["ab", "cd"]))
    assert pickle.dumps(shared) != pickle.dumps(separate)
    assert hash_value(shared) == hash_value(separate)
    loop: list[object] = [1]
    loop.append(loop)  # self-reference: falls back to a normal pickle, still restorable
    canonical = canonicalize(loop)
    assert canonical.kind == "pickle2"
    assert canonical.restorable
