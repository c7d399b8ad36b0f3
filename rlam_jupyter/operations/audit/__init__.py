"""The paper's three metrics and a failure report, computed from the trace itself.

- **Trace Completeness**: of everything the trace implies must be there, the share
  that is. Each step needs its proposal and the decision on it; an accepted step needs
  its outcome; a succeeded step the artifacts and ``generated`` edges of its outputs;
  inputs their ``used`` edges; a recovery the failed step it answers; an agent's step
  the LLM call that proposed it; an LLM call as many steps as it made tool calls; step
  numbers have no gaps. A record dropped from a journal shows up here.
- **Failure Visibility**: of the failures, the share recorded with their cause (type
  and message; a traceback too when an action raised). A run that ended ``failed`` or
  ``stopped`` with no failure on record counts as an invisible failure.
- **Reproducibility Success**: of the re-executable steps, the share that re-execute
  to the recorded output hashes (``replay(run, verify=True)``).

``audit(run)`` returns an :class:`AuditReport` (HTML in a notebook, text in a terminal,
``to_json()``); ``rlam audit [RUN]`` exits 1 when a metric is below its target.

Modules, one job each: ``metrics`` (targets, :class:`Tally`), ``queries`` (what is read
from the trace), ``run_state`` (open, interrupted, writers of unknown fate),
``completeness`` and ``visibility`` (the two metrics of one run, and its failures),
``run_audit`` (:class:`RunAudit`), ``reproducibility`` (the re-execution), ``report``
(:class:`AuditReport`) and ``store_audit`` (:func:`audit`).
"""

from __future__ import annotations

from rlam_jupyter.operations.audit.metrics import METRIC_LABELS, TARGETS, Tally
from rlam_jupyter.operations.audit.report import AuditReport
from rlam_jupyter.operations.audit.run_audit import RunAudit
from rlam_jupyter.operations.audit.store_audit import audit
from rlam_jupyter.operations.audit.visibility import Failure

__all__ = ["METRIC_LABELS", "TARGETS", "AuditReport", "Failure", "RunAudit", "Tally", "audit"]
