"""Typed records of the provenance graph, as the engine produces them and views show them."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

STATUS_ICONS = {
    "succeeded": "✓",
    "cached": "⚡",
    "failed": "✗",
    "rejected": "⊘",
    "proposed": "…",
    "accepted": "…",
    "running": "▶",
}


@dataclass(frozen=True)
class CellInfo:
    """Where a step came from in the notebook, so exports can match trace to cells."""

    cell_id: str | None = None
    execution_count: int | None = None
    source_hash: str | None = None


@dataclass(frozen=True)
class StepError:
    """A failure or rejection, with everything needed to understand it later."""

    type: str
    message: str
    traceback: str = ""


@dataclass(frozen=True)
class StepResult:
    """What the engine returns for one proposal, whatever happened to it."""

    run_id: str
    step_id: str
    seq: int
    action: str
    status: str
    seed: int | None = None
    duration_ms: float | None = None
    outputs: Mapping[str, str] = field(default_factory=dict)
    values: Mapping[str, Any] = field(default_factory=dict)
    error: StepError | None = None
    cached_from: str | None = None
    recovers: str | None = None
    source_text: str | None = None
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.status in ("succeeded", "cached")

    @property
    def short_hash(self) -> str:
        return ", ".join(h[:10] for h in self.outputs.values())


def steps_table_html(results: Sequence[StepResult], caption: str = "") -> str:
    """A compact HTML table of steps (the ``%%rlam`` cell output)."""
    rows = []
    for r in results:
        css = f"rlam-status-{r.status}"
        duration = "" if r.duration_ms is None else f"{r.duration_ms:.1f} ms"
        detail = r.short_hash
        if r.error is not None:
            detail = f"{r.error.type}: {r.error.message}"
        elif r.cached_from:
            detail = f"{r.short_hash} (from {r.cached_from})"
        rows.append(
            f"<tr class='{css}'><td>{r.seq}</td><td>{STATUS_ICONS.get(r.status, '?')} {r.status}</td>"
            f"<td><code>{html.escape(r.action)}</code></td><td>{duration}</td>"
            f"<td>{'' if r.seed is None else r.seed}</td>"
            f"<td>{html.escape(detail)}</td></tr>"
        )
    cap = f"<caption style='text-align:left'>{html.escape(caption)}</caption>" if caption else ""
    return (
        "<table class='rlam-steps'>"
        f"{cap}<thead><tr><th>#</th><th>status</th><th>action</th><th>time</th><th>seed</th>"
        f"<th>outputs / error</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
        + _STATUS_STYLE
    )


_STATUS_STYLE = (
    # Scoped twice over (".rlam-steps" inside any rendered-HTML container) so JupyterLab's
    # right-aligned table defaults do not win; nowrap keeps status and timing on one line.
    "<style>table.rlam-steps td,table.rlam-steps th{padding:2px 8px;text-align:left;"
    "vertical-align:top}table.rlam-steps td:nth-child(-n+5){white-space:nowrap}"
    "table.rlam-steps td:last-child{font-family:var(--jp-code-font-family,monospace)}"
    "table.rlam-steps tr.rlam-status-failed td,table.rlam-steps tr.rlam-status-rejected td"
    "{color:var(--jp-error-color1,#d32f2f)}"
    "table.rlam-steps tr.rlam-status-cached td{color:var(--jp-brand-color1,#1976d2)}</style>"
)


def steps_table_text(results: Sequence[StepResult], caption: str = "") -> str:
    """Plain-text twin of :func:`steps_table_html` for terminals."""
    lines = [caption] if caption else []
    for r in results:
        duration = "" if r.duration_ms is None else f"{r.duration_ms:8.1f} ms"
        detail = f"{r.error.type}: {r.error.message}" if r.error else r.short_hash
        lines.append(
            f"{r.seq:>4} {STATUS_ICONS.get(r.status, '?')} {r.status:<9} {r.action:<20} {duration:>11}  {detail}"
        )
    return "\n".join(lines)


class StepsView:
    """Displays as HTML in a notebook and as text in a terminal."""

    def __init__(self, results: Sequence[StepResult], caption: str = "") -> None:
        self.results = list(results)
        self.caption = caption

    def _repr_html_(self) -> str:
        return steps_table_html(self.results, self.caption)

    def __repr__(self) -> str:
        return steps_table_text(self.results, self.caption)
