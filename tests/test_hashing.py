"""Content hashes are canonical: equal content, equal hash; restore gives back equal content."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from rlam_jupyter.hashing import canonicalize, hash_value, restore

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
