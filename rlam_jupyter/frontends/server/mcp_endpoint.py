"""``<base_url>/rlam/mcp``: the MCP server attached to the notebooks of a Jupyter server.

The same tools as ``rlam mcp`` (the kernel's own registry, so actions defined in the
notebook are tools too), served over Streamable HTTP behind Jupyter's authentication
(``Authorization: Bearer <jupyter token>``; 403 without it). A call goes to one
notebook: the one the client chose with ``rlam_open(notebook=PATH)``, else the only
notebook with a kernel. It runs in that notebook's kernel as a ``%%rlam mcp`` cell, so
its outputs land in the person's namespace and current run, and the sidebar shows the
step as it is recorded. A step that needs approval (``--RlamMCP.approve``, or the
action's own ``requires_approval``) waits on the sidebar's Approve / Reject / Edit.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from pathlib import Path
from typing import Any

import mcp_types as types
import tornado.web
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.shared.exceptions import MCPError
from tornado.ioloop import IOLoop
from traitlets import Enum, Float
from traitlets.config import Configurable

from rlam_jupyter.errors import RlamError
from rlam_jupyter.frontends.mcp.calls import Caller
from rlam_jupyter.frontends.mcp.kernel_protocol import ApprovalRequest, decision_json, request_cell
from rlam_jupyter.frontends.mcp.results import data_answer, error_answer
from rlam_jupyter.frontends.mcp.run_tools import tool
from rlam_jupyter.frontends.mcp.server import INSTRUCTIONS, SERVER_NAME, caller_of
from rlam_jupyter.frontends.server import asgi_bridge
from rlam_jupyter.frontends.server.approval_board import ApprovalBoard
from rlam_jupyter.frontends.server.notebook_kernels import KernelDied, NotebookKernels
from rlam_jupyter.policy import APPROVAL_MODES
from rlam_jupyter.version import __version__

OPEN = tool(
    "rlam_open",
    "Choose the notebook your calls run in (its kernel is started if it has none): the "
    "notebook's own actions become tools, outputs land in its namespace and current run, "
    "and its rlam sidebar shows each step. Without it, calls go to the only open notebook.",
    {"notebook": {"type": "string", "description": "path of the .ipynb, from Jupyter's root"}},
    ["notebook"],
    types.ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True),
)


class RlamMCP(Configurable):
    """Settings of the notebook-attached MCP server (``c.RlamMCP.approve = "effects"``)."""

    approve = Enum(
        list(APPROVAL_MODES),
        default_value="none",
        help="Which steps of MCP clients wait for a person in the sidebar: none (only "
        "actions declared requires_approval), effects, all.",
    ).tag(config=True)
    approval_timeout = Float(
        600.0, help="Seconds a step waits for its approval before it is refused."
    ).tag(config=True)


class AttachedServer:
    """The MCP server of one Jupyter server: its notebooks, their kernels, the board."""

    def __init__(
        self, kernels: NotebookKernels, board: ApprovalBoard, approve: str, log: Any
    ) -> None:
        self.log = log
        self.kernels = kernels
        self.board = board
        self.approve = approve
        self.chosen: dict[tuple[str, str | None], str] = {}
        """Client (name, version) → the notebook it opened."""

    async def notebook_for(self, caller: Caller) -> str:
        chosen = self.chosen.get((caller.name, caller.version))
        if chosen is not None:
            return chosen
        open_now = await self.kernels.open_notebooks()
        if len(open_now) == 1:
            return open_now[0]
        listed = ", ".join(open_now) if open_now else "none has a kernel now"
        raise RlamError(
            "choose a notebook first: call rlam_open(notebook=PATH) with the path of an "
            f".ipynb under the Jupyter root (open notebooks: {listed})"
        )

    async def in_kernel(self, notebook: str, method: str, params: dict[str, Any]) -> Any:
        async def approve(request: ApprovalRequest) -> str:
            return decision_json(await self.board.decide_later(notebook, request))

        try:
            return await self.kernels.request(notebook, request_cell(method, params), approve)
        except KernelDied:
            self.board.drop(notebook, "the notebook's kernel died")
            raise

    async def list_tools(
        self, ctx: ServerRequestContext[Any], _params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        try:
            notebook = await self.notebook_for(caller_of(ctx))
        except RlamError:
            return types.ListToolsResult(tools=[OPEN])  # the rest once a notebook is chosen
        listed = await self.in_kernel(notebook, "tools/list", {})
        tools = [types.Tool.model_validate(t) for t in listed]
        return types.ListToolsResult(tools=[OPEN, *tools])

    async def call_tool(
        self, ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        caller = caller_of(ctx)
        try:
            if params.name == OPEN.name:
                return await self.open(ctx, caller, params.arguments or {})
            notebook = await self.notebook_for(caller)
            request = {
                "name": params.name,
                "arguments": params.arguments,
                "caller": dataclasses.asdict(caller),
                "approve": self.approve,
            }
            answer = await self.in_kernel(notebook, "tools/call", request)
        except RlamError as exc:
            return error_answer(str(exc))
        except Exception as exc:  # a kernel or session the server could not reach
            self.log.exception("rlam /rlam/mcp: %s failed", params.name)
            return error_answer(
                f"{params.name}: the Jupyter server could not run this call in the notebook's "
                f"kernel ({type(exc).__name__}: {exc}); see the server's log, and call again"
            )
        if not isinstance(answer, dict) or "error" in answer:
            return error_answer(str(answer.get("error") if isinstance(answer, dict) else answer))
        return types.CallToolResult.model_validate(answer)

    async def kernel_answer(
        self, ctx: ServerRequestContext[Any], method: str, **params: Any
    ) -> Any:
        """What the chosen notebook's kernel answers; an error becomes an MCP error."""
        try:
            answer = await self.in_kernel(await self.notebook_for(caller_of(ctx)), method, params)
        except RlamError as exc:
            raise MCPError(types.INVALID_PARAMS, str(exc)) from None
        if isinstance(answer, dict) and "error" in answer:
            raise MCPError(types.INVALID_PARAMS, str(answer["error"]), params or None)
        return answer

    async def list_resources(
        self, ctx: ServerRequestContext[Any], _params: types.PaginatedRequestParams | None
    ) -> types.ListResourcesResult:
        listed = await self.kernel_answer(ctx, "resources/list")
        return types.ListResourcesResult(
            resources=[types.Resource.model_validate(r) for r in listed]
        )

    async def list_resource_templates(
        self, ctx: ServerRequestContext[Any], _params: types.PaginatedRequestParams | None
    ) -> types.ListResourceTemplatesResult:
        listed = await self.kernel_answer(ctx, "resources/templates/list")
        return types.ListResourceTemplatesResult(
            resource_templates=[types.ResourceTemplate.model_validate(t) for t in listed]
        )

    async def read_resource(
        self, ctx: ServerRequestContext[Any], params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult:
        read = await self.kernel_answer(ctx, "resources/read", uri=str(params.uri))
        return types.ReadResourceResult.model_validate(read)

    async def open(
        self, ctx: ServerRequestContext[Any], caller: Caller, arguments: dict[str, Any]
    ) -> types.CallToolResult:
        notebook = self.kernels.check_path(str(arguments.get("notebook", "")))
        kernel_id, started = await self.kernels.kernel_of(notebook)
        self.chosen[(caller.name, caller.version)] = notebook
        with contextlib.suppress(Exception):  # a client without the back-channel re-lists
            await ctx.session.send_tool_list_changed()
        data = {"notebook": notebook, "kernel_id": kernel_id, "kernel_started": started}
        return data_answer(data, f"rlam_open: calls now run in {notebook}")

    def server(self) -> Server[Any]:
        return Server(
            SERVER_NAME,
            version=__version__,
            instructions=INSTRUCTIONS + " Call rlam_open(notebook=PATH) to choose the notebook.",
            on_list_tools=self.list_tools,
            on_call_tool=self.call_tool,
            on_list_resources=self.list_resources,
            on_list_resource_templates=self.list_resource_templates,
            on_read_resource=self.read_resource,
            # No tool maps arguments to Mcp-Param headers, so there is nothing for the
            # SDK to check; without this it would list the tools (a kernel round trip)
            # before every stateless call.
            get_tool_input_schema=lambda _name: None,
        )


class MCPHandler(APIHandler):
    """``/rlam/mcp``: Jupyter authenticates, the SDK's transport answers."""

    def initialize(self, manager: StreamableHTTPSessionManager, path: str) -> None:
        self.manager = manager
        self.path = path
        self.gone = asyncio.Event()

    def check_xsrf_cookie(self) -> None:
        """MCP clients authenticate with the token header, never a cookie; a browser
        request with only a cookie is still checked as Jupyter checks it."""
        if self.request.headers.get("Authorization") is None:
            super().check_xsrf_cookie()

    def on_connection_close(self) -> None:
        self.gone.set()

    async def bridge(self) -> None:
        await asgi_bridge.serve(self, self.manager.handle_request, self.path, self.gone)

    @tornado.web.authenticated
    async def get(self) -> None:
        await self.bridge()

    @tornado.web.authenticated
    async def post(self) -> None:
        await self.bridge()

    @tornado.web.authenticated
    async def delete(self) -> None:
        await self.bridge()


def setup_mcp(server_app: Any, board: ApprovalBoard) -> None:
    """Serve ``/rlam/mcp`` on the running Jupyter server."""
    settings = RlamMCP(config=server_app.config)
    board.timeout_s = settings.approval_timeout
    kernels = NotebookKernels(
        server_app.session_manager, server_app.kernel_manager, Path(server_app.root_dir)
    )
    attached = AttachedServer(kernels, board, settings.approve, server_app.log)
    manager = StreamableHTTPSessionManager(app=attached.server(), security_settings=None)

    async def run_manager() -> None:
        async with manager.run():
            await asyncio.Event().wait()  # as long as the server's loop runs

    IOLoop.current().add_callback(lambda: asyncio.ensure_future(run_manager()))
    path = url_path_join(server_app.web_app.settings["base_url"], "rlam", "mcp")
    server_app.web_app.add_handlers(
        ".*$", [(path + "/?$", MCPHandler, {"manager": manager, "path": path})]
    )
