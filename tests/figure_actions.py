"""Figure actions as a user writes them: the residual plot from the issue (a bare
``Figure``), the same plot drawn through pyplot, and one whose title reads the clock.

Kept in a module (not a test file) so a second Python process, and the fresh process of
``rlam verify --reexecute``, import exactly the same actions.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from sklearn.linear_model import Ridge

from rlam_jupyter import action


@action(determinism="pure", version="1")
def fit_ridge(X: pd.DataFrame, y: pd.Series, alpha: float = 1.0) -> Ridge:
    """A ridge regression of ``y`` on ``X``."""
    return Ridge(alpha=alpha).fit(X, y)


@action(determinism="pure", version="1")
def residual_plot(model: Ridge, X: pd.DataFrame, y: pd.Series, title: str = "Residuals") -> Figure:
    """The user's action from the issue, as written."""
    p = model.predict(X)
    fig = Figure(figsize=(5, 3.5))
    ax = fig.subplots()
    ax.scatter(p, y - p, s=10, alpha=0.7)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("residual")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def draw_residuals(fig: Figure, model: Ridge, X: pd.DataFrame, y: pd.Series) -> Axes:
    """The residual plot's drawing on any figure (bare, or made by pyplot)."""
    p = model.predict(X)
    ax = fig.subplots()
    ax.scatter(p, y - p, s=10, alpha=0.7)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("residual")
    ax.set_title("Residuals")
    fig.tight_layout()
    return ax


@action(determinism="pure", version="1")
def residual_axes(model: Ridge, X: pd.DataFrame, y: pd.Series) -> Axes:
    """The residual plot drawn through pyplot, returning its Axes."""
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(5, 3.5))
    return draw_residuals(fig, model, X, y)


@action(determinism="pure", version="1")
def stamped_plot(model: Ridge, X: pd.DataFrame, y: pd.Series) -> Figure:
    """Declared pure but is not: its title reads the clock, so verify must catch it."""
    fig = Figure(figsize=(5, 3.5))
    draw_residuals(fig, model, X, y).set_title(f"drawn at {time.time_ns()}")
    return fig


def regression_data() -> tuple[pd.DataFrame, pd.Series]:
    """A small fixed regression problem (no seed needed: it is a formula)."""
    x = np.linspace(-2.0, 2.0, 60)
    X = pd.DataFrame({"x": x, "x2": x**2})
    y = pd.Series(1.5 * x - 0.5 * x**2 + np.sin(7 * x), name="y")
    return X, y
