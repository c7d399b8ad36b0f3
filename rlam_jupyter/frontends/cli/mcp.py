"""``rlam mcp [--actions MODULE_OR_FILE ...] [--seed N] [--run NAME]``: the action
registry as an MCP server over stdio, for the agents that start one as a subprocess
(Claude Code, Cursor, Codex CLI, Goose, ...). Every tool call is a recorded step."""

from __future__ import annotations

import argparse
from typing import Any

from rlam_jupyter.frontends.cli.output import EXIT_OK


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "mcp",
        parents=[common],
        help="serve the action registry over MCP (stdio): each tool call a recorded step",
        description=__doc__,
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
    parser.set_defaults(handler=serve)


def serve(args: argparse.Namespace) -> int:
    """Import the actions, open the store's session and serve until stdin closes."""
    import anyio  # lazy: the MCP SDK and its server stack, for rlam --help start-up

    from rlam_jupyter.engine.session import Session  # lazy: the engine, for start-up
    from rlam_jupyter.frontends.mcp.calls import ActionCalls  # lazy: the MCP SDK, for start-up
    from rlam_jupyter.frontends.mcp.server import serve_stdio  # lazy: the MCP SDK, for start-up
    from rlam_jupyter.operations.bundle.reexecute import import_actions  # lazy: the engine

    for item in args.actions:
        import_actions(item)
    session = Session.create(args.store)
    calls = ActionCalls(session, run_name=args.run, seed=args.seed)
    anyio.run(serve_stdio, session, calls)
    return EXIT_OK
