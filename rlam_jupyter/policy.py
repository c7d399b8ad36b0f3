"""Execution policies: which actions may run, who approves, retries and timeouts.

A policy is decided *before* execution; its verdicts are recorded like everything else.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from rlam_jupyter.errors import RlamError

OnFailure = Literal["stop", "ask_agent", "recover"]


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
    max_retries: int = 0
    timeout_s: float | None = None
    on_failure: OnFailure = "stop"

    def refusal(self, action: str) -> str | None:
        """Why ``action`` may not run under this policy, or None when it may."""
        if action in self.denied_actions:
            return f"the policy denies the action {action!r}"
        if self.allowed_actions is not None and action not in self.allowed_actions:
            allowed = ", ".join(sorted(self.allowed_actions))
            return f"the policy allows only these actions: {allowed}"
        return None


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
