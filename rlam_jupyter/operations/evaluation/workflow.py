"""The workflow every mode runs, the faults injected into it, and the LLM's offline stand-in.

Breast Cancer Wisconsin: load → analyse → preprocess (split, scale) → train → evaluate.
An :class:`Intent` is what the agent wants, independent of how a mode carries it out:
``rlam`` turns it into a checked proposal, the naive agent into free-form Python, the
script and upstream ``rlam`` into calls of seeded tool functions.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Experiment = Literal["linear", "failure", "fork"]
EXPERIMENTS: tuple[Experiment, ...] = ("linear", "failure", "fork")
RUN_SEED = 42
SCRIPT_SEED = 42
FORK_C = 0.1


@dataclass(frozen=True)
class Intent:
    """One step the agent wants: a catalogue action, literal params, inputs by name."""

    action: str
    params: Mapping[str, Any] = field(default_factory=dict)
    inputs: Mapping[str, str] = field(default_factory=dict)
    targets: tuple[str, ...] = ()
    fix: Intent | None = None
    """For an injected fault: what the agent proposes once it hears of the failure."""


def plan(experiment: Experiment, C: float = 1.0) -> list[Intent]:
    split = Intent(
        "split",
        {"target": "target", "test_size": 0.25},
        {"data": "data"},
        ("X_train", "X_test", "y_train", "y_test"),
    )
    train = Intent(
        "train_model",
        {"model": "logistic_regression", "C": C, "max_iter": 500},
        {"X": "X_train_s", "y": "y_train"},
        ("model",),
    )
    if experiment == "failure":
        # The faults an LLM makes: a column that is not there, a value out of range.
        split = Intent(
            "split", {**split.params, "target": "diagnosis"}, split.inputs, split.targets, split
        )
        train = Intent(
            "train_model", {**train.params, "C": -1.0}, train.inputs, train.targets, train
        )
    return [
        Intent("load_dataset", {"name": "breast_cancer"}, {}, ("data",)),
        Intent("describe", {}, {"data": "data"}, ("summary",)),
        split,
        Intent("scale", {}, {"X_train": "X_train", "X_test": "X_test"}, ("X_train_s", "X_test_s")),
        train,
        Intent("evaluate", {}, {"model": "model", "X": "X_test_s", "y": "y_test"}, ("metrics",)),
    ]


FORK_AT = 4
"""Index (0-based) of the training step in the plan: where the fork experiment branches."""


def fork_plan(C: float = FORK_C) -> list[Intent]:
    """The steps a fork re-does: training with the changed hyperparameter, then evaluation."""
    return plan("linear", C)[FORK_AT:]


@dataclass(frozen=True)
class Feedback:
    """What the agent hears after a step: ok, or the error it caused."""

    ok: bool
    error: str = ""


class StandIn(Protocol):
    """The LLM's seat in the loop: the next intent, given what happened to the last one."""

    def next(self, feedback: Feedback | None) -> Intent | None: ...


class ScriptedStandIn:
    """Offline, deterministic stand-in for the LLM: follows the plan; after a failure it
    proposes the corrected step, as an LLM given the error message would."""

    def __init__(self, plan: Sequence[Intent]) -> None:
        self._plan = list(plan)
        self._next = 0
        self._last: Intent | None = None

    def next(self, feedback: Feedback | None) -> Intent | None:
        if feedback is not None and not feedback.ok and self._last and self._last.fix:
            self._last = self._last.fix
            return self._last
        if self._next >= len(self._plan):
            return None
        self._last = self._plan[self._next]
        self._next += 1
        return self._last


def _breast_cancer() -> Any:
    from sklearn.datasets import load_breast_cancer

    return load_breast_cancer(as_frame=True).frame.copy()


def _split(data: Any, target: str, test_size: float, random_state: int | None) -> tuple[Any, ...]:
    from sklearn.model_selection import train_test_split

    labels = data[target]
    return tuple(
        train_test_split(
            data.drop(columns=[target]),
            labels,
            test_size=test_size,
            random_state=random_state,
            stratify=labels,
        )
    )


