"""Kernel-side session: one engine, the open runs, and the bridge to the user namespace.

The magics, the sidebar's ``%rlam`` commands and the Python API all go through this
object, so a kernel has exactly one writer per run and one cache index.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import Any

from rlam_jupyter.actions.proposal import Proposal
from rlam_jupyter.actions.registry import ActionSpec
from rlam_jupyter.engine.engine import Engine
from rlam_jupyter.engine.run_state import Run
from rlam_jupyter.engine.trace import CellInfo, StepResult
from rlam_jupyter.errors import RlamError
from rlam_jupyter.policy import Policy
from rlam_jupyter.store.resolve import StoreRef


@dataclass
class Session:
    """State of rlam in one kernel (or one script)."""

    engine: Engine
    namespace: MutableMapping[str, Any] = field(default_factory=dict)
    runs: dict[str, Run] = field(default_factory=dict)
    current: Run | None = None
    notebook: str | None = None

    @classmethod
    def create(
        cls,
        store: StoreRef = None,
        namespace: MutableMapping[str, Any] | None = None,
        policy: Policy | None = None,
        notebook: str | None = None,
    ) -> Session:
        """A session on ``store``; ``notebook``: the notebook its runs are recorded with
        (front ends that know it say so: see :mod:`rlam_jupyter.frontends.kernel`)."""
        return cls(
            Engine(store, policy=policy),
            namespace if namespace is not None else {},
            notebook=notebook,
        )

    def run_for(self, name: str | None, seed: int | None) -> Run:
        """The run a cell goes to: the named one, the current one, or a new one."""
        if name is not None:
            run = self.runs.get(name)
            if run is None or run.status != "open":
                run = self.start(name, seed if seed is not None else 0)
            elif seed is not None and seed != run.seed:
                raise RlamError(
                    f"run {name!r} uses seed {run.seed}; a run keeps one seed. "
                    f"Start a new run with `%%rlam --run NEW_NAME --seed {seed}`."
                )
            self.current = run
            return run
        if self.current is not None and self.current.status == "open":
            if seed is not None and seed != self.current.seed:
                return self.start(None, seed)
            return self.current
        return self.start(None, seed if seed is not None else 0)

    def start(
        self,
        name: str | None,
        seed: int,
        *,
        parent_run_id: str | None = None,
        fork_seq: int | None = None,
    ) -> Run:
        """Start a run (ending an open one of the same name); named after the notebook
        when ``name`` is None. ``parent_run_id``/``fork_seq``: a fork, as
        :meth:`Engine.start_run` takes it."""
        if name is None:
            base = os.path.splitext(os.path.basename(self.notebook or "session"))[0]
            name = f"{base}-{len(self.runs) + 1}"
        previous = self.runs.get(name)
        if previous is not None and previous.status == "open":
            self.engine.end_run(previous)
        run = self.engine.start_run(
            name, seed, notebook=self.notebook, parent_run_id=parent_run_id, fork_seq=fork_seq
        )
        self.runs[name] = run
        self.current = run
        return run

    def end(self, run: Run | None = None) -> Run | None:
        run = run or self.current
        if run is not None and run.status == "open":
            self.engine.end_run(run)
        if run is self.current:
            self.current = None
        return run

    def close(self) -> None:
        for run in list(self.runs.values()):
            if run.status == "open":
                self.engine.end_run(run)

    def execute(
        self,
        run: Run,
        proposals: list[Proposal],
        *,
        cell: CellInfo | None = None,
        use_cache: bool = True,
        dry_run: bool = False,
        recovers: str | None = None,
        spec: ActionSpec | None = None,
    ) -> list[StepResult]:
        """Run a cell's proposals in order and bind their outputs into the namespace
        (``spec``: the action of a single proposal that is not in the registry)."""
        results: list[StepResult] = []
        for index, proposal in enumerate(proposals):
            result = self.engine.execute(
                run,
                proposal,
                cell=cell,
                use_cache=use_cache,
                dry_run=dry_run,
                recovers=recovers if index == 0 else None,
                spec=spec,
            )
            results.append(result)
            self.bind(run, proposal)
            if result.status in ("failed", "rejected"):
                break
        return results

    def bind(self, run: Run, proposal: Proposal) -> None:
        for target in proposal.targets:
            binding = run.bindings.get(target)
            if binding is not None and binding.loaded:
                self.namespace[target] = binding.value
