"""Column layout of every trace table: one place, shared by journal reader, compaction and export.

The journal stores one JSON object per record; each record kind maps to one table
below. Readers turn records into Arrow tables with these schemas, so a view has the
same columns whether its rows come from a live journal or from compacted Parquet.
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa

SCHEMA_VERSION = 1
"""Bumped whenever a column changes meaning; every journal header and Parquet file carries it."""

_TS = pa.timestamp("us", tz="UTC")

RUNS = pa.schema(
    [
        ("run_id", pa.string()),
        ("name", pa.string()),
        ("seed", pa.int64()),
        ("parent_run_id", pa.string()),
        ("fork_seq", pa.int64()),
        ("notebook", pa.string()),
        ("created_at", _TS),
        ("env_id", pa.string()),
        ("status", pa.string()),
        ("ended_at", _TS),
        ("host", pa.string()),
        ("writer", pa.string()),
        ("event_no", pa.int64()),
    ]
)
"""Run records are snapshots too: the latest ``event_no`` per run wins in the ``runs`` view."""

STEPS = pa.schema(
    [
        ("run_id", pa.string()),
        ("step_id", pa.string()),
        ("seq", pa.int64()),
        ("action", pa.string()),
        ("action_version", pa.string()),
        ("determinism", pa.string()),
        ("params", pa.string()),
        ("inputs", pa.string()),
        ("input_names", pa.string()),
        ("outputs", pa.string()),
        ("targets", pa.string()),
        ("status", pa.string()),
        ("error_type", pa.string()),
        ("error_message", pa.string()),
        ("traceback", pa.string()),
        ("seed", pa.int64()),
        ("cache_key", pa.string()),
        ("cached_from", pa.string()),
        ("recovers", pa.string()),
        ("started_at", _TS),
        ("duration_ms", pa.float64()),
        ("env_id", pa.string()),
        ("origin", pa.string()),
        ("proposed_by", pa.string()),
        ("cell_id", pa.string()),
        ("cell_execution_count", pa.int64()),
        ("cell_source_hash", pa.string()),
        ("source_line", pa.int64()),
        ("source_text", pa.string()),
        ("host", pa.string()),
        ("executor", pa.string()),
        ("event_no", pa.int64()),
        ("recorded_at", _TS),
    ]
)
"""A step's status changes are new records (``proposed`` → ``accepted`` → ``succeeded``...)."""

ARTIFACTS = pa.schema(
    [
        ("artifact_id", pa.string()),
        ("run_id", pa.string()),
        ("step_id", pa.string()),
        ("name", pa.string()),
        ("kind", pa.string()),
        ("python_type", pa.string()),
        ("size_bytes", pa.int64()),
        ("preview", pa.string()),
        ("object_path", pa.string()),
        ("restorable", pa.bool_()),
        ("note", pa.string()),
        ("event_no", pa.int64()),
    ]
)

EDGES = pa.schema(
    [
        ("run_id", pa.string()),
        ("src", pa.string()),
        ("dst", pa.string()),
        ("type", pa.string()),
        ("role", pa.string()),
        ("event_no", pa.int64()),
    ]
)

ENVIRONMENTS = pa.schema(
    [
        ("env_id", pa.string()),
        ("run_id", pa.string()),
        ("fingerprint", pa.string()),
        ("recorded_at", _TS),
        ("event_no", pa.int64()),
    ]
)

