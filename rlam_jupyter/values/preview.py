"""Short, human-readable previews of recorded values, kept in the trace instead of the value.

They run on every step, so each kind of value gets a formatter that costs microseconds:
pandas' own formatter and scikit-learn's ``repr`` take milliseconds.
"""

from __future__ import annotations

import inspect
from functools import cache
from typing import Any

from rlam_jupyter.values.figures import RENDER_DPI, is_figure_like, root_and_target


def preview(value: Any, limit: int = 400) -> str:
    """A short, human-readable preview kept in the trace (never the full value)."""
    shape = getattr(value, "shape", None)
    try:
        text = _table_preview(value) or _estimator_preview(value) or _figure_preview(value)
        if text is None:
            if hasattr(value, "head") and shape is not None:
                head = value.head(5).to_string(max_cols=8)
                text = f"{type(value).__name__} {tuple(shape)}\n{head}"
            elif shape is not None:
                text = f"{type(value).__name__} {getattr(value, 'dtype', '')} {tuple(shape)}"
            else:
                text = repr(value)
    except Exception:
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _table_preview(value: Any, rows: int = 5, columns: int = 8) -> str | None:
    """The first rows and columns of a pandas DataFrame or Series as aligned text.

    Formats only the cells shown, cell by cell: ``head().to_string()`` costs ~2-3 ms per
    DataFrame (pandas' formatter) and was the largest share of a step's bookkeeping."""
    if type(value).__module__.split(".")[0] != "pandas":
        return None
    import pandas as pd

    if isinstance(value, pd.Series):
        first = value.iloc[:rows]
        name = "" if value.name is None else f" {value.name!r}"
        labels = [str(label) for label in first.index]
        cells = [_cell(cell) for cell in first.tolist()]
        width = max((len(label) for label in labels), default=0)
        lines = [f"{label:<{width}}  {cell}" for label, cell in zip(labels, cells, strict=True)]
        return "\n".join([f"Series{name} {value.dtype} {tuple(value.shape)}", *lines])
    if not isinstance(value, pd.DataFrame):
        return None
    n_columns = value.shape[1]
    if n_columns > columns:
        half = columns // 2
        positions = [*range(half), None, *range(n_columns - half, n_columns)]
    else:
        positions = list(range(n_columns))
    head = value.iloc[:rows]
    index = [""] + [str(label) for label in head.index]
    shown = [index]
    for position in positions:
        if position is None:
            shown.append(["..."] * len(index))
        else:
            cells = [_cell(cell) for cell in head.iloc[:, position].tolist()]
            shown.append([str(value.columns[position]), *cells])
    widths = [max(len(cell) for cell in column) for column in shown]
    lines = [
        "  ".join(
            f"{column[row]:<{width}}" if c == 0 else f"{column[row]:>{width}}"
            for c, (column, width) in enumerate(zip(shown, widths, strict=True))
        ).rstrip()
        for row in range(len(index))
    ]
    return "\n".join([f"{type(value).__name__} {tuple(value.shape)}", *lines])


def _cell(cell: Any) -> str:
    return f"{cell:.6g}" if isinstance(cell, float) else str(cell)


def _figure_preview(value: Any) -> str | None:
    """``Figure 500×350 px · 1 axes: 'Residuals'`` (its image is served from the object
    store); an Axes says which figure it belongs to."""
    if type(value).__module__.split(".")[0] not in ("matplotlib", "mpl_toolkits"):
        return None
    if not is_figure_like(value):
        return None
    root, target = root_and_target(value)
    width, height = (round(size * RENDER_DPI) for size in root.get_size_inches())
    titles = [repr(title) for ax in root.axes if (title := ax.get_title())]
    described = f"Figure {width}×{height} px · {len(root.axes)} axes"
    if titles:
        described += ": " + ", ".join(titles)
    if target == "figure":
        return described
    own = getattr(value, "get_title", lambda: "")()
    return (
        f"{type(value).__name__} {target.split(':')[1]}{f' {own!r}' if own else ''} of {described}"
    )


def _estimator_preview(value: Any) -> str | None:
    """``LogisticRegression(C=0.1, max_iter=500)``: the parameters that differ from their
    defaults, as scikit-learn prints them, without its pretty-printer (about 0.1-0.3 ms a
    model). Nested estimators (pipelines, ensembles of estimators) keep scikit-learn's repr."""
    if not type(value).__module__.startswith("sklearn.") or not hasattr(value, "get_params"):
        return None
    cls: Any = type(value)
    defaults = _init_defaults(cls)
    if defaults is None:
        return None
    changed = []
    for name, default in defaults:
        current = getattr(value, name, default)
        if hasattr(current, "get_params"):
            return None
        if not _same(current, default):
            changed.append(f"{name}={current!r}")
    return f"{type(value).__name__}({', '.join(changed)})"


@cache
def _init_defaults(cls: Any) -> tuple[tuple[str, Any], ...] | None:
    try:
        parameters = inspect.signature(cls.__init__).parameters.values()
    except (TypeError, ValueError):
        return None
    found = []
    for parameter in parameters:
        if parameter.name == "self":
            continue
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            return None
        found.append((parameter.name, parameter.default))
    return tuple(found)


def _same(current: Any, default: Any) -> bool:
    if current is default:
        return True
    try:
        return bool(type(current) is type(default) and current == default)
    except Exception:
        return False
