"""The R-LAM paper's evaluation, reproduced with this package and measured, not asserted.

Modes run the same Breast Cancer Wisconsin workflow (load → analyse → preprocess →
train → evaluate) in three experiments: ``linear``; ``failure`` (the agent proposes a
wrong target column and an out-of-range ``C``, then recovers); ``fork`` (the run is
re-done from the training step with ``C`` changed). Each experiment runs once as the
reference and ``n`` more times as re-runs.

- ``script``: a hand-written script with fixed seeds; it keeps the results file it writes.
- ``naive_lam``: an agent that executes free-form Python snippets (what an LLM emits)
  unchecked, feeding errors back to the LLM; it keeps what a plain notebook keeps: the
  cell that ran the agent and the answer it displayed.
- ``rlam``: this package: every proposal schema-checked, executed by the engine with
  pinned seeds, recorded in the trace store; a recovery links to what it recovers.
- ``upstream``: PyPI ``rlam`` 0.1.0 (if installed) driven as its README shows; it keeps
  its in-memory ``ExecutionTrace`` (counted generously: nothing of it is persisted).

The LLM is a deterministic offline stand-in (:class:`ScriptedStandIn`) unless an
OpenAI-compatible endpoint is configured (:class:`OpenAIStandIn`). Metrics:

- *Reproducibility success*: fraction of re-runs whose output hashes equal the
  reference run's (``rlam``: hashes as recorded in the trace; other modes: hashes of the
  values they produced).
- *Trace completeness*: fraction of the events that happened (each proposal, each
  decision on it, each execution with its output, each failure with its cause) that can
  be found in what the mode kept.
- *Failure visibility*: fraction of injected failures whose type and message were kept.
- Wall time per repetition and overhead against the script.
"""

from __future__ import annotations

from rlam_jupyter.operations.evaluation.runner import (
    MODES,
    UPSTREAM_HINT,
    Evaluation,
    run_evaluation,
)

__all__ = ["MODES", "UPSTREAM_HINT", "Evaluation", "run_evaluation"]