LLM_CALLS = pa.schema(
    [
        ("call_id", pa.string()),
        ("run_id", pa.string()),
        ("provider", pa.string()),
        ("base_url", pa.string()),
        ("model", pa.string()),
        ("request", pa.string()),
        ("response", pa.string()),
        ("request_hash", pa.string()),
        ("response_hash", pa.string()),
        ("seed", pa.int64()),
        ("response_id", pa.string()),
        ("finish_reason", pa.string()),
        ("input_tokens", pa.int64()),
        ("output_tokens", pa.int64()),
        ("latency_ms", pa.float64()),
        ("error", pa.string()),
        ("started_at", _TS),
        ("turn", pa.int64()),
        ("attributes", pa.string()),
        ("event_no", pa.int64()),
    ]
)
"""One request/response with an LLM (or a scripted proposer). ``turn`` is its position in
the run's conversation; ``attributes`` is JSON keyed by OpenTelemetry GenAI names
(``gen_ai.request.model``, ``gen_ai.usage.input_tokens``, ...). ``request``/``response``
are null when content recording is off; the hashes are always kept."""

APPROVALS = pa.schema(
    [
        ("run_id", pa.string()),
        ("step_id", pa.string()),
        ("decision", pa.string()),
        ("reason", pa.string()),
        ("edited_params", pa.string()),
        ("decided_by", pa.string()),
        ("decided_at", _TS),
        ("event_no", pa.int64()),
    ]
)

ACTIONS = pa.schema(
    [
        ("run_id", pa.string()),
        ("action_version", pa.string()),
        ("name", pa.string()),
        ("version", pa.string()),
        ("determinism", pa.string()),
        ("origin", pa.string()),
        ("module", pa.string()),
        ("source", pa.string()),
        ("source_hash", pa.string()),
        ("code_digest", pa.string()),
        ("missing", pa.string()),
        ("dependencies", pa.string()),
        ("packages", pa.string()),
        ("uncacheable", pa.string()),
        ("recorded_at", _TS),
        ("event_no", pa.int64()),
    ]
)
"""One row per action version a run used (``steps.action_version``): where it was defined
(``origin`` cell / module / package, and the ``source`` to rebuild it, JSON, checked
against ``source_hash``), the digest of its code without the environment (``code_digest``:
equal when it is rebuilt elsewhere as it was), what it depends on, and why its steps are
never served from the cache (``uncacheable``), if they are not."""

TABLES: dict[str, pa.Schema] = {
    "runs": RUNS,
    "steps": STEPS,
    "artifacts": ARTIFACTS,
    "edges": EDGES,
    "environments": ENVIRONMENTS,
    "llm_calls": LLM_CALLS,
    "approvals": APPROVALS,
    "actions": ACTIONS,
}
"""Journal record kind (``record["kind"]``) → table schema."""

ADDED_LATER = frozenset({"actions"})
"""Tables that stores and bundles written by earlier releases do not have: read as empty."""

LATEST_BY: dict[str, str] = {"runs": "run_id", "steps": "step_id"}
"""Tables whose records are snapshots: the view keeps the newest record per key."""

STEP_STATUSES = (
    "proposed",
    "accepted",
    "rejected",
    "running",
    "succeeded",
    "failed",
    "cached",
    "interrupted",
)
IN_FLIGHT_STATUSES = ("proposed", "accepted", "running")
"""A step whose newest record is one of these has no outcome yet: in flight while its
writer lives, ``interrupted`` once the writer is gone (derived by readers, then recorded
by ``rlam repair``). An interrupted step never finished: it is a gap in the trace."""
INTERRUPTED = "interrupted"
WRITER_DIED = "WriterDied"
"""``error_type`` of a recorded interrupted step: its writer (kernel) died while it ran."""
USER_INTERRUPT = "KeyboardInterrupt"
"""``error_type`` of a step its own writer recorded as interrupted (Ctrl-C, the kernel's
interrupt button): its outcome is on record, unlike a writer that died."""
EDGE_TYPES = ("used", "generated", "derived_from", "recovers", "forked_from", "proposed_by")


def decode_json_column(text: str | None, default: Any) -> Any:
    """The value of a JSON-encoded column (params, inputs, outputs, ...), or ``default``
    when it is empty or unreadable: views of the trace show what they can."""
    if not text:
        return default
    try:
        return json.loads(text)
    except ValueError:
        return default
