"""``rlam mcp --http [HOST:]PORT``: the same server over the SDK's Streamable HTTP app, on
loopback only, behind a bearer token checked by the SDK's own auth middleware (a request
without ``Authorization: Bearer <token>`` is answered 401 before it reaches a tool).

The SDK's app serves every protocol revision it knows: the initialize handshake
(2024-11-05 … 2025-11-25, stateful sessions) and the stateless per-request envelope
(2026-07-28). It is served by uvicorn, which the SDK already depends on.
"""

from __future__ import annotations

import hmac
import os
import secrets
import socket
import sys
from dataclasses import dataclass

import uvicorn
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings

from rlam_jupyter.errors import RlamError
from rlam_jupyter.frontends.mcp.dispatch import Dispatcher
from rlam_jupyter.frontends.mcp.server import build_server, close

TOKEN_ENV = "RLAM_MCP_TOKEN"
GENERATE = "generate"
MIN_TOKEN_CHARS = 16
LOOPBACK = ("127.0.0.1", "localhost", "::1")
PATH = "/mcp"


@dataclass(frozen=True)
class Endpoint:
    """Where the server listens: a loopback host and a port (0: any free one)."""

    host: str
    port: int


def parse_endpoint(text: str) -> Endpoint:
    """``PORT``, ``HOST:PORT`` or ``[::1]:PORT``; only loopback hosts are accepted, since
    the token travels in clear over plain HTTP."""
    host, _, port = text.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or int(port) > 65535:
        raise RlamError(f"--http {text!r}: give [HOST:]PORT, e.g. --http 127.0.0.1:8765")
    if host not in LOOPBACK:
        raise RlamError(
            f"--http {text!r}: the MCP server listens on loopback only "
            f"({', '.join(LOOPBACK)}); the bearer token would cross the network in clear"
        )
    return Endpoint(host, int(port))


def resolve_token(option: str | None) -> tuple[str, bool]:
    """The bearer token from ``--token`` or ``RLAM_MCP_TOKEN`` (``generate``: a new
    random one); returns it and whether it was generated. Refuses to go without one."""
    token = option if option is not None else os.environ.get(TOKEN_ENV)
    if not token:
        raise RlamError(
            f"rlam mcp --http needs a bearer token: pass --token TOKEN, set {TOKEN_ENV}, "
            f"or pass --token {GENERATE} to have one generated and printed to stderr"
        )
    if token == GENERATE:
        return secrets.token_urlsafe(32), True
    if len(token) < MIN_TOKEN_CHARS:
        raise RlamError(
            f"the bearer token has {len(token)} characters; use at least {MIN_TOKEN_CHARS} "
            f"(--token {GENERATE} makes a strong one)"
        )
    return token, False


@dataclass(frozen=True)
class StaticToken:
    """The SDK's token verifier for one shared secret, compared in constant time."""

    token: str

    async def verify_token(self, token: str) -> AccessToken | None:
        if hmac.compare_digest(token.encode(), self.token.encode()):
            return AccessToken(token=token, client_id="rlam-mcp-bearer", scopes=[])
        return None


def listening_socket(endpoint: Endpoint) -> socket.socket:
    """Bind before serving, so the port the user sees (also for port 0) is the one bound."""
    family = socket.AF_INET6 if ":" in endpoint.host else socket.AF_INET
    # IPPROTO_TCP named: asyncio sets TCP_NODELAY only on sockets that say so, and
    # without it Nagle's algorithm holds each response body ~40 ms for the client's ACK
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((endpoint.host, endpoint.port))
    except OSError as exc:
        sock.close()
        raise RlamError(f"cannot listen on {endpoint.host}:{endpoint.port}: {exc}") from exc
    return sock


async def serve_http(
    dispatcher: Dispatcher,
    approval_timeout_s: float,
    endpoint: Endpoint,
    token: str,
    generated: bool,
) -> None:
    """Serve MCP over Streamable HTTP at ``http://HOST:PORT/mcp`` until interrupted; the
    session's runs end with the server."""
    sock = listening_socket(endpoint)
    host, port = sock.getsockname()[:2]
    url = f"http://{'[' + host + ']' if ':' in host else host}:{port}{PATH}"
    server, actions = build_server(dispatcher, approval_timeout_s)
    app = server.streamable_http_app(
        streamable_http_path=PATH,
        host=endpoint.host,
        auth=AuthSettings(issuer_url=url, resource_server_url=None),  # type: ignore[arg-type]
        token_verifier=StaticToken(token),
    )
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    if generated:
        print(
            f"rlam mcp: bearer token (send 'Authorization: Bearer <token>'): {token}",
            file=sys.stderr,
        )
    print(f"rlam mcp: serving MCP (Streamable HTTP) at {url}", file=sys.stderr, flush=True)
    try:
        await uvicorn.Server(config).serve(sockets=[sock])
    finally:
        sock.close()
        close(dispatcher, actions)
