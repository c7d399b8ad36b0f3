"""Recording of LLM requests and responses in the ``llm_calls`` table.

Every call is written before any step it proposes runs, success or error alike. The
base URL is kept without credentials (user info, query string); API keys are never
part of a request body here, so they never reach the trace. With content recording
off only the hashes of request and response are stored. Attribute names follow the
OpenTelemetry GenAI semantic conventions where one exists.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from rlam_jupyter.engine import Run
from rlam_jupyter.operations.agent.tools import Reply
from rlam_jupyter.store.journal import now_us
from rlam_jupyter.values.digest import digest_bytes
from rlam_jupyter.values.hashing import canonical_json


def public_base_url(url: str | None) -> str | None:
    """``url`` without user info, query or fragment (where keys like ``?api-key=`` hide)."""
    if not url:
        return url
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def content_hash(kind: str, value: Any) -> str:
    try:
        data = canonical_json(value)
    except (TypeError, ValueError):
        data = json.dumps(value, sort_keys=True, default=repr).encode()
    return digest_bytes(kind, data)


@dataclass(frozen=True)
class CallOutcome:
    """What one call to a proposer produced: a reply, or an error with its kind."""

    reply: Reply | None
    error_type: str | None = None
    error_message: str | None = None
    latency_ms: float = 0.0
    started_us: int = 0


def record_call(
    run: Run,
    call_id: str,
    turn: int,
    *,
    provider: str,
    base_url: str | None,
    model: str,
    request: Mapping[str, Any],
    outcome: CallOutcome,
    record_content: bool,
    attributes: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Append one ``llm_calls`` record to the run's journal; returns it.

    ``attributes``: more (or overriding) attributes, e.g. an MCP client's name and the
    request id of the tool call that proposed a step."""
    reply = outcome.reply
    url = public_base_url(base_url)
    recorded: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": provider,
        "gen_ai.request.model": model,
        "gen_ai.request.temperature": request.get("temperature"),
        "gen_ai.request.seed": request.get("seed"),
        "gen_ai.conversation.id": run.run_id,
        "rlam.content_recorded": record_content,
        "rlam.turn": turn,
    }
    if url:
        parts = urlsplit(url)
        recorded["server.address"] = parts.hostname
        recorded["server.port"] = parts.port or (443 if parts.scheme == "https" else 80)
    if reply is not None:
        recorded.update(
            {
                "gen_ai.response.id": reply.response_id,
                "gen_ai.response.model": reply.response_model,
                "gen_ai.response.finish_reasons": [reply.finish_reason]
                if reply.finish_reason
                else [],
                "gen_ai.usage.input_tokens": reply.input_tokens,
                "gen_ai.usage.output_tokens": reply.output_tokens,
                "rlam.tool_call_ids": [c.id for c in reply.tool_calls],
            }
        )
    if outcome.error_type:
        recorded["error.type"] = outcome.error_type
    recorded.update(attributes or {})
    response_body = dict(reply.body) if reply is not None else None
    record = {
        "call_id": call_id,
        "run_id": run.run_id,
        "provider": provider,
        "base_url": url,
        "model": model,
        "request": json.dumps(request, default=repr) if record_content else None,
        "response": json.dumps(response_body, default=repr)
        if record_content and response_body is not None
        else None,
        "request_hash": content_hash("llm-request", request),
        "response_hash": content_hash("llm-response", response_body)
        if response_body is not None
        else None,
        "seed": request.get("seed"),
        "response_id": reply.response_id if reply else None,
        "finish_reason": reply.finish_reason if reply else None,
        "input_tokens": reply.input_tokens if reply else None,
        "output_tokens": reply.output_tokens if reply else None,
        "latency_ms": outcome.latency_ms,
        "error": f"{outcome.error_type}: {outcome.error_message}" if outcome.error_type else None,
        "started_at": outcome.started_us or now_us(),
        "turn": turn,
        "attributes": json.dumps(recorded, default=repr),
    }
    run.writer.append("llm_calls", record)
    return record
