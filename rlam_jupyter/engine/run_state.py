"""Kernel-side state of open runs: the names bound in them and their steps' results.

Data only; what happens to a run (start, end) is :mod:`rlam_jupyter.engine.runs`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from rlam_jupyter.engine.trace import StepResult
from rlam_jupyter.store.index.memory import RunIndex
from rlam_jupyter.store.journal import JournalWriter
from rlam_jupyter.store.schema import INTERRUPTED


@dataclass
class Binding:
    """An artifact bound to a name in a run: its hash, where its bytes are, its value."""

    name: str
    artifact_id: str
    step_id: str
    kind: str
    object_path: str | None
    value: Any = None
    loaded: bool = True
    fingerprint: str | None = None
    """``quick_fingerprint`` of ``value`` when it was last known to equal the recorded
    artifact: lets ``protect_inputs`` skip re-encoding an unchanged DataFrame."""


@dataclass
class Run:
    """Kernel-side state of one open run: only what the next steps need."""

    run_id: str
    name: str
    seed: int
    writer: JournalWriter
    notebook: str | None = None
    parent_run_id: str | None = None
    fork_seq: int | None = None
    next_seq: int = 1
    env_id: str = ""
    status: str = "open"
    bindings: dict[str, Binding] = field(default_factory=dict)
    results: list[StepResult] = field(default_factory=list)
    created_us: int = 0
    index: RunIndex | None = None
    """Compact record of this run's steps (what replay and fork read without the store)."""
    worker_envs: set[str] = field(default_factory=set)
    """Environments of executor workers already recorded for this run."""
    action_versions: set[str] = field(default_factory=set)
    """Action versions whose source this run has recorded (``actions`` table)."""

    @property
    def failed_steps(self) -> list[StepResult]:
        return [r for r in self.results if r.status in ("failed", INTERRUPTED)]

    @property
    def unrecovered_failures(self) -> list[StepResult]:
        """Failed steps that no successful recovery answers (directly or through a chain
        of recoveries that themselves failed and were recovered)."""
        answered: dict[str, list[StepResult]] = {}
        for result in self.results:
            if result.recovers:
                answered.setdefault(result.recovers, []).append(result)

        def recovered(step_id: str, depth: int = 0) -> bool:
            return depth < 100 and any(
                r.ok or (r.status == "failed" and recovered(r.step_id, depth + 1))
                for r in answered.get(step_id, [])
            )

        return [r for r in self.failed_steps if not recovered(r.step_id)]

    def step_id_of(self, seq: int) -> str:
        """The id of this run's step number ``seq``."""
        return f"{self.run_id}-{seq:06d}"

    def take_step(self) -> tuple[int, str]:
        """The next step's number and id, reserved for it."""
        seq = self.next_seq
        self.next_seq += 1
        return seq, self.step_id_of(seq)


class BoundValues(Mapping[str, Any]):
    """The names bound in a run as the schema check sees them; a value is loaded (by
    ``load``) only when a check needs it (a fork may see thousands of names and use two)."""

    def __init__(self, bindings: Mapping[str, Binding], load: Callable[[Binding], Any]) -> None:
        self._bindings = bindings
        self._load = load

    def __getitem__(self, name: str) -> Any:
        return self._load(self._bindings[name])

    def __contains__(self, name: object) -> bool:
        return name in self._bindings

    def __iter__(self) -> Iterator[str]:
        return iter(self._bindings)

    def __len__(self) -> int:
        return len(self._bindings)
