"""What a tool call answers: ``structuredContent`` for programs, a short text for models
that read text only (the agent's own answer, :func:`operations.agent.messages.tool_answer`),
and ``isError`` for a refusal or a failure."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from mcp_types import CallToolResult, TextContent

from rlam_jupyter.actions.proposal import Proposal
from rlam_jupyter.engine.trace import StepResult
from rlam_jupyter.operations.agent.messages import tool_answer
from rlam_jupyter.values.preview import preview

PREVIEW_CHARS = 300


def step_content(result: StepResult, proposal: Proposal | None) -> dict[str, Any]:
    """The step as structured content: ids, status, seed, outputs (bound name, hash,
    preview), whether the cache served it, and the error of a refusal or failure."""
    targets = proposal.targets if proposal is not None else ()
    names = list(targets) + list(result.outputs)[len(targets) :]
    outputs = [
        {
            "name": name,
            "output": output,
            "hash": digest,
            "preview": preview(result.values[output], limit=PREVIEW_CHARS)
            if output in result.values
            else None,
        }
        for name, (output, digest) in zip(names, result.outputs.items(), strict=False)
    ]
    error = result.error
    return {
        "run_id": result.run_id,
        "step_id": result.step_id,
        "seq": result.seq,
        "action": result.action,
        "status": result.status,
        "seed": result.seed,
        "cache_hit": result.status == "cached",
        "cached_from": result.cached_from,
        "duration_ms": result.duration_ms,
        "outputs": outputs,
        "error": {"type": error.type, "message": error.message} if error else None,
        "notes": list(result.notes),
    }


def step_answer(result: StepResult, proposal: Proposal | None) -> CallToolResult:
    """The answer to an action call; a refused or failed step is a tool error."""
    return CallToolResult(
        content=[TextContent(type="text", text=tool_answer(result, proposal))],
        structured_content=step_content(result, proposal),
        is_error=not result.ok,
    )


def data_answer(data: Mapping[str, Any], summary: str) -> CallToolResult:
    """The answer of a run tool: the rows as structured content and as JSON text."""
    plain = json.loads(json.dumps(data, default=str))
    text = f"{summary}\n{json.dumps(plain, indent=1)}"
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=plain)


def error_answer(message: str) -> CallToolResult:
    """A tool error that is not a step (a run tool's bad argument, an unknown run)."""
    return CallToolResult(content=[TextContent(type="text", text=message)], is_error=True)
