"""What every MCP front end answers, whatever carries the request: the tool list, a
tool call and the trace's resources, on one :class:`Session`.

The headless server (:mod:`.server`, stdio or HTTP) holds a :class:`Dispatcher` itself;
the notebook-attached server sends each request to the notebook's kernel, where the
kernel's own :class:`Dispatcher` answers it (:mod:`frontends.magics.mcp`). Both give the
same answers because they are this code: action calls go through :class:`ActionCalls`
(proposal, check, policy, engine, trace), run tools read a snapshot of the store,
operation tools run on the session, resources read the same snapshot as the run tools
(:mod:`.resources`). Nothing here is asynchronous or serialised: the caller holds the
lock (headless) or the kernel's execution queue does (attached).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import mcp_types as types

from rlam_jupyter.engine.session import Session
from rlam_jupyter.errors import RlamError
from rlam_jupyter.frontends.mcp import resources as trace_resources
from rlam_jupyter.frontends.mcp.arguments import check_arguments
from rlam_jupyter.frontends.mcp.calls import ActionCalls, Caller
from rlam_jupyter.frontends.mcp.results import data_answer, error_answer, step_answer
from rlam_jupyter.frontends.mcp.run_operations import OPERATION_TOOLS
from rlam_jupyter.frontends.mcp.run_tools import RUN_TOOLS
from rlam_jupyter.frontends.mcp.tool_list import all_tools
from rlam_jupyter.operations.browse.rows import Row
from rlam_jupyter.operations.browse.snapshots import SnapshotCache
from rlam_jupyter.policy import Approver


@dataclass
class Dispatcher:
    """The tools of one session, and the answer to each call."""

    calls: ActionCalls
    snapshots: SnapshotCache = field(default_factory=lambda: SnapshotCache(max_stores=1))

    @property
    def session(self) -> Session:
        return self.calls.session

    def tools(self) -> list[types.Tool]:
        return all_tools(self.session.engine.registry, self.calls.allow_python)

    def resources(self) -> list[types.Resource]:
        """``rlam://runs`` and one resource per run of the store."""
        return trace_resources.resources(self.snapshots.get(self.session.engine.layout))

    def resource_templates(self) -> list[types.ResourceTemplate]:
        return trace_resources.resource_templates()

    def read_resource(self, uri: str) -> types.ReadResourceResult:
        """The resource's JSON; :class:`RlamError` naming the URI and the valid forms
        when it names no resource, run or step."""
        return trace_resources.read_resource(self.snapshots.get(self.session.engine.layout), uri)

    def call(
        self,
        name: str,
        arguments: Any,
        caller: Caller,
        approver: Approver | None = None,
    ) -> types.CallToolResult:
        """The answer to one ``tools/call``; never raises for a refusal or a failure.
        ``approver`` decides a step that needs approval (None: nobody can)."""
        answered = self.server_tool(name, arguments)
        if answered is not None:
            return answered
        result, proposal = self.calls.call(name, arguments, caller, approver)
        return step_answer(result, proposal)

    def server_tool(self, name: str, arguments: Any) -> types.CallToolResult | None:
        """The answer of a run or operation tool; None when ``name`` is an action's."""
        run_tool = RUN_TOOLS.get(name)
        if run_tool is not None:
            layout = self.session.engine.layout
            return answer(
                run_tool.definition,
                arguments,
                lambda checked: run_tool.answer(self.snapshots.get(layout), checked),
            )
        operation = OPERATION_TOOLS.get(name)
        if operation is not None:
            return answer(
                operation.definition,
                arguments,
                lambda checked: operation.answer(self.session, checked),
            )
        return None


def answer(
    tool: types.Tool, arguments: Any, respond: Callable[[dict[str, Any]], Row]
) -> types.CallToolResult:
    """A server tool's answer, or a tool error naming the bad argument or the missing run."""
    try:
        data = respond(check_arguments(tool.name, tool.input_schema, arguments))
    except (RlamError, ValueError, TypeError) as exc:
        message = str(exc)
        return error_answer(message if message.startswith(tool.name) else f"{tool.name}: {message}")
    return data_answer(data, f"{tool.name}: answered from the trace store")
