"""Replay, verify, fork and diff recorded runs.

- ``replay(run)`` restores every step's recorded outputs (no re-execution) into the
  kernel namespace, says which steps failed, and compares the recorded environment
  with the current one (:mod:`~rlam_jupyter.operations.replay.restore`); ``verify=True``
  re-executes each re-executable step with its recorded seed, parameters and inputs and
  compares output hashes (:mod:`~rlam_jupyter.operations.replay.verify`).
- ``fork(run, at, params)`` starts a run that shares the parent's steps before ``at``
  by reference (nothing is copied, so the cost does not grow with ``at``),
  re-proposes step ``at`` with the overrides (schema-checked like any proposal) and
  re-runs the later steps in order, from the cache where their inputs are unchanged
  (:mod:`~rlam_jupyter.operations.replay.fork`).
- ``diff(a, b)`` aligns two runs step by step (forks keep step positions)
  (:mod:`~rlam_jupyter.operations.replay.diff`); ``fork_tree(run)`` lists the forks a run
  belongs to (:mod:`~rlam_jupyter.operations.replay.fork_tree`).

Each finds its store, engine and session, and the run the user named, through
:mod:`~rlam_jupyter.operations.replay.context`, and reads the run's compact step index
(:mod:`rlam_jupyter.store.index`), not the whole store. The reports they return are in
:mod:`~rlam_jupyter.operations.replay.views` and
:mod:`~rlam_jupyter.operations.replay.diff_views`. ``%rlam replay|fork|diff`` and
``rlam replay|diff|forks`` are thin wrappers around these functions.
"""

from __future__ import annotations

from rlam_jupyter.operations.replay.context import open_lineage, resolve
from rlam_jupyter.operations.replay.diff import diff
from rlam_jupyter.operations.replay.fork import ForkRejected, fork, start_fork_run
from rlam_jupyter.operations.replay.fork_tree import fork_tree
from rlam_jupyter.operations.replay.restore import replay
from rlam_jupyter.store.resolve import StoreRef

__all__ = [
    "ForkRejected",
    "StoreRef",
    "diff",
    "fork",
    "fork_tree",
    "open_lineage",
    "replay",
    "resolve",
    "start_fork_run",
]
