"""The engine layer's public names: :class:`Engine`, :class:`Run`, :class:`Binding`.

The engine runs accepted proposals under a policy and records every step.
Modules, each with one job: :mod:`~rlam_jupyter.engine.engine` (the :class:`Engine`
that composes the others), :mod:`~rlam_jupyter.engine.run_state` (runs and their
bindings), :mod:`~rlam_jupyter.engine.runs` (a run's start and end),
:mod:`~rlam_jupyter.engine.gate` (check, policy, approval),
:mod:`~rlam_jupyter.engine.cache_keys` (cache keys and cached steps),
:mod:`~rlam_jupyter.engine.outputs` (objects, artifacts, snapshots, input protection),
:mod:`~rlam_jupyter.engine.recorder` (every trace row the engine writes), and
:mod:`~rlam_jupyter.engine.executors` (where action bodies run).
"""

from rlam_jupyter.engine.engine import Engine
from rlam_jupyter.engine.run_state import Binding, Run
from rlam_jupyter.errors import StoreWriteError

__all__ = ["Binding", "Engine", "Run", "StoreWriteError"]
