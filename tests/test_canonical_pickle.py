"""Value-canonical pickles: equal state gives equal bytes whatever is shared, and the bytes
are an ordinary pickle that loads anywhere."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from rlam_jupyter.values.canonical_pickle import dumps

NODE = np.dtype(
    {
        "names": ["left", "right", "threshold"],
        "formats": ["<i8", "<i8", "<f8"],
        "offsets": [0, 8, 16],
        "itemsize": 32,
    }
)


def _trees(dtype_of: list[np.dtype]) -> list[np.ndarray]:
    return [np.zeros(3, dtype=d) for d in dtype_of]


def test_shared_and_separate_equal_dtypes_give_the_same_bytes() -> None:
    shared = _trees([NODE, NODE, NODE])
    separate = _trees([pickle.loads(pickle.dumps(NODE)) for _ in range(3)])
    assert shared[0].dtype is shared[1].dtype
    assert separate[0].dtype is not separate[1].dtype
    assert pickle.dumps(shared) != pickle.dumps(separate)  # a normal pickle tells them apart
    assert dumps(shared) == dumps(separate)


def test_different_dtypes_give_different_bytes() -> None:
    padded = np.dtype({"names": NODE.names, "formats": ["<i8", "<i8", "<f8"], "itemsize": 40})
    assert dumps(np.zeros(3, dtype=NODE)) != dumps(np.zeros(3, dtype=padded))
    assert dumps(np.zeros(3, "<f8")) != dumps(np.zeros(3, ">f8"))


def test_a_random_forest_round_trips_to_the_same_bytes_and_predictions() -> None:
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier

    x, y = load_iris(return_X_y=True)
    forest = RandomForestClassifier(n_estimators=5, random_state=0).fit(x, y)
    data = dumps(forest)
    restored = pickle.loads(data)
    assert dumps(restored) == data
    assert dumps(pickle.loads(pickle.dumps(forest))) == data
    assert (restored.predict_proba(x) == forest.predict_proba(x)).all()
    retrained = RandomForestClassifier(n_estimators=5, random_state=0).fit(x, y)
    assert dumps(retrained) == data


def test_the_bytes_load_without_this_package() -> None:
    data = dumps({"weights": np.arange(4.0), "node": np.zeros(2, dtype=NODE)})
    code = (
        "import pickle, sys; v = pickle.loads(sys.stdin.buffer.read()); "
        "assert 'rlam_jupyter' not in sys.modules; print(v['weights'].sum(), v['node'].dtype.names)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], input=data, capture_output=True, check=True
    ).stdout
    assert out.decode().strip() == "6.0 ('left', 'right', 'threshold')"


def test_a_self_referencing_value_still_pickles() -> None:
    loop: list[object] = [1]
    loop.append(loop)
    restored = pickle.loads(dumps(loop))
    assert restored[1] is restored


_leaves = st.one_of(
    st.text(max_size=8),
    st.integers(),
    st.floats(allow_nan=False),
    hnp.arrays(
        st.sampled_from([np.dtype("<f8"), np.dtype("<i4"), np.dtype("u1"), NODE]),
        st.integers(0, 4),
    ),
)
_values = st.recursive(
    _leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(_values)
def test_bytes_depend_on_the_value_not_on_its_history(value: object) -> None:
    """A normal pickle round trip changes which parts are shared; the bytes must not move."""
    data = dumps(value)
    assert dumps(pickle.loads(pickle.dumps(value))) == data
    assert dumps(pickle.loads(data)) == data


def test_large_arrays_are_hashed_and_stored_from_their_own_memory(tmp_path: Path) -> None:
    """Parts reference array memory instead of copying it; the stored file is still
    exactly the canonical bytes, and its hash is the recorded digest."""
    from rlam_jupyter.store.layout import StoreLayout
    from rlam_jupyter.store.objects import ObjectStore
    from rlam_jupyter.values.digest import digest_bytes
    from rlam_jupyter.values.hashing import canonicalize

    value = {"weights": np.arange(200_000, dtype="<f8"), "nodes": np.zeros(5_000, dtype=NODE)}
    canonical = canonicalize(value)
    assert any(isinstance(part, memoryview) for part in canonical.parts)
    assert canonical.payload == dumps(value)
    assert canonical.size == len(canonical.payload)
    assert digest_bytes(canonical.kind, canonical.payload) == canonical.digest
    objects = ObjectStore(StoreLayout(tmp_path / ".rlam"))
    path = objects.put(canonical)
    assert path is not None
    assert objects.path_of(path).read_bytes() == canonical.payload
    assert objects.verify(path, canonical.digest)
    restored = objects.get(path)
    assert np.array_equal(restored["weights"], value["weights"])
