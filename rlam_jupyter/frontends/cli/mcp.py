"""``rlam mcp [--actions MODULE_OR_FILE ...] [--seed N] [--run NAME] [--approve
none|effects|all] [--allow-python] [--http [HOST:]PORT --token TOKEN]``: the action
registry as an MCP server over stdio, for the agents that start one as a subprocess
(Claude Code, Cursor, Codex CLI, Goose, ...), or over Streamable HTTP on loopback behind a
bearer token. Every tool call is a recorded step."""

from __future__ import annotations

import argparse
import contextlib
import signal
from collections.abc import Iterator
from types import FrameType
from typing import Any

from rlam_jupyter.frontends.cli.output import EXIT_OK

TOKEN_HELP = (
    "the bearer token --http requires (also from the environment variable RLAM_MCP_TOKEN, "
    "which keeps it out of the process list); at least 16 characters. '--token generate' "
    "makes a random one and prints it to stderr. Clients send 'Authorization: Bearer TOKEN'; "
    "requests without it get 401"
)


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "mcp",
        parents=[common],
        help="serve the action registry over MCP (stdio or HTTP): each tool call a recorded step",
        description="Serve the action registry as an MCP server over stdio, for the agents "
        "that start one as a subprocess (Claude Code, Cursor, Codex CLI, Goose, ...), or over "
        "Streamable HTTP on loopback behind a bearer token (--http). Every tool call is a "
        "schema-checked, recorded step; a refusal is a tool error and a rejected step. Runs "
        "until the client disconnects (stdio) or Ctrl-C (HTTP).",
    )
    parser.add_argument(
        "--actions",
        nargs="+",
        default=[],
        metavar="MODULE_OR_FILE",
        help="modules (by name) or .py files whose @rlam.action functions become tools",
    )
    parser.add_argument("--seed", type=int, default=None, help="the run's seed (default 0)")
    parser.add_argument(
        "--run", default=None, metavar="NAME", help="name of the run the calls go to"
    )
    parser.add_argument(
        "--http",
        default=None,
        metavar="[HOST:]PORT",
        help="serve Streamable HTTP at http://HOST:PORT/mcp instead of stdio; loopback hosts "
        "only (127.0.0.1 by default, localhost, ::1); port 0 picks a free one (printed to "
        "stderr)",
    )
    parser.add_argument("--token", default=None, metavar="TOKEN", help=TOKEN_HELP)
    parser.add_argument(
        "--approve",
        choices=("none", "effects", "all"),
        default="none",
        help="which steps wait for a person's decision: none (only actions declared "
        "requires_approval), effects (also every action with effects), all. The client "
        "shows the decision form (MCP elicitation); a client without it gets a refusal",
    )
    parser.add_argument(
        "--approval-timeout",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="refuse (and record) a step whose approval takes longer (default 600)",
    )
    parser.add_argument(
        "--allow-python",
        action="store_true",
        help="offer the python escape hatch as a tool: the client may send code to run as "
        "one recorded step, and every such call waits for the user's approval (MCP "
        "elicitation), whatever --approve says",
    )
    parser.set_defaults(handler=serve)


def serve(args: argparse.Namespace) -> int:
    """Import the actions, open the store's session and serve until stdin closes (stdio)
    or the process is interrupted (HTTP)."""
    import anyio  # lazy: the MCP SDK and its server stack, for rlam --help start-up

    from rlam_jupyter.engine.session import Session  # lazy: the engine, for start-up
    from rlam_jupyter.frontends.mcp.calls import ActionCalls  # lazy: the MCP SDK, for start-up
    from rlam_jupyter.frontends.mcp.dispatch import Dispatcher  # lazy: the MCP SDK
    from rlam_jupyter.frontends.mcp.server import check_tool_names, serve_stdio  # lazy: SDK
    from rlam_jupyter.operations.bundle.reexecute import import_actions  # lazy: the engine
    from rlam_jupyter.policy import Policy  # lazy: with the engine, for start-up

    if args.http is not None:
        from rlam_jupyter.frontends.mcp import http  # lazy: uvicorn, for start-up

        endpoint = http.parse_endpoint(args.http)
        token, generated = http.resolve_token(args.token)
    elif args.token is not None:
        from rlam_jupyter.errors import RlamError  # lazy: only on this usage error

        raise RlamError("--token is for --http; over stdio the client owns the process")
    for item in args.actions:
        import_actions(item)
    session = Session.create(args.store, policy=Policy.approving(args.approve))
    check_tool_names(session.engine.registry, args.allow_python)
    dispatcher = Dispatcher(
        ActionCalls(session, run_name=args.run, seed=args.seed, allow_python=args.allow_python)
    )
    with runs_end_on_sigterm():
        if args.http is None:
            anyio.run(serve_stdio, dispatcher, args.approval_timeout)
        else:
            anyio.run(
                http.serve_http, dispatcher, args.approval_timeout, endpoint, token, generated
            )
    return EXIT_OK


@contextlib.contextmanager
def runs_end_on_sigterm() -> Iterator[None]:
    """SIGTERM ends the session's runs before it ends the process.

    Left to its default, SIGTERM kills the server with its run open (readers then call it
    interrupted, its writer dead), and it is what stops a server: an MCP stdio client
    sends it when the server outlasts its grace after stdin closed (a slow call in
    flight), and uvicorn re-raises the SIGTERM it shut down on after its graceful
    shutdown, before the serving function can end the run. Here SIGTERM interrupts as
    Ctrl-C does — the engine records a step in flight ``interrupted``, the servers close
    the session — and then, the trace complete, kills the process as it would have (the
    SDK's stdin reader, blocked in a thread no signal wakes, would hold up a normal exit).
    """
    terminated = False

    def interrupt(_signum: int, _frame: FrameType | None) -> None:
        nonlocal terminated
        terminated = True
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if terminated else previous)
        if terminated:
            signal.raise_signal(signal.SIGTERM)
