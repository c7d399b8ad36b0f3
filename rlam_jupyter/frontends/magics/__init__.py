"""``%%rlam`` and ``%rlam``: the notebook entry points.

The cell body is parsed, never executed as Python; each statement is one recorded
step. Errors are short and actionable; ``-v`` shows an action's full traceback.
Further commands (``%rlam replay``, ``%%rlam agent``, ...) live one module each
beside this one (see :mod:`.commands`).
"""

from __future__ import annotations

import shlex
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from rlam_jupyter.actions.proposal import ProposalRejected
from rlam_jupyter.engine.session import Session
from rlam_jupyter.errors import RlamError
from rlam_jupyter.frontends.kernel import cell_info, session_of
from rlam_jupyter.frontends.magics import commands
from rlam_jupyter.frontends.magics.cell import StepFailedError, finish_cell
from rlam_jupyter.frontends.magics.runs import config, status
from rlam_jupyter.operations.cells import run_cell

LINE_COMMANDS = ("status", "new", "end", "actions", "config")


@magics_class
class RlamMagics(Magics):
    """R-LAM magics: schema-checked, deterministic, recorded analysis steps."""

    @magic_arguments()
    @argument(
        "command",
        nargs="*",
        help="line-magic command: status | new NAME | end | actions | "
        "config KEY=VALUE (more: replay, fork, diff, export, audit)",
    )
    @argument(
        "--run",
        "-r",
        default=None,
        help="name of the run this cell belongs to "
        "(a new run is started when no open run has this name)",
    )
    @argument(
        "--seed",
        "-s",
        type=int,
        default=None,
        help="run seed; every step's seed is derived from it and the step's position",
    )
    @argument("--dry-run", action="store_true", help="check and record the proposals, run nothing")
    @argument(
        "--no-cache", action="store_true", help="execute even when an identical step is cached"
    )
    @argument(
        "--recover",
        default=None,
        metavar="STEP",
        help="this cell answers the given failed or refused step of the run (its number, "
        "e.g. 6, or its step id); recorded as a `recovers` edge",
    )
    @argument(
        "-v", "--verbose", action="store_true", help="show an action's full traceback on failure"
    )
    @argument("--quiet", "-q", action="store_true", help="do not display the steps table")
    @argument(
        "--executor",
        default=None,
        help="where this cell's steps run: local (default) or dask://HOST:PORT "
        "(set it for every cell with `%%rlam config executor=...`)",
    )
    @line_cell_magic
    def rlam(self, line: str, cell: str | None = None) -> Any:
        """Run schema-checked, recorded steps (cell) or manage runs (line).

        Cell: each statement `name = action(param=literal, input=name)` is one step.
        Line: `%rlam status`, `%rlam new NAME --seed N`, `%rlam end [RUN ...]`, `%rlam actions`.
        """
        if self.shell is None:
            raise UsageError("rlam magics need an IPython shell")
        session = session_of(self.shell)
        try:
            return self._dispatch(session, line, cell)
        except ProposalRejected as exc:
            raise UsageError(exc.message) from None
        except StepFailedError:
            raise
        except RlamError as exc:
            raise UsageError(str(exc)) from None

    def _dispatch(self, session: Session, line: str, cell: str | None) -> Any:
        words = shlex.split(line)
        if words and commands.is_command(words[0]):
            # Further commands parse their own options (e.g. `%%rlam agent --model ...`).
            handler = commands.handler_of(words[0])
            if handler is None:
                raise UsageError(f"`%rlam {words[0]}` is not available in this installation")
            if cell is not None and not commands.takes_cell(words[0]):
                raise UsageError(f"`{words[0]}` is a line command: use `%rlam {line}`")
            return handler(self, session, words[1:], cell)
        args = parse_argstring(self.rlam, line)
        if cell is None:
            return self._line(session, args)
        return self._cell(session, args, cell)

    def _cell(self, session: Session, args: Any, body: str) -> Any:
        if args.command:
            raise UsageError(
                f"`%%rlam {' '.join(args.command)}`: a `%%rlam` cell takes options only "
                "(or `%%rlam agent ...`); commands like status/new/end belong on a `%rlam` line."
            )
        assert self.shell is not None
        run = session.run_for(args.run, args.seed)
        outcome = run_cell(
            session,
            run,
            body,
            cell_info(self.shell, body),
            executor=args.executor,
            use_cache=not args.no_cache,
            dry_run=args.dry_run,
            recovers=args.recover,
        )
        shown = finish_cell(
            run.name,
            outcome.results,
            quiet=args.quiet,
            verbose=args.verbose,
            failing=outcome.failing,
        )
        if outcome.executed:
            run.writer.raise_if_pending()  # values are bound; say the trace lacks records
        return shown

    def _line(self, session: Session, args: Any) -> Any:
        words = args.command
        if not words:
            raise UsageError(
                "`%rlam` needs a command: status, new, end, actions, config. See `%rlam?`."
            )
        command, rest = words[0], words[1:]
        if command == "status":
            return status(session)
        if command == "new":
            name = rest[0] if rest else None
            run = session.start(name, args.seed if args.seed is not None else 0)
            print(f"started run {run.name} ({run.run_id}), seed {run.seed}")
            return None
        if command == "end":
            return _end(session, rest)
        if command in ("actions", "registry"):
            return session.engine.registry
        if command == "config":
            return config(session, rest)
        known = ", ".join([*LINE_COMMANDS, *sorted(commands.COMMAND_MODULES)])
        raise UsageError(f"unknown %rlam command {command!r}; known commands: {known}")


def _end(session: Session, names: list[str]) -> None:
    targets: list[str | None] = [*names] or [None]
    for name in targets:
        target = session.runs.get(name) if name is not None else None
        if name is not None and target is None:
            open_runs = ", ".join(sorted(session.runs)) or "none"
            raise UsageError(f"no run {name!r} in this kernel (runs here: {open_runs})")
        ended = session.end(target)
        print("no open run" if ended is None else f"run {ended.name} ended: {ended.status}")


__all__ = ["RlamMagics", "StepFailedError", "finish_cell", "session_of"]
