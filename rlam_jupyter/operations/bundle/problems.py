"""What is wrong with a bundle, always naming the file inside it and the problem."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rlam_jupyter.errors import RlamError


@dataclass(frozen=True)
class Problem:
    """One finding: ``file`` is the entry (or the bundle) it is about."""

    file: str
    problem: str

    def __str__(self) -> str:
        return f"{self.file}: {self.problem}"


class BundleError(RlamError):
    """A bundle cannot be trusted or used; the message lists every problem found."""

    def __init__(self, problems: Sequence[Problem], context: str = "") -> None:
        self.problems = list(problems)
        shown = "\n".join(f"  - {p}" for p in self.problems[:20])
        more = f"\n  ... and {len(self.problems) - 20} more" if len(self.problems) > 20 else ""
        lead = context or "the bundle was refused"
        super().__init__(f"{lead}:\n{shown}{more}")
