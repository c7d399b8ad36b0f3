"""What a ``%%rlam`` cell shows when it ends: its steps table, notes, and the error of a
step that failed or was refused (after it is recorded)."""

from __future__ import annotations

from typing import Any

from IPython.display import display

from rlam_jupyter.engine.trace import StepResult, StepsView
from rlam_jupyter.errors import RlamError


class StepFailedError(RlamError):
    """Raised at the end of a cell whose step failed or was rejected, after recording it.

    IPython shows only the message (``_render_traceback_``), not rlam's own frames.
    """

    def __init__(self, message: str, traceback: str = "", verbose: bool = False) -> None:
        super().__init__(message)
        self.action_traceback = traceback
        self.verbose = verbose

    def _render_traceback_(self) -> list[str]:
        lines = [f"\x1b[31mRlamStepError\x1b[0m: {self}"]
        if self.verbose and self.action_traceback:
            lines += ["", "Traceback of the action:", self.action_traceback.rstrip()]
        elif self.action_traceback:
            lines.append("(run the cell with `%%rlam -v` to see the action's traceback)")
        return lines


def finish_cell(
    run_name: str,
    results: list[StepResult],
    *,
    quiet: bool = False,
    verbose: bool = False,
    failing: str | None = None,
) -> Any:
    """Show a cell's steps, then raise :class:`StepFailedError` if one failed or was refused.

    Returns the value of a final bare call (``describe(data=d)``), like a notebook expression.
    """
    if not quiet:
        caption = f"run {run_name} · {len(results)} step(s)"
        display(StepsView(results, caption))  # its output metadata names the run and steps
    for result in results:
        for note in result.notes:
            print(f"note (step {result.seq}): {note}")
    bad = next((r for r in results if r.status in ("failed", "rejected")), None)
    if bad is not None and bad.error is not None:
        message = failing or bad.error.message
        if bad.status == "failed":
            message = (
                f"step {bad.seq} ({bad.action}) failed: {bad.error.type}: "
                f"{bad.error.message}. It is recorded (step {bad.seq} of run {run_name}); fix "
                f"the cause and re-run, or answer it with a recovery cell: "
                f"`%%rlam --recover {bad.seq}`."
            )
        else:
            message = f"rejected, nothing ran: {message}"
        raise StepFailedError(message, bad.error.traceback, verbose)
    last = results[-1] if results else None
    if last is not None and last.values and len(last.values) == 1 and not _has_targets(last):
        return next(iter(last.values.values()))
    return None


def _has_targets(result: StepResult) -> bool:
    return bool(result.source_text and "=" in result.source_text.split("(")[0])
