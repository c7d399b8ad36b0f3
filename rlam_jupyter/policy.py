"""Execution policies: which actions may run, who approves, retries and timeouts.

A policy is decided *before* execution; its verdicts are recorded like everything else.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from rlam_jupyter.errors import RlamError

if TYPE_CHECKING:
    from rlam_jupyter.actions.registry import ActionSpec

OnFailure = Literal["stop", "ask_agent", "recover"]
ApprovalMode = Literal["none", "effects", "all"]
APPROVAL_MODES: tuple[ApprovalMode, ...] = ("none", "effects", "all")


@dataclass(frozen=True)
class Decision:
    """A human's (or a rule's) verdict on one proposal."""

    approved: bool
    reason: str = ""
    edited_params: dict[str, Any] | None = None
    decided_by: str = "user"


Approver = Callable[[Any], Decision]
"""Called with a ``CheckedProposal``; returns the decision. Absent = non-interactive."""


@dataclass(frozen=True)
class Policy:
    """Rules applied to every accepted proposal of a run."""

    allowed_actions: frozenset[str] | None = None
    denied_actions: frozenset[str] = field(default_factory=frozenset)
    require_approval: bool = False
    approve_effects: bool = False
    """Ask before any step of an action with effects (``--approve effects``)."""
    max_retries: int = 0
    timeout_s: float | None = None
    on_failure: OnFailure = "stop"

    @classmethod
    def approving(cls, mode: ApprovalMode, **rules: Any) -> Policy:
        """The policy of ``--approve none|effects|all``."""
        return cls(require_approval=mode == "all", approve_effects=mode == "effects", **rules)

    def needs_approval(self, spec: ActionSpec) -> bool:
        """Whether a person decides a step of ``spec`` before it runs: every step
        (``require_approval``), the action's own declaration, or its effects. Until
        actions declare effects one by one, an action has effects when its determinism
        is ``external`` (it reads or changes the world outside its inputs)."""
        if self.require_approval or spec.requires_approval:
            return True
        return self.approve_effects and has_effects(spec)

    def refusal(self, action: str) -> str | None:
        """Why ``action`` may not run under this policy, or None when it may."""
        if action in self.denied_actions:
            return f"the policy denies the action {action!r}"
        if self.allowed_actions is not None and action not in self.allowed_actions:
            allowed = ", ".join(sorted(self.allowed_actions))
            return f"the policy allows only these actions: {allowed}"
        return None


def has_effects(spec: ActionSpec) -> bool:
    """Whether a step of ``spec`` may act on the world beyond its outputs."""
    return spec.determinism == "external"


class StepTimeout(RlamError):
    """A step ran longer than the policy's timeout."""


@contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Interrupt the step after ``seconds`` (main thread only; elsewhere no limit applies)."""
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_alarm(signum: int, frame: Any) -> None:
        raise StepTimeout(f"the step exceeded the policy's timeout of {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
