"""What an MCP client sees: one tool per registered action, from the very schemas the
LLM agent gets (:func:`operations.agent.tools.agent_tools`), plus the run tools.

The ``python`` escape hatch is offered only by ``rlam mcp --allow-python``
(:mod:`.python_tool`; the agent's tools hide it). Annotations
follow the action's determinism: a ``pure`` action reads only its inputs
(``readOnlyHint``), a ``pure`` or ``seeded`` one gives the same outputs for the same
call (``idempotentHint``); effects (``destructiveHint``) are not declared yet, so that
hint is left to the client's default.
"""

from __future__ import annotations

from typing import Any

from mcp_types import Tool, ToolAnnotations

from rlam_jupyter.actions.registry import ActionSpec, Registry
from rlam_jupyter.frontends.mcp.python_tool import python_tool
from rlam_jupyter.frontends.mcp.run_operations import OPERATION_TOOLS
from rlam_jupyter.frontends.mcp.run_tools import RUN_TOOLS
from rlam_jupyter.operations.agent.tools import agent_tools


def action_tools(registry: Registry) -> list[Tool]:
    """One tool per action the agent may propose, its input schema the agent's."""
    tools = []
    for definition in agent_tools(registry):
        function: dict[str, Any] = definition["function"]
        spec = registry[function["name"]]
        tools.append(
            Tool(
                name=spec.name,
                description=f"{spec.description}\n\nSignature: {spec.signature()}",
                input_schema=function["parameters"],
                annotations=tool_annotations(spec),
            )
        )
    return tools


def tool_annotations(spec: ActionSpec) -> ToolAnnotations:
    return ToolAnnotations(
        title=spec.name,
        read_only_hint=spec.determinism == "pure",
        idempotent_hint=spec.determinism in ("pure", "seeded"),
    )


def all_tools(registry: Registry, allow_python: bool = False) -> list[Tool]:
    """The action tools (and ``python`` when allowed), then the run tools (an action of
    a run tool's name is refused at start-up: :func:`.server.check_tool_names`)."""
    return (
        action_tools(registry)
        + ([python_tool()] if allow_python else [])
        + [tool.definition for tool in RUN_TOOLS.values()]
        + [tool.definition for tool in OPERATION_TOOLS.values()]
    )
