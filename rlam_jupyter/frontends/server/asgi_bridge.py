"""Serve an ASGI app (the MCP SDK's Streamable HTTP transport) from a Jupyter server
handler, so ``/rlam/mcp`` is behind Jupyter's own authentication and on its own port.

Jupyter runs tornado on asyncio, the SDK runs on anyio over asyncio: one loop serves
both. The handler turns the tornado request into an ASGI ``http`` scope, feeds the body,
and streams each body chunk back as it comes (the transport answers with Server-Sent
Events), telling the app when the client has gone (``http.disconnect``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import tornado.iostream
import tornado.web

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
    Awaitable[None],
]


def scope_of(handler: tornado.web.RequestHandler, path: str) -> Scope:
    """The ASGI scope of the handler's request, as the app expects it at ``path``."""
    request = handler.request
    host, _, port = request.host.rpartition(":")
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": request.version.removeprefix("HTTP/"),
        "method": request.method or "GET",
        "scheme": request.protocol,
        "path": path,
        "raw_path": path.encode(),
        "query_string": request.query.encode(),
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in request.headers.get_all()],
        "client": (request.remote_ip, 0),
        "server": (host or request.host, int(port) if port.isdigit() else 80),
    }


async def serve(
    handler: tornado.web.RequestHandler, app: ASGIApp, path: str, gone: asyncio.Event
) -> None:
    """Answer the handler's request with ``app``; ``gone`` is set when the client
    disconnects (the handler's ``on_connection_close``)."""
    body_sent = False

    async def receive() -> Message:
        nonlocal body_sent
        if not body_sent:
            body_sent = True
            return {"type": "http.request", "body": handler.request.body, "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        if gone.is_set():
            return
        if message["type"] == "http.response.start":
            handler.clear()
            handler.set_status(int(message["status"]))
            seen: set[str] = set()
            for raw_name, raw_value in message.get("headers", ()):
                name, value = raw_name.decode("latin-1"), raw_value.decode("latin-1")
                if name.lower() in seen:
                    handler.add_header(name, value)
                else:
                    handler.set_header(name, value)  # replaces tornado's default
                seen.add(name.lower())
        elif message["type"] == "http.response.body":
            chunk = message.get("body", b"")
            if chunk:
                handler.write(chunk)
            if message.get("more_body"):
                try:
                    await handler.flush()
                except tornado.iostream.StreamClosedError:
                    gone.set()

    await app(scope_of(handler, path), receive, send)
    if not gone.is_set():
        handler.finish()
