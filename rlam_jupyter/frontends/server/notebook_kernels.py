"""Run one MCP request in a notebook's kernel, from the Jupyter server.

A notebook is found through the server's own session manager (the session JupyterLab
uses when the notebook is open), and its kernel is started when it has none, so what
the agent does lands in the kernel the person sees. A request is the cell
``%%rlam mcp`` (:mod:`frontends.mcp.kernel_protocol`), executed with stdin allowed so
the kernel can ask for approval; the answer is read from the execution's display data.
Requests to one kernel are serialised here as well as by the kernel's own queue, and
one that outlives its kernel (killed, crashed, restarted) is answered as such: the
step it was running is recorded as ``interrupted`` by the store's liveness check.
"""

from __future__ import annotations

import asyncio
import queue
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tornado.web
from jupyter_client.asynchronous.client import AsyncKernelClient

from rlam_jupyter.errors import RlamError
from rlam_jupyter.frontends.mcp.kernel_protocol import ANSWER_MIME, ApprovalRequest

LOAD_EXTENSION = "%load_ext rlam_jupyter"
POLL_S = 0.05
Approve = Callable[[ApprovalRequest], Awaitable[str]]
"""Given the kernel's approval request, the decision as JSON (waits for the sidebar)."""


class KernelDied(RlamError):
    """The notebook's kernel stopped while it ran a request."""


@dataclass
class NotebookKernels:
    """The notebooks of one Jupyter server, and a kernel client for each kernel used."""

    session_manager: Any
    kernel_manager: Any
    root_dir: Path
    clients: dict[str, AsyncKernelClient] = field(default_factory=dict)
    locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    async def open_notebooks(self) -> list[str]:
        """Paths (relative to the server root) of notebooks that have a kernel now."""
        sessions = await self.session_manager.list_sessions()
        return sorted(s["path"] for s in sessions if s.get("type", "notebook") == "notebook")

    def check_path(self, path: str) -> str:
        """``path`` as the server names it, if it is a notebook under the root."""
        clean = path.strip().lstrip("/")
        full = (self.root_dir / clean).resolve()
        if not full.is_relative_to(self.root_dir.resolve()):
            raise RlamError(f"rlam_open: {path!r} is outside the Jupyter server's root")
        if full.suffix != ".ipynb" or not full.is_file():
            raise RlamError(
                f"rlam_open: no notebook at {clean!r} (give the path of an .ipynb file "
                "relative to the Jupyter server's root)"
            )
        return full.relative_to(self.root_dir.resolve()).as_posix()

    async def kernel_of(self, path: str) -> tuple[str, bool]:
        """The id of the notebook's kernel, started (with a session) when it has none;
        and whether it was started now."""
        try:
            if await self.session_manager.session_exists(path=path):
                model = await self.session_manager.get_session(path=path)
                return str(model["kernel"]["id"]), False
        except (KeyError, tornado.web.HTTPError):
            pass  # the session's kernel is gone (killed and not restarted): start another
        model = await self.session_manager.create_session(
            path=path, name=Path(path).name, type="notebook", kernel_name=None
        )
        return str(model["kernel"]["id"]), True

    async def client(self, kernel_id: str) -> AsyncKernelClient:
        client = self.clients.get(kernel_id)
        if client is None:
            manager = self.kernel_manager.get_kernel(kernel_id)
            client = manager.client()
            client.start_channels()
            await client.wait_for_ready(timeout=60)
            self.clients[kernel_id] = client
        return client

    async def request(self, path: str, cell: str, approve: Approve) -> Any:
        """Run ``cell`` in the notebook's kernel and return what it displayed under
        :data:`ANSWER_MIME`; raises :class:`KernelDied` or :class:`RlamError`."""
        kernel_id, _started = await self.kernel_of(path)
        lock = self.locks.setdefault(kernel_id, asyncio.Lock())
        async with lock:
            try:
                client = await self.client(kernel_id)
                watch = KernelWatch(self.kernel_manager.get_kernel(kernel_id), path)
                await execute(client, LOAD_EXTENSION, watch, approve, silent=True)
                return await execute(client, cell, watch, approve)
            except KernelDied:
                self.drop_client(kernel_id)
                raise

    def drop_client(self, kernel_id: str) -> None:
        client = self.clients.pop(kernel_id, None)
        if client is not None:
            client.stop_channels()

    def close(self) -> None:
        for kernel_id in list(self.clients):
            self.drop_client(kernel_id)


@dataclass
class KernelWatch:
    """Tells whether the kernel that started a request is still the one running: a
    kernel the server restarted behind our back has a new process."""

    manager: Any
    path: str
    pid: Any = None

    def __post_init__(self) -> None:
        self.pid = _pid(self.manager)

    async def check(self) -> None:
        alive = await self.manager.is_alive()
        if not alive or _pid(self.manager) != self.pid:
            raise KernelDied(
                f"the kernel of {self.path} died while it ran this call; the step it was "
                "running is recorded as interrupted (restart the kernel and call again)"
            )


def _pid(manager: Any) -> Any:
    provisioner = getattr(manager, "provisioner", None)
    return getattr(provisioner, "pid", None) or getattr(provisioner, "process", None)


async def execute(
    client: AsyncKernelClient, code: str, watch: KernelWatch, approve: Approve, silent: bool = False
) -> Any:
    """Execute ``code``; answer its approval prompts; return its answer display."""
    msg_id = client.execute(code, silent=silent, store_history=False, allow_stdin=True)
    found: Any = None
    error: str | None = None
    idle = replied = False
    while not (idle and replied):
        await watch.check()
        for message in await _drain(client.get_stdin_msg):
            if message["parent_header"].get("msg_id") == msg_id:
                await _answer_input(client, message, watch, approve)
        for message in await _drain(client.get_shell_msg):
            if message["parent_header"].get("msg_id") == msg_id:
                replied = True
                if message["content"].get("status") == "error":
                    content = message["content"]
                    error = f"{content.get('ename')}: {content.get('evalue')}"
        message = await _next(client.get_iopub_msg, POLL_S)
        if message is None or message["parent_header"].get("msg_id") != msg_id:
            continue
        kind, content = message["header"]["msg_type"], message["content"]
        if kind == "display_data" and ANSWER_MIME in content.get("data", {}):
            found = content["data"][ANSWER_MIME]
        elif kind == "status" and content.get("execution_state") == "idle":
            idle = True
    if error is not None:
        raise RlamError(f"the kernel refused the request: {error}")
    return found


async def _answer_input(
    client: AsyncKernelClient, message: dict[str, Any], watch: KernelWatch, approve: Approve
) -> None:
    """Answer an ``input()`` of the request: an approval goes to the sidebar (while the
    kernel is watched); any other prompt gets an empty line."""
    request = ApprovalRequest.from_prompt(str(message["content"].get("prompt", "")))
    if request is None:
        client.input("")
        return
    decision = asyncio.ensure_future(approve(request))
    try:
        while not decision.done():
            await watch.check()
            await asyncio.wait({decision}, timeout=0.5)
    except KernelDied:
        decision.cancel()
        raise
    client.input(decision.result())


async def _drain(get: Callable[..., Awaitable[dict[str, Any]]]) -> list[dict[str, Any]]:
    messages = []
    while (message := await _next(get, 0)) is not None:
        messages.append(message)
    return messages


async def _next(get: Callable[..., Awaitable[dict[str, Any]]], timeout: float) -> Any:
    try:
        return await get(timeout=timeout)
    except queue.Empty:
        return None
