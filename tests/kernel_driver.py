"""Drive a real kernel like JupyterLab does: a notebook's cells through nbclient, and the
sidebar's ``%rlam`` lines through the kernel's execute channel, outside any cell.

The sidebar (labextension/src/commands.ts ``runInKernel``) first loads the extension
with a silent request, then sends the command with ``{"rlam": {"origin": "sidebar"}}``
as the request's metadata and no cell id; its outputs go to the sidebar, not to a cell.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient

LOAD_EXTENSION = "get_ipython().extension_manager.load_extension('rlam_jupyter')"


@dataclass(frozen=True)
class SidebarReply:
    """What the kernel answered one sidebar command: the reply status and the text it showed."""

    status: str
    text: str


def run_notebook_with_sidebar(
    path: Path,
    sidebar: Sequence[str | Callable[[], str]] = (),
    *,
    env: Mapping[str, str] | None = None,
    save_before_sidebar: bool = False,
) -> list[SidebarReply]:
    """Execute ``path``'s cells in a fresh kernel (cwd: its folder), then send each
    ``sidebar`` line as the sidebar would (a callable gives the line once the cells ran,
    e.g. to name a run id as the sidebar does); save the executed notebook back to ``path``
    (``save_before_sidebar``: also save it before the sidebar lines, as the sidebar's
    Export bundle does). ``env``: the kernel's environment (jupyter_server sets
    ``JPY_SESSION_NAME`` there)."""
    return asyncio.run(_run(path, sidebar, env, save_before_sidebar))


async def _run(
    path: Path,
    sidebar: Sequence[str | Callable[[], str]],
    env: Mapping[str, str] | None,
    save_first: bool,
) -> list[SidebarReply]:
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent.resolve())}},
    )
    kwargs: dict[str, Any] = {} if env is None else {"env": dict(env)}
    replies = []
    async with client.async_setup_kernel(**kwargs):
        for index, cell in enumerate(notebook.cells):
            await client.async_execute_cell(cell, index)
        if save_first:
            nbformat.write(notebook, path)
        assert client.kc is not None
        for line in sidebar:
            code = line() if callable(line) else line
            await _send(client.kc, LOAD_EXTENSION, silent=True)
            replies.append(await _send(client.kc, code, metadata={"rlam": {"origin": "sidebar"}}))
    nbformat.write(notebook, path)
    return replies


async def _send(
    kc: Any, code: str, *, silent: bool = False, metadata: dict[str, Any] | None = None
) -> SidebarReply:
    content = {
        "code": code,
        "silent": silent,
        "store_history": not silent,
        "user_expressions": {},
        "allow_stdin": False,
        "stop_on_error": True,
    }
    msg = kc.session.msg("execute_request", content, metadata=metadata or {})
    kc.shell_channel.send(msg)
    msg_id = msg["header"]["msg_id"]
    texts: list[str] = []
    while True:
        reply = await kc.get_shell_msg(timeout=600)
        if reply["parent_header"].get("msg_id") == msg_id:
            break
    while True:
        out = await kc.get_iopub_msg(timeout=600)
        if out["parent_header"].get("msg_id") != msg_id:
            continue
        kind, body = out["msg_type"], out["content"]
        if kind == "stream":
            texts.append(body["text"])
        elif kind in ("execute_result", "display_data"):
            texts.append(body["data"].get("text/plain", ""))
        elif kind == "error":
            texts.append(f"{body['ename']}: {body['evalue']}")
        elif kind == "status" and body["execution_state"] == "idle":
            break
    return SidebarReply(reply["content"]["status"], "".join(texts))