def _scale(X_train: Any, X_test: Any) -> tuple[Any, Any]:
    import pandas as pd
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(X_train)
    return (
        pd.DataFrame(scaler.transform(X_train), columns=X_train.columns, index=X_train.index),
        pd.DataFrame(scaler.transform(X_test), columns=X_test.columns, index=X_test.index),
    )


def _train(X: Any, y: Any, C: float, max_iter: int, random_state: int | None, model: str) -> Any:
    from sklearn.linear_model import LogisticRegression

    assert model == "logistic_regression"
    return LogisticRegression(C=C, max_iter=max_iter, random_state=random_state).fit(X, y)


def _evaluate(model: Any, X: Any, y: Any) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

    predicted = model.predict(X)
    return {
        "accuracy": round(float(accuracy_score(y, predicted)), 12),
        "f1": round(float(f1_score(y, predicted)), 12),
        "roc_auc": round(float(roc_auc_score(y, model.predict_proba(X)[:, 1])), 12),
    }


def seeded_tools(seed: int = SCRIPT_SEED) -> dict[str, Callable[..., Any]]:
    """The workflow as a careful person writes it: every random choice has a fixed seed."""
    return {
        "load_dataset": lambda name: _breast_cancer(),
        "describe": lambda data: data.describe().T,
        "split": lambda data, target, test_size: _split(data, target, test_size, seed),
        "scale": _scale,
        "train_model": lambda X, y, C, max_iter, model: _train(X, y, C, max_iter, seed, model),
        "evaluate": _evaluate,
    }


def outputs_of(intent: Intent, returned: Any) -> dict[str, Any]:
    if len(intent.targets) == 1:
        return {intent.targets[0]: returned}
    return dict(zip(intent.targets, returned, strict=True))


def output_repr(value: Any) -> str:
    return json.dumps(value, sort_keys=True) if isinstance(value, dict) else ""


NAIVE_TEMPLATES: dict[str, str] = {
    "load_dataset": (
        "from sklearn.datasets import load_breast_cancer\n"
        "data = load_breast_cancer(as_frame=True).frame.copy()"
    ),
    "describe": "summary = data.describe().T",
    "split": (
        "from sklearn.model_selection import train_test_split\n"
        "X_train, X_test, y_train, y_test = train_test_split(\n"
        "    data.drop(columns=[{target!r}]), data[{target!r}], test_size={test_size!r},\n"
        "    stratify=data[{target!r}])"
    ),
    "scale": (
        "import pandas as pd\n"
        "from sklearn.preprocessing import StandardScaler\n"
        "scaler = StandardScaler().fit(X_train)\n"
        "X_train_s = pd.DataFrame(scaler.transform(X_train), columns=X_train.columns, index=X_train.index)\n"
        "X_test_s = pd.DataFrame(scaler.transform(X_test), columns=X_test.columns, index=X_test.index)"
    ),
    "train_model": (
        "from sklearn.linear_model import LogisticRegression\n"
        "model = LogisticRegression(C={C!r}, max_iter={max_iter!r}).fit(X_train_s, y_train)"
    ),
    "evaluate": (
        "from sklearn.metrics import accuracy_score, f1_score, roc_auc_score\n"
        "predicted = model.predict(X_test_s)\n"
        "metrics = {{'accuracy': round(float(accuracy_score(y_test, predicted)), 12),\n"
        "           'f1': round(float(f1_score(y_test, predicted)), 12),\n"
        "           'roc_auc': round(float(roc_auc_score(y_test, model.predict_proba(X_test_s)[:, 1])), 12)}}"
    ),
}
"""Python an LLM writes for each intent, as such code usually looks: no ``random_state``."""


def naive_snippet(intent: Intent) -> str:
    """The free-form code the naive agent executes for an intent."""
    return NAIVE_TEMPLATES[intent.action].format(**intent.params)
