"""Compact step index of a run: what replay, fork and diff need, without reading the whole store.

The journal stays the source of truth. The engine that writes a run keeps its index
in memory (:mod:`.memory`) and saves it as an Arrow IPC file, ``index/<run_id>.arrow``,
when the run ends, stamped with the sizes of the run's journal files (:mod:`.saved`). A
stamp that no longer matches (records appended later) makes readers rebuild the index
from the DuckDB views (:mod:`.rebuild`), so a stale index is never used. A saved index is
read memory-mapped and queried column-wise: finding one step or the artifacts visible
before a step costs vectorised work over that one run, not a Python loop over its
prefix, and nothing over the rest of the store. A fork sees its ancestors' prefixes
through :mod:`.lineage`; :mod:`.source` finds the indexes.

- ``model``: the records (:class:`~.model.StepEntry`, :class:`~.model.ArtifactRef`, ...)
  and what every index answers (:class:`~.model.StepIndex`).
- ``memory``, ``saved``, ``rebuild``, ``lineage``, ``source``: as above.
"""
