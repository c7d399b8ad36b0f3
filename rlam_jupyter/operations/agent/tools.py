"""What an agent sees (tools) and how its tool calls become proposals.

The model only ever produces *data*: a tool name and a JSON object of arguments. This
module splits those arguments, using the action's spec, into literal parameters and
input artifact names, and hands a :class:`Proposal` to the ordinary schema check. No
argument is ever evaluated; a string that looks like code is just a string.

Output names: every tool takes an optional ``_outputs`` argument, the list of names
to bind the action's outputs to (in the order of its declared outputs). Without it,
the declared output names are used, except that a lone unnamed output (``result``)
is bound to ``<action>_result`` so that one step does not overwrite another's.
"""

from __future__ import annotations

import json
import keyword
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rlam_jupyter.actions.proposal import MAX_SOURCE_CHARS, Proposal, ProposalRejected, suggest
from rlam_jupyter.actions.registry import ActionSpec, Registry

OUTPUTS_ARG = "_outputs"
HIDDEN_ACTIONS = frozenset({"python"})
"""Never offered to an agent: the escape hatch runs code, and only a person writes it."""


@dataclass(frozen=True)
class ToolCall:
    """One tool call as the model sent it: the arguments are raw JSON text."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class Reply:
    """One answer of a proposer: tool calls and/or text, with what the recording needs."""

    tool_calls: tuple[ToolCall, ...]
    content: str | None
    finish_reason: str | None
    body: Mapping[str, Any]
    """The response as received (JSON-compatible), recorded in ``llm_calls``."""
    response_id: str | None = None
    response_model: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None

    def assistant_message(self) -> dict[str, Any]:
        """The reply as the assistant message that goes back into the conversation."""
        message: dict[str, Any] = {"role": "assistant", "content": self.content}
        if self.tool_calls:
            message["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                }
                for call in self.tool_calls
            ]
        return message


def default_targets(spec: ActionSpec) -> tuple[str, ...]:
    """Names an action's outputs get when the model does not name them."""
    if spec.outputs == ("result",):
        return (f"{spec.name}_result",)
    return spec.outputs


def offered_actions(registry: Registry) -> list[ActionSpec]:
    return [spec for spec in registry.values() if spec.name not in HIDDEN_ACTIONS]


def agent_tools(registry: Registry) -> list[dict[str, Any]]:
    """The registry as OpenAI tool definitions, each with the optional ``_outputs``."""
    tools = []
    for spec in offered_actions(registry):
        schema = spec.json_schema()
        if spec.outputs:
            defaults = ", ".join(default_targets(spec))
            properties = dict(schema["properties"])
            properties[OUTPUTS_ARG] = {
                "type": "array",
                "items": {"type": "string", "pattern": "^[A-Za-z][A-Za-z0-9_]*$"},
                "minItems": len(spec.outputs),
                "maxItems": len(spec.outputs),
                "description": f"names for the outputs ({', '.join(spec.outputs)}), in this "
                f"order; later calls pass them as inputs. Default: {defaults}",
            }
            schema["properties"] = properties
        tools.append(
            {
                "type": "function",
                "function": {
                    "name": spec.name,
                    "description": spec.description,
                    "parameters": schema,
                },
            }
        )
    return tools


def to_proposal(call: ToolCall, registry: Registry, origin: str = "agent") -> Proposal:
    """Turn one tool call into a proposal; raises :class:`ProposalRejected` saying what to fix.

    Only the shape is checked here (known tool, JSON object, inputs named by strings,
    output names); types, ranges and bound names are the schema check's job. ``origin``:
    who sent the call, as the step records it (``agent``, ``mcp``).
    """
    name = call.name
    offered = {spec.name for spec in offered_actions(registry)}
    if not isinstance(name, str) or name not in offered:
        hint = (
            "The python escape hatch is not offered to agents."
            if name in HIDDEN_ACTIONS
            else suggest(str(name), offered)
        )
        raise ProposalRejected(f"unknown tool {str(name)[:80]!r}", hint=hint, action=str(name))
    spec = registry[name]
    arguments = _arguments(call, spec)
    targets = _targets(arguments.pop(OUTPUTS_ARG, None), spec)
    params: dict[str, Any] = {}
    inputs: dict[str, str] = {}
    for key, value in arguments.items():
        if key in spec.inputs:
            if not isinstance(value, str) or not value.isidentifier():
                raise ProposalRejected(
                    f"{key} is an input: give the name of an artifact produced by an earlier "
                    f"step (a string such as 'data'), not {_shown(value)}",
                    hint=f"Expected: {spec.signature()}",
                    action=name,
                )
            inputs[key] = value
        else:
            params[key] = value
    proposal = Proposal.from_json(
        {"action": name, "params": params, "inputs": inputs, "targets": list(targets)},
        origin=origin,
    )
    return Proposal(
        proposal.action,
        proposal.params,
        proposal.inputs,
        proposal.targets,
        origin=origin,
        source_text=proposal.as_source(),
    )


def unparsed(call: ToolCall, origin: str = "agent") -> Proposal:
    """A stand-in proposal for a tool call that could not be read, so its refusal is recorded."""
    name = call.name if isinstance(call.name, str) and call.name else "<no tool name>"
    arguments = call.arguments if isinstance(call.arguments, str) else repr(call.arguments)
    text = f"{name}({arguments})"
    if len(text) > 2000:
        text = text[:1999] + "…"
    return Proposal(name[:200], origin=origin, source_text=text)


def _arguments(call: ToolCall, spec: ActionSpec) -> dict[str, Any]:
    raw = call.arguments
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return {}
    if not isinstance(raw, str):
        raise ProposalRejected("tool arguments must be a JSON object", action=spec.name)
    if len(raw) > MAX_SOURCE_CHARS:
        raise ProposalRejected(
            f"the arguments of {spec.name} are {len(raw)} characters long, more than the "
            f"{MAX_SOURCE_CHARS} allowed",
            action=spec.name,
        )
    try:
        value = json.loads(raw)
    except (json.JSONDecodeError, RecursionError) as exc:
        where = (
            f" ({exc.msg} at character {exc.pos})" if isinstance(exc, json.JSONDecodeError) else ""
        )
        raise ProposalRejected(
            f"the arguments of {spec.name} are not valid JSON{where}",
            hint=f"Send one JSON object, e.g. for {spec.signature()}",
            action=spec.name,
        ) from None
    if not isinstance(value, dict):
        raise ProposalRejected(
            f"the arguments of {spec.name} must be a JSON object, not {type(value).__name__}",
            action=spec.name,
        )
    return value


def _targets(value: Any, spec: ActionSpec) -> tuple[str, ...]:
    if value is None:
        return default_targets(spec)
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ProposalRejected(
            f"{OUTPUTS_ARG} must be a list of names, not {_shown(value)}", action=spec.name
        )
    bad = [n for n in names if not n.isidentifier() or n.startswith("_") or keyword.iskeyword(n)]
    if bad:
        raise ProposalRejected(
            f"{OUTPUTS_ARG}: {bad[0][:60]!r} is not a usable name; use letters, digits and "
            "underscores, starting with a letter",
            action=spec.name,
        )
    if len(names) != len(spec.outputs):
        raise ProposalRejected(
            f"{spec.name} produces {len(spec.outputs)} output(s) "
            f"({', '.join(spec.outputs) or 'none'}), but {OUTPUTS_ARG} names {len(names)}",
            action=spec.name,
        )
    return tuple(names)


def _shown(value: Any) -> str:
    text = json.dumps(value, default=repr)
    return text if len(text) <= 60 else text[:57] + "..."
