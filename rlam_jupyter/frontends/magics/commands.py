"""The ``%rlam NAME ...`` commands beyond the core ones, and the one way to declare them.

A command is a function declared with :func:`command`, in the module
:data:`COMMAND_MODULES` names for it: that module is imported on first use, so
``%load_ext rlam_jupyter`` stays cheap. Its options are parsed by IPython's
``magic_arguments`` (``MagicArgumentParser``, which raises ``UsageError`` on bad input).
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable, Iterable
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics
from IPython.core.magic_arguments import argument, kwds, magic_arguments

from rlam_jupyter.engine.session import Session
from rlam_jupyter.frontends.options import Option

CommandHandler = Callable[[Magics, Session, list[str], "str | None"], Any]
"""``handler(magics, session, argv, cell_body_or_None)``: what the dispatcher calls."""
Command = Callable[[Magics, Session, Any, "str | None"], Any]
"""``command(magics, session, options, cell_body_or_None)``: what a module declares."""

COMMAND_MODULES = {
    "replay": "rlam_jupyter.frontends.magics.replay",
    "fork": "rlam_jupyter.frontends.magics.replay",
    "diff": "rlam_jupyter.frontends.magics.replay",
    "export": "rlam_jupyter.frontends.magics.bundle",
    "import": "rlam_jupyter.frontends.magics.bundle",
    "audit": "rlam_jupyter.frontends.magics.audit",
    "compact": "rlam_jupyter.frontends.magics.compact",
    "browse": "rlam_jupyter.frontends.magics.browse",
    "agent": "rlam_jupyter.frontends.magics.agent",
    "python": "rlam_jupyter.frontends.magics.python",
    "mcp": "rlam_jupyter.frontends.magics.mcp",
}
"""Where each command lives; ``agent`` and ``python`` are cell commands too."""

_HANDLERS: dict[str, CommandHandler] = {}
_CELL_COMMANDS: set[str] = set()


def command(
    name: str, description: str, options: Iterable[Option] = (), *, cell: bool = False
) -> Callable[[Command], Command]:
    """Declare ``%rlam NAME ...`` (``cell=True``: also ``%%rlam NAME``) taking ``options``;
    the function receives them parsed (``-h`` prints the help and never calls it)."""

    def decorator(func: Command) -> Command:
        prog = f"{'%%' if cell else '%'}rlam {name}"
        declared: Command = magic_arguments(prog)(
            kwds(add_help=True, description=description, formatter_class=argparse.HelpFormatter)(
                magic_options(options)(func)
            )
        )

        def handler(magics: Magics, session: Session, argv: list[str], body: str | None) -> Any:
            parsed = parse(declared, argv)
            return None if parsed is None else func(magics, session, parsed, body)

        _HANDLERS[name] = handler
        if cell:
            _CELL_COMMANDS.add(name)
        return declared

    return decorator


def handler_of(name: str) -> CommandHandler | None:
    """The handler of a command, importing its module on first use (None: not a command)."""
    module = COMMAND_MODULES.get(name)
    if name not in _HANDLERS and module is not None:
        importlib.import_module(module)
    return _HANDLERS.get(name)


def is_command(name: str) -> bool:
    return name in COMMAND_MODULES or name in _HANDLERS


def takes_cell(name: str) -> bool:
    return name in _CELL_COMMANDS


def parse(handler: Any, argv: list[str]) -> Any:
    """``argv`` parsed by the handler's ``@magic_arguments`` parser; None after ``-h``
    printed the help. Errors name the command and show its usage."""
    parser = handler.parser
    try:
        return parser.parse_args(argv)
    except UsageError as exc:
        usage = " ".join(parser.format_usage().removeprefix("usage:").split())
        raise UsageError(f"{parser.prog}: {exc}\nusage: {usage}") from None
    except SystemExit:  # -h / --help: argparse printed the help and wants to exit
        return None


def magic_options(options: Iterable[Option]) -> Callable[[Any], Any]:
    """Apply ``options`` as IPython ``@argument`` decorators, in the order given."""
    decorators = [argument(*flags, **keywords) for flags, keywords in options]

    def apply(func: Any) -> Any:
        for decorate in reversed(decorators):
            func = decorate(func)
        return func

    return apply
