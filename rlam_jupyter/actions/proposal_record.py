"""The records of a proposal: what was proposed (:class:`Proposal`), what passed the
check (:class:`CheckedProposal`), and why one was refused (:class:`ProposalRejected`,
with the "did you mean" hint both the cell parser and the schema check give).
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from rlam_jupyter.actions.registry import ActionSpec
from rlam_jupyter.errors import RlamError

Origin = str  # "cell" | "json" | "agent" | "mcp" | "sidebar" | "fork"


class ProposalRejected(RlamError):
    """A proposal failed the syntax, name or schema check; nothing ran."""

    def __init__(
        self,
        reason: str,
        *,
        line: int | None = None,
        col: int | None = None,
        hint: str = "",
        action: str | None = None,
    ) -> None:
        self.reason = reason
        self.line = line
        self.col = col
        self.hint = hint
        self.action = action
        super().__init__(self.message)

    @property
    def message(self) -> str:
        where = f"line {self.line}, column {self.col}: " if self.line is not None else ""
        hint = f" {self.hint}" if self.hint else ""
        return f"{where}{self.reason}.{hint}"


@dataclass(frozen=True)
class Proposal:
    """One proposed step: action, literal params, inputs by bound name, output names."""

    action: str
    params: Mapping[str, Any] = field(default_factory=dict)
    inputs: Mapping[str, str] = field(default_factory=dict)
    targets: tuple[str, ...] = ()
    origin: Origin = "cell"
    line: int | None = None
    col: int | None = None
    source_text: str | None = None
    positional: tuple[Any, ...] = ()

    @classmethod
    def from_json(cls, data: str | Mapping[str, Any], origin: Origin = "json") -> Proposal:
        """Build from ``{"action": ..., "params": {...}, "inputs": {...}, "targets": [...]}``."""
        if isinstance(data, str):
            try:
                data = json.loads(data)
            except json.JSONDecodeError as exc:
                raise ProposalRejected(
                    f"proposal is not valid JSON ({exc.msg} at {exc.pos})"
                ) from exc
        if not isinstance(data, Mapping):
            raise ProposalRejected("a proposal must be a JSON object with an 'action' key")
        unknown = set(data) - {"action", "params", "inputs", "targets"}
        if unknown:
            raise ProposalRejected(f"unknown proposal keys {sorted(unknown)}")
        name = data.get("action")
        params = data.get("params", {}) or {}
        inputs = data.get("inputs", {}) or {}
        targets = data.get("targets", []) or []
        if not isinstance(name, str) or not name:
            raise ProposalRejected("'action' must be a non-empty string")
        if not isinstance(params, Mapping) or not all(isinstance(k, str) for k in params):
            raise ProposalRejected("'params' must be an object of parameter values", action=name)
        if not isinstance(inputs, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in inputs.items()
        ):
            raise ProposalRejected(
                "'inputs' must map parameter names to artifact names", action=name
            )
        if not isinstance(targets, list) or not all(
            isinstance(t, str) and t.isidentifier() for t in targets
        ):
            raise ProposalRejected("'targets' must be a list of identifiers", action=name)
        return cls(name, dict(params), dict(inputs), tuple(targets), origin=origin)

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "params": dict(self.params),
            "inputs": dict(self.inputs),
            "targets": list(self.targets),
        }

    def as_source(self) -> str:
        """The proposal written as a ``%%rlam`` statement (for display and the trace)."""
        args = [f"{k}={v}" for k, v in self.inputs.items()]
        args += [f"{k}={v!r}" for k, v in self.params.items()]
        call = f"{self.action}({', '.join(args)})"
        return f"{', '.join(self.targets)} = {call}" if self.targets else call


@dataclass(frozen=True)
class CheckedProposal:
    """A proposal that passed the check: validated params and resolved input names."""

    proposal: Proposal
    spec: ActionSpec
    params: BaseModel
    params_json: dict[str, Any]


def suggest(name: str, candidates: Iterable[str]) -> str:
    """'Did you mean ...?' for an unknown action name."""
    matches = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.5)
    if matches:
        return f"Did you mean `{matches[0]}`? (`rlam_jupyter.registry()` lists all actions)"
    return "`rlam_jupyter.registry()` lists the registered actions."
