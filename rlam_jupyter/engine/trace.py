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
    "interrupted": "↯",
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
    """A compact HTML table of steps (the ``%%rlam`` cell output).

    Alignment and colours are inline styles: front ends sanitise or override ``<style>``
    differently (JupyterLab right-aligns table cells), inline styles survive them all.
    """
    left = "text-align:left;vertical-align:top;padding:2px 8px"
    cell = f"<td style='{left};white-space:nowrap'>"
    rows = []
    for r in results:
        duration = "" if r.duration_ms is None else f"{r.duration_ms:.1f} ms"
        detail = r.short_hash
        if r.error is not None:
            detail = f"{r.error.type}: {r.error.message}"
        elif r.cached_from:
            detail = f"{r.short_hash} (from {r.cached_from})"
        colour = _STATUS_COLOURS.get(r.status, "")
        rows.append(
            f"<tr class='rlam-status-{r.status}' style='{colour}'>"
            f"{cell}{r.seq}</td>{cell}{STATUS_ICONS.get(r.status, '?')} {r.status}</td>"
            f"{cell}<code>{html.escape(r.action)}</code></td>{cell}{duration}</td>"
            f"{cell}{'' if r.seed is None else r.seed}</td>"
            f"<td style='{left};font-family:var(--jp-code-font-family,monospace)'>"
            f"{html.escape(detail)}</td></tr>"
        )
    cap = f"<caption style='text-align:left'>{html.escape(caption)}</caption>" if caption else ""
    head = "".join(
        f"<th style='{left}'>{name}</th>"
        for name in ("#", "status", "action", "time", "seed", "outputs / error")
    )
    return (
        f"<table class='rlam-steps'>{cap}<thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


_STATUS_COLOURS = {
    "failed": "color:var(--jp-error-color1,#d32f2f)",
    "rejected": "color:var(--jp-error-color1,#d32f2f)",
    "cached": "color:var(--jp-brand-color1,#1976d2)",
}


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


RLAM_OUTPUT_KEY = "rlam"
"""The key of an output's metadata that names the runs it shows (see :class:`RunsOutput`)."""


@dataclass(frozen=True)
class OutputRuns:
    """The runs one output is about: ``created`` is the run it started or added steps to
    (``None`` when it only reads, like replay or diff), ``shown`` every run it shows,
    ``step_ids`` the steps it recorded."""

    created: str | None = None
    shown: tuple[str, ...] = ()
    step_ids: tuple[str, ...] = ()

    def metadata(self) -> dict[str, Any]:
        """``{"rlam": {"run_id", "recorded", "run_ids", "step_ids"}}``: ``run_id`` is the
        run the output is about (the created one, else the first shown), ``recorded``
        whether the output's command recorded steps in it."""
        runs = sorted({*self.shown, *([self.created] if self.created else [])})
        main = self.created or (self.shown[0] if self.shown else None)
        return {
            RLAM_OUTPUT_KEY: {
                "run_id": main,
                "recorded": self.created is not None,
                "run_ids": runs,
                "step_ids": list(self.step_ids),
            }
        }


class RunsOutput:
    """What a command shows about runs: HTML in a notebook, text in a terminal, and output
    metadata naming the runs (:class:`OutputRuns`), so a saved notebook says which runs
    each of its outputs came from and its bundle can hold them. Subclasses define
    ``output_runs``, ``_repr_html_`` and ``__repr__``."""

    def output_runs(self) -> OutputRuns:
        raise NotImplementedError

    def _repr_html_(self) -> str:
        raise NotImplementedError

    def _repr_mimebundle_(
        self, include: Any = None, exclude: Any = None
    ) -> tuple[dict[str, str], dict[str, Any]]:
        data = {"text/plain": repr(self), "text/html": self._repr_html_()}
        return data, self.output_runs().metadata()


class StepsView(RunsOutput):
    """Steps of one run (a ``%%rlam`` cell's, or ``%rlam status``)."""

    def __init__(self, results: Sequence[StepResult], caption: str = "") -> None:
        self.results = list(results)
        self.caption = caption

    def output_runs(self) -> OutputRuns:
        run_ids = tuple(dict.fromkeys(r.run_id for r in self.results))
        return OutputRuns(
            run_ids[0] if run_ids else None, run_ids, tuple(r.step_id for r in self.results)
        )

    def _repr_html_(self) -> str:
        return steps_table_html(self.results, self.caption)

    def __repr__(self) -> str:
        return steps_table_text(self.results, self.caption)
