"""Human-in-the-loop approval of proposals, in a notebook or a terminal.

- :class:`ApprovalPanel` (ipywidgets): approve, reject with a reason, or edit the
  parameters. A kernel cannot receive a button click while a cell is still running,
  so the agent loop *pauses* instead of blocking: the cell ends showing the panel, and
  the click resumes the loop (its further output appears under the panel).
- :class:`ConsoleApprover`: asks with ``input()`` (terminal IPython, or a front end
  that allows input). Where no one can answer (nbclient, CI) it refuses the proposal
  with a message saying so, instead of hanging.

Decisions are recorded by the engine in the ``approvals`` table.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Callable
from typing import Any

from rlam_jupyter.actions.proposal import CheckedProposal, Proposal
from rlam_jupyter.frontends.options import parse_overrides
from rlam_jupyter.policy import Decision

NOBODY = (
    "nobody can approve here: this session takes no input (a non-interactive run such as "
    "nbclient or CI); run the notebook interactively, or drop --approve"
)


def describe(proposal: Proposal) -> str:
    """One line a person can judge: ``model = train_model(X=Xs_train, C=1.0)``."""
    return proposal.source_text or proposal.as_source()


def interactive_frontend(shell: Any) -> bool:
    """True when a person sits at a front end that can show widgets and answer input.

    nbclient and most CI runners execute cells with ``allow_stdin=False``; ipykernel
    keeps that flag of the current request (``_allow_stdin``).
    """
    if os.environ.get("RLAM_NONINTERACTIVE") or os.environ.get("CI"):
        return False
    kernel = getattr(shell, "kernel", None)
    return kernel is not None and bool(getattr(kernel, "_allow_stdin", False))


class ConsoleApprover:
    """Asks on the console: ``y`` approves, ``n REASON`` rejects, ``e name=value ...`` edits."""

    def __init__(self, ask: Callable[[str], str] = input, decided_by: str = "user") -> None:
        self.ask = ask
        self.decided_by = decided_by

    def __call__(self, checked: CheckedProposal) -> Decision:
        from IPython.core.error import StdinNotImplementedError

        prompt = (
            f"rlam: approve step {describe(checked.proposal)} ?\n"
            "  [y] approve  [n REASON] reject  [e name=value ...] edit and approve: "
        )
        try:
            answer = self.ask(prompt).strip()
        except (StdinNotImplementedError, EOFError, OSError):
            return Decision(False, NOBODY, decided_by="rlam")
        word, _, rest = answer.partition(" ")
        if word.lower() in ("y", "yes"):
            return Decision(True, decided_by=self.decided_by)
        if word.lower() in ("e", "edit"):
            try:
                edits = parse_edits(rest.split())
            except ValueError as exc:
                return Decision(False, f"edit not understood: {exc}", decided_by=self.decided_by)
            return Decision(True, "edited", edited_params=edits, decided_by=self.decided_by)
        return Decision(False, rest.strip() or "rejected at the prompt", decided_by=self.decided_by)


def parse_edits(items: list[str]) -> dict[str, Any]:
    """``["C=0.5", 'model="random_forest"']`` → values (JSON or Python literals, never code)."""
    try:
        return parse_overrides(items)
    except Exception as exc:
        raise ValueError(str(exc)) from None


class ApprovalPanel:
    """Buttons and fields for one paused proposal; ``on_decision`` runs on a click."""

    def __init__(
        self,
        proposal: Proposal,
        on_decision: Callable[[Decision], None],
        *,
        title: str = "",
    ) -> None:
        import ipywidgets as widgets

        self.proposal = proposal
        self.on_decision = on_decision
        self.decision: Decision | None = None
        self.fields = {
            name: widgets.Text(value=json.dumps(value), description=name)
            for name, value in proposal.params.items()
        }
        self.reason = widgets.Text(placeholder="why (recorded with a rejection)")
        self.approve_button = widgets.Button(description="Approve", button_style="success")
        self.reject_button = widgets.Button(description="Reject", button_style="danger")
        self.status = widgets.HTML()
        self.output = widgets.Output()
        self.approve_button.on_click(lambda _b: self._decide(True))
        self.reject_button.on_click(lambda _b: self._decide(False))
        heading = widgets.HTML(
            f"<b>{html.escape(title or 'Approve this step?')}</b><br>"
            f"<code>{html.escape(describe(proposal))}</code>"
        )
        self.widget = widgets.VBox(
            [
                heading,
                *self.fields.values(),
                self.reason,
                widgets.HBox([self.approve_button, self.reject_button]),
                self.status,
                self.output,
            ]
        )

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    def edits(self) -> dict[str, Any]:
        """Parameters whose field the person changed (JSON values)."""
        changed: dict[str, Any] = {}
        for name, field in self.fields.items():
            try:
                value = json.loads(field.value)
            except json.JSONDecodeError:
                raise ValueError(f"{name}: {field.value!r} is not a JSON value") from None
            if value != self.proposal.params.get(name):
                changed[name] = value
        return changed

    def _decide(self, approved: bool) -> None:
        if self.decision is not None:
            return
        try:
            edits = self.edits() if approved else {}
        except ValueError as exc:
            self.status.value = f"<span style='color:var(--jp-error-color1)'>{exc}</span>"
            return
        self.decision = Decision(
            approved,
            self.reason.value.strip() or ("" if approved else "rejected in the notebook"),
            edited_params=edits or None,
        )
        self.approve_button.disabled = self.reject_button.disabled = True
        self.status.value = "approved" if approved else "rejected"
        with self.output:
            self.on_decision(self.decision)
