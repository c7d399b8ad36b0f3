"""The records of a run index, and what every index of one run answers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

OK_STATUSES = ("succeeded", "cached")


@dataclass(frozen=True)
class ArtifactRef:
    """Where a recorded output's bytes are (``object_path`` is None when only hashed)."""

    artifact_id: str
    kind: str
    object_path: str | None
    note: str | None = None


@dataclass(frozen=True)
class StepEntry:
    """The newest state of one step, as recorded."""

    seq: int
    step_id: str
    action: str
    status: str
    params: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, str] = field(default_factory=dict)
    """Input parameter → the artifact *name* proposed (what a fork re-proposes)."""
    input_ids: dict[str, str] = field(default_factory=dict)
    """Input parameter → the artifact id the step received (what verify restores)."""
    targets: tuple[str, ...] = ()
    outputs: dict[str, str] = field(default_factory=dict)
    seed: int | None = None
    determinism: str | None = None
    action_version: str | None = None
    error_type: str | None = None
    error_message: str | None = None
    cached_from: str | None = None
    recovers: str | None = None
    env_id: str | None = None
    source_text: str | None = None

    @property
    def ok(self) -> bool:
        return self.status in OK_STATUSES

    @property
    def bound_names(self) -> tuple[str, ...]:
        """The names the engine bound (explicit targets, else the output names)."""
        return self.targets or tuple(self.outputs)

    def bindings(self) -> list[tuple[str, str, str]]:
        """``(name bound, output name, artifact id)`` for each output of an ok step."""
        if not self.ok:
            return []
        return [
            (target, output, self.outputs[output])
            for target, output in zip(self.bound_names, self.outputs, strict=False)
        ]


@dataclass(frozen=True)
class VisibleBinding:
    """An artifact a step can use by name: who produced it and where its bytes are."""

    name: str
    output: str
    artifact_id: str
    step_id: str
    kind: str
    object_path: str | None


class StepIndex(Protocol):
    """What a :class:`~rlam_jupyter.store.index.lineage.Lineage` reads from one run, in memory
    or saved."""

    run_id: str
    name: str
    seed: int
    parent_run_id: str | None
    fork_seq: int | None
    status: str
    env_id: str | None
    envs: dict[str, dict[str, Any]]

    @property
    def steps(self) -> Sequence[StepEntry]: ...

    def step(self, seq: int) -> StepEntry | None: ...

    def count_before(self, limit: int) -> int: ...

    def entries_from(self, seq: int) -> list[StepEntry]: ...

    def visible(self, limit: int) -> list[VisibleBinding]: ...

    def artifact(self, artifact_id: str) -> ArtifactRef | None: ...


ENTRY_FIELDS = (
    "seq",
    "step_id",
    "action",
    "status",
    "params",
    "inputs",
    "input_ids",
    "targets",
    "outputs",
    "seed",
    "determinism",
    "action_version",
    "error_type",
    "error_message",
    "cached_from",
    "recovers",
    "env_id",
    "source_text",
)
"""The fields of :class:`StepEntry`, in order: the columns of the saved index."""
