"""Previews kept in the trace: aligned table heads, short model reprs, never the value."""

from __future__ import annotations

import pandas as pd
import pytest

from rlam_jupyter.values.preview import preview


def test_preview_shows_shape_first_rows_and_both_ends_of_wide_frames() -> None:
    frame = pd.DataFrame({f"c{i}": [i + 0.5, i * 2.0] for i in range(12)})
    lines = preview(frame).splitlines()
    assert lines[0] == "DataFrame (2, 12)"
    assert lines[1].split() == ["c0", "c1", "c2", "c3", "...", "c8", "c9", "c10", "c11"]
    assert lines[2].split() == [
        "0",
        "0.5",
        "1.5",
        "2.5",
        "3.5",
        "...",
        "8.5",
        "9.5",
        "10.5",
        "11.5",
    ]
    series = preview(pd.Series([1, 2, 3], name="target"))
    assert series.splitlines() == ["Series 'target' int64 (3,)", "0  1", "1  2", "2  3"]


@pytest.mark.parametrize(
    "make",
    [
        "LogisticRegression(C=0.1, max_iter=500)",
        "RandomForestClassifier(n_estimators=100, random_state=3)",
        "RandomForestClassifier()",
        "LogisticRegression(class_weight={0: 1.0})",
        "make_pipeline(StandardScaler(), LogisticRegression(C=2.0))",
        "GridSearchCV(LogisticRegression(), {'C': [1, 2]})",
    ],
)
def test_a_model_preview_reads_like_scikit_learns_repr(make: str) -> None:
    """The cheap preview says what scikit-learn's own repr says (on one line)."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    names = {
        "LogisticRegression": LogisticRegression,
        "RandomForestClassifier": RandomForestClassifier,
        "GridSearchCV": GridSearchCV,
        "make_pipeline": make_pipeline,
        "StandardScaler": StandardScaler,
    }
    model = eval(make, names)
    assert preview(model) == " ".join(repr(model).split())
