"""A deterministic, offline proposer: a list of steps plus recovery rules.

It answers exactly like a model would (tool calls in chat-completions form), so its
proposals go through the same mediation, check, policy and recording as an LLM's.
Its answer is a pure function of the conversation so far, which makes replays and
forks of scripted runs exact:

- after a failed or refused call of action ``A`` it proposes the next unused
  recovery for ``A`` (``recover={"train_model": [...]}``), if any;
- otherwise it proposes the next scripted step not yet proposed;
- when the script is exhausted it answers with a final text (no tool call).

A script is a list of proposals (``{"action", "params", "inputs", "targets"}``), or
raw tool calls (``{"tool": NAME, "arguments": "<JSON text>"}``, to rehearse bad
model output), or ``%%rlam`` statements; :meth:`ScriptedProposer.from_text` reads all
three (JSON: a list, or ``{"steps": [...], "recover": {...}, "final": "..."}``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rlam_jupyter.actions.proposal import Proposal, parse_cell
from rlam_jupyter.actions.registry import Registry
from rlam_jupyter.errors import RlamError
from rlam_jupyter.operations.agent.tools import OUTPUTS_ARG, Reply, ToolCall

ScriptItem = Proposal | Mapping[str, Any]

_STEP_PREFIX = "scripted-"
_RECOVERY_PREFIX = "recover-"
FAILURE_MARKERS = ("rejected:", "failed:", "not run:")
"""How the loop's tool results start when a call did not succeed (see loop.py)."""


class ScriptedProposer:
    """Proposes a fixed list of steps, with recovery rules per action; works offline."""

    provider = "scripted"
    base_url: str | None = None

    def __init__(
        self,
        steps: Sequence[ScriptItem],
        recover: Mapping[str, Sequence[ScriptItem]] | None = None,
        final: str = "All scripted steps are done.",
        model: str = "scripted",
    ) -> None:
        self.steps = [_tool_call(item, f"{_STEP_PREFIX}{i}") for i, item in enumerate(steps)]
        self.recover = {
            action: [
                _tool_call(item, f"{_RECOVERY_PREFIX}{action}-{i}") for i, item in enumerate(items)
            ]
            for action, items in (recover or {}).items()
        }
        self.final = final
        self.model = model

    @classmethod
    def from_text(cls, text: str, registry: Registry) -> ScriptedProposer:
        """Read a script from a cell body: JSON, ``%%rlam`` statements, or a ``.json`` path."""
        body = text.strip()
        if body.endswith(".json") and "\n" not in body and Path(body).is_file():
            body = Path(body).read_text(encoding="utf-8")
        if body.startswith(("[", "{")):
            try:
                data = json.loads(body)
            except json.JSONDecodeError as exc:
                raise RlamError(
                    f"the scripted agent's JSON is invalid ({exc.msg}, line {exc.lineno}); "
                    'give a list of proposals or {"steps": [...], "recover": {...}}'
                ) from None
            if isinstance(data, list):
                return cls(data)
            if isinstance(data, dict) and isinstance(data.get("steps"), list):
                return cls(
                    data["steps"],
                    data.get("recover") or {},
                    str(data.get("final") or "All scripted steps are done."),
                )
            raise RlamError(
                "a script must be a JSON list of proposals or an object with a 'steps' list"
            )
        return cls(parse_cell(text, registry))

    def complete(self, request: Mapping[str, Any]) -> Reply:
        messages = list(request.get("messages") or [])
        calls = _proposed_calls(messages)
        failed = _last_failed_call(messages, calls)
        chosen: ToolCall | None = None
        if failed is not None:
            used = {c for c in calls if c.startswith(f"{_RECOVERY_PREFIX}{failed.name}-")}
            chosen = next((c for c in self.recover.get(failed.name, []) if c.id not in used), None)
        if chosen is None:
            done = [int(c[len(_STEP_PREFIX) :]) for c in calls if c.startswith(_STEP_PREFIX)]
            position = max(done, default=-1) + 1
            chosen = self.steps[position] if position < len(self.steps) else None
        if chosen is None:
            return _reply((), self.final, "stop", len(messages), self.model)
        return _reply((chosen,), None, "tool_calls", len(messages), self.model)


def _tool_call(item: ScriptItem, call_id: str) -> ToolCall:
    if isinstance(item, Proposal):
        arguments: Any = {**item.params, **item.inputs}
        if item.targets:
            arguments[OUTPUTS_ARG] = list(item.targets)
        return ToolCall(call_id, item.action, json.dumps(arguments))
    if "tool" in item:
        raw = item.get("arguments", {})
        text = raw if isinstance(raw, str) else json.dumps(raw)
        return ToolCall(call_id, str(item["tool"]), text)
    proposal = Proposal.from_json(dict(item))
    return _tool_call(proposal, call_id)


def _proposed_calls(messages: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Tool call id → tool name, for every call in the conversation."""
    calls: dict[str, str] = {}
    for message in messages:
        if message.get("role") == "assistant":
            for call in message.get("tool_calls") or []:
                calls[str(call.get("id"))] = str(call.get("function", {}).get("name"))
    return calls


def _last_failed_call(
    messages: Sequence[Mapping[str, Any]], calls: Mapping[str, str]
) -> ToolCall | None:
    last = messages[-1] if messages else None
    if last is None or last.get("role") != "tool":
        return None
    content = str(last.get("content") or "")
    if not content.startswith(FAILURE_MARKERS):
        return None
    call_id = str(last.get("tool_call_id"))
    return ToolCall(call_id, calls.get(call_id, ""), "")


def _reply(
    calls: tuple[ToolCall, ...], content: str | None, finish: str, turn: int, model: str
) -> Reply:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in calls
        ]
    body = {
        "id": f"scripted-{turn}",
        "object": "chat.completion",
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
    }
    return Reply(calls, content, finish, body, response_id=f"scripted-{turn}", response_model=model)
