"""The built-in data-science actions: enough for a real, offline analysis.

Datasets come from scikit-learn's bundled files (no download). Every action is a
plain typed function; the schema, seeding and recording come from ``@action``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple

import numpy as np
import pandas as pd
from pydantic import Field
from sklearn.base import BaseEstimator

from rlam_jupyter.actions.registry import action

DatasetName = Literal["breast_cancer", "iris", "diabetes", "wine"]


class Split(NamedTuple):
    X_train: pd.DataFrame
    X_test: pd.DataFrame
    y_train: pd.Series
    y_test: pd.Series


class Scaled(NamedTuple):
    X_train: pd.DataFrame
    X_test: pd.DataFrame


@action
def load_dataset(name: DatasetName) -> pd.DataFrame:
    """Load a dataset bundled with scikit-learn as a DataFrame with a ``target`` column."""
    from sklearn import datasets

    loader = {
        "breast_cancer": datasets.load_breast_cancer,
        "iris": datasets.load_iris,
        "diabetes": datasets.load_diabetes,
        "wine": datasets.load_wine,
    }[name]
    bunch = loader(as_frame=True)
    frame: pd.DataFrame = bunch.frame.copy()
    return frame


@action(determinism="external")
def load_csv(path: str, sep: str = ",") -> pd.DataFrame:
    """Read a CSV file (external: the file may change, so its content is recorded)."""
    return pd.read_csv(Path(path), sep=sep)


@action(determinism="external")
def load_parquet(path: str) -> pd.DataFrame:
    """Read a Parquet file (external: the file may change, so its content is recorded)."""
    return pd.read_parquet(Path(path))


@action
def describe(data: pd.DataFrame) -> pd.DataFrame:
    """Summary statistics of every numeric column."""
    return data.describe().T


@action
def select_columns(
    data: pd.DataFrame, columns: Annotated[list[str], Field(min_length=1)]
) -> pd.DataFrame:
    """Keep only the named columns, in the given order."""
    missing = [c for c in columns if c not in data.columns]
    if missing:
        raise KeyError(f"columns not in the data: {missing}; available: {list(data.columns)[:20]}")
    return data[columns].copy()


@action
def filter_rows(
    data: pd.DataFrame,
    column: str,
    op: Literal["==", "!=", "<", "<=", ">", ">="],
    value: float | int | str,
) -> pd.DataFrame:
    """Keep the rows where ``column op value`` holds."""
    if column not in data.columns:
        raise KeyError(
            f"column {column!r} is not in the data; available: {list(data.columns)[:20]}"
        )
    series = data[column]
    mask = {
        "==": series == value,
        "!=": series != value,
        "<": series < value,
        "<=": series <= value,
        ">": series > value,
        ">=": series >= value,
    }[op]
    return data[mask].copy()


@action
def split(
    data: pd.DataFrame,
    rng: np.random.Generator,
    target: str = "target",
    test_size: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.25,
    stratify: bool = True,
) -> Split:
    """Train/test split of features and target (seeded, stratified by default)."""
    from sklearn.model_selection import train_test_split

    if target not in data.columns:
        raise KeyError(f"target column {target!r} is not in the data")
    features = data.drop(columns=[target])
    labels = data[target]
    parts = train_test_split(
        features,
        labels,
        test_size=test_size,
        random_state=int(rng.integers(2**31 - 1)),
        stratify=labels if stratify else None,
    )
    return Split(*parts)


@action
def scale(X_train: pd.DataFrame, X_test: pd.DataFrame) -> Scaled:
    """Standard scaling fitted on the training set only (no leakage into the test set)."""
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(X_train)
    train = pd.DataFrame(scaler.transform(X_train), columns=X_train.columns, index=X_train.index)
    test = pd.DataFrame(scaler.transform(X_test), columns=X_test.columns, index=X_test.index)
    return Scaled(train, test)


@action
def train_model(
    X: pd.DataFrame,
    y: pd.Series,
    rng: np.random.Generator,
    model: Literal["logistic_regression", "random_forest"] = "logistic_regression",
    C: Annotated[float, Field(gt=0.0, le=1e6)] = 1.0,
    max_iter: Annotated[int, Field(ge=1, le=100_000)] = 500,
    n_estimators: Annotated[int, Field(ge=1, le=5_000)] = 100,
    max_depth: Annotated[int, Field(ge=1, le=1_000)] | None = None,
) -> BaseEstimator:
    """Fit a logistic regression or random forest classifier (seeded)."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    random_state = int(rng.integers(2**31 - 1))
    estimator: Any
    if model == "logistic_regression":
        estimator = LogisticRegression(C=C, max_iter=max_iter, random_state=random_state)
    else:
        estimator = RandomForestClassifier(
            n_estimators=n_estimators, max_depth=max_depth, random_state=random_state, n_jobs=1
        )
    fitted: BaseEstimator = estimator.fit(X, y)
    return fitted


@action
def evaluate(model: BaseEstimator, X: pd.DataFrame, y: pd.Series) -> dict[str, float]:
    """Accuracy, F1 and ROC AUC of a fitted classifier on held-out data."""
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

    predicted = model.predict(X)
    metrics = {
        "accuracy": float(accuracy_score(y, predicted)),
        "f1": float(f1_score(y, predicted, average="binary" if y.nunique() == 2 else "macro")),
    }
    if hasattr(model, "predict_proba"):
        proba = model.predict_proba(X)
        if proba.shape[1] == 2:
            metrics["roc_auc"] = float(roc_auc_score(y, proba[:, 1]))
        else:
            metrics["roc_auc"] = float(roc_auc_score(y, proba, multi_class="ovr"))
    return {k: round(v, 12) for k, v in metrics.items()}


@action
def predict(model: BaseEstimator, X: pd.DataFrame) -> np.ndarray:
    """Predicted labels for the rows of ``X``."""
    return np.asarray(model.predict(X))


@action
def plot(
    data: pd.DataFrame,
    x: str,
    y: str | None = None,
    kind: Literal["scatter", "line", "hist"] = "scatter",
    color_by: str | None = None,
    title: str | None = None,
) -> Any:
    """A matplotlib ``Figure`` of columns of ``data``: ``y`` against ``x`` (scatter, line),
    or the distribution of ``x`` (hist). Recorded by its rendering; needs matplotlib."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError(
            "the plot action draws with matplotlib, which is not installed: pip install matplotlib"
        ) from None
    named = [c for c in (x, y, color_by) if c is not None]
    missing = [c for c in named if c not in data.columns]
    if missing:
        raise KeyError(f"columns not in the data: {missing}; available: {list(data.columns)[:20]}")
    if kind != "hist" and y is None:
        raise ValueError(f"a {kind} plot needs y= (the column drawn against {x!r})")
    figure = Figure(figsize=(5, 3.5))
    axes = figure.subplots()
    colors = data[color_by] if color_by is not None else None
    if kind == "hist":
        axes.hist(data[x], bins=30)
        axes.set_ylabel("count")
    elif kind == "line":
        axes.plot(data[x], data[y])
        axes.set_ylabel(str(y))
    else:
        points = axes.scatter(data[x], data[y], c=colors, s=10, alpha=0.7)
        axes.set_ylabel(str(y))
        if color_by is not None:
            figure.colorbar(points, ax=axes, label=color_by)
    axes.set_xlabel(x)
    if title is not None:
        axes.set_title(title)
    figure.tight_layout()
    return figure
