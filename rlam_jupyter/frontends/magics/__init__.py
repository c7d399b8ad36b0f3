"""``%%rlam`` and ``%rlam``: the notebook entry points.

The cell body is parsed, never executed as Python; each statement is one recorded
step. Errors are short and actionable; ``-v`` shows an action's full traceback.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from typing import Any

from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import display

from rlam_jupyter.actions.proposal import ProposalRejected, parse_cell
from rlam_jupyter.engine.session import Session
from rlam_jupyter.engine.trace import CellInfo, StepResult, StepsView
from rlam_jupyter.errors import RlamError
from rlam_jupyter.values.hashing import digest_bytes

_SESSION_KEY = "_rlam_session"


class StepFailedError(RlamError):
    """Raised at the end of a cell whose step failed or was rejected, after recording it.

    IPython shows only the message (``_render_traceback_``), not rlam's own frames.
    """

    def __init__(self, message: str, traceback: str = "", verbose: bool = False) -> None:
        super().__init__(message)
        self.action_traceback = traceback
        self.verbose = verbose

    def _render_traceback_(self) -> list[str]:
        lines = [f"\x1b[31mRlamStepError\x1b[0m: {self}"]
        if self.verbose and self.action_traceback:
            lines += ["", "Traceback of the action:", self.action_traceback.rstrip()]
        elif self.action_traceback:
            lines.append("(run the cell with `%%rlam -v` to see the action's traceback)")
        return lines


def session_of(shell: InteractiveShell) -> Session:
    """The kernel's rlam session, created on first use."""
    session = getattr(shell, _SESSION_KEY, None)
    if session is None:
        session = Session.create(namespace=shell.user_ns)
        setattr(shell, _SESSION_KEY, session)
        shell.events.register("pre_run_cell", _remember_cell(shell))
    return session


def close_session(shell: InteractiveShell) -> None:
    session = getattr(shell, _SESSION_KEY, None)
    if session is not None:
        session.close()
        setattr(shell, _SESSION_KEY, None)


def _remember_cell(shell: InteractiveShell) -> Any:
    def pre_run_cell(info: Any) -> None:
        shell._rlam_cell_id = getattr(info, "cell_id", None)  # type: ignore[attr-defined]

    return pre_run_cell


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
        if words and (words[0] in _COMMAND_MODULES or words[0] in _EXTRA_COMMANDS):
            # Further commands parse their own options (e.g. `%%rlam agent --model ...`).
            handler = command_handler(words[0])
            if handler is None:
                raise UsageError(f"`%rlam {words[0]}` is not available in this installation")
            if cell is not None and not getattr(handler, "cell", False):
                raise UsageError(f"`{words[0]}` is a line command: use `%rlam {line}`")
            return handler(self, session, words[1:], cell)
        args = parse_argstring(self.rlam, line)
        if cell is None:
            return self._line(session, args, line)
        return self._cell(session, args, cell)

    # ------------------------------------------------------------ cell

    def _cell(self, session: Session, args: Any, body: str) -> Any:
        if args.command:
            raise UsageError(
                f"`%%rlam {' '.join(args.command)}`: a `%%rlam` cell takes options only "
                "(or `%%rlam agent ...`); commands like status/new/end belong on a `%rlam` line."
            )
        run = session.run_for(args.run, args.seed)
        cell = CellInfo(
            cell_id=getattr(self.shell, "_rlam_cell_id", None),
            execution_count=getattr(self.shell, "execution_count", None),
            source_hash=digest_bytes("cell", body.encode()),
        )
        registry = session.engine.registry
        try:
            proposals = parse_cell(body, registry)
        except ProposalRejected as rejection:
            from rlam_jupyter.actions.proposal import Proposal

            source = body.splitlines()[rejection.line - 1] if rejection.line else body[:200]
            unparsed = Proposal(
                rejection.action or "<unparsed>",
                source_text=source.strip(),
                line=rejection.line,
                col=rejection.col,
            )
            result = session.engine.reject(run, unparsed, rejection, cell)
            return self._finish(run.name, [result], args)
        try:
            session.engine.precheck(run, proposals)
        except ProposalRejected as rejection:
            results = []
            for proposal in proposals:
                reason = (
                    rejection
                    if proposal.line == rejection.line
                    else ProposalRejected(
                        f"not run: line {rejection.line} of this cell was rejected",
                        line=proposal.line,
                        col=proposal.col,
                        action=proposal.action,
                    )
                )
                results.append(session.engine.reject(run, proposal, reason, cell))
            return self._finish(run.name, results, args, failing=rejection.message)
        from rlam_jupyter.engine.cell_plan import running_on

        # the executor may start independent steps ahead; recording stays in order
        ahead = [] if args.dry_run else proposals
        with running_on(session.engine, args.executor, run, ahead, not args.no_cache):
            results = session.execute(
                run,
                proposals,
                cell=cell,
                use_cache=not args.no_cache,
                dry_run=args.dry_run,
                recovers=args.recover,
            )
        shown = self._finish(run.name, results, args)
        run.writer.raise_if_pending()  # values are bound; say the trace lacks records
        return shown

    def _finish(
        self, run_name: str, results: list[StepResult], args: Any, failing: str | None = None
    ) -> Any:
        return finish_cell(
            run_name, results, quiet=args.quiet, verbose=args.verbose, failing=failing
        )

    # ------------------------------------------------------------ line

    def _line(self, session: Session, args: Any, line: str) -> Any:
        words = args.command
        if not words:
            raise UsageError(
                "`%rlam` needs a command: status, new, end, actions, config. See `%rlam?`."
            )
        command, rest = words[0], words[1:]
        if command == "status":
            return _status(session)
        if command == "new":
            name = rest[0] if rest else None
            run = session.start(name, args.seed if args.seed is not None else 0)
            print(f"started run {run.name} ({run.run_id}), seed {run.seed}")
            return None
        if command == "end":
            names = rest or [None]
            for name in names:
                target = session.runs.get(name) if name is not None else None
                if name is not None and target is None:
                    open_runs = ", ".join(sorted(session.runs)) or "none"
                    raise UsageError(f"no run {name!r} in this kernel (runs here: {open_runs})")
                ended = session.end(target)
                print("no open run" if ended is None else f"run {ended.name} ended: {ended.status}")
            return None
        if command in ("actions", "registry"):
            return session.engine.registry
        if command == "config":
            return _config(session, rest)
        known = ", ".join(["status", "new", "end", "actions", "config", *sorted(_COMMAND_MODULES)])
        raise UsageError(f"unknown %rlam command {command!r}; known commands: {known}")


def finish_cell(
    run_name: str,
    results: list[StepResult],
    *,
    quiet: bool = False,
    verbose: bool = False,
    failing: str | None = None,
) -> Any:
    """Show a cell's steps, then raise :class:`StepFailedError` if one failed or was refused.

    Returns the value of a final bare call (``describe(data=d)``), like a notebook expression.
    """
    if not quiet:
        caption = f"run {run_name} · {len(results)} step(s)"
        display(StepsView(results, caption))  # its output metadata names the run and steps
    for result in results:
        for note in result.notes:
            print(f"note (step {result.seq}): {note}")
    bad = next((r for r in results if r.status in ("failed", "rejected")), None)
    if bad is not None and bad.error is not None:
        message = failing or bad.error.message
        if bad.status == "failed":
            message = (
                f"step {bad.seq} ({bad.action}) failed: {bad.error.type}: "
                f"{bad.error.message}. It is recorded (step {bad.seq} of run {run_name}); fix "
                f"the cause and re-run, or answer it with a recovery cell: "
                f"`%%rlam --recover {bad.seq}`."
            )
        else:
            message = f"rejected, nothing ran: {message}"
        raise StepFailedError(message, bad.error.traceback, verbose)
    last = results[-1] if results else None
    if last is not None and last.values and len(last.values) == 1 and not _has_targets(last):
        return next(iter(last.values.values()))
    return None


def _has_targets(result: StepResult) -> bool:
    return bool(result.source_text and "=" in result.source_text.split("(")[0])


def _status(session: Session) -> Any:
    from rlam_jupyter.store.remote import store_for_layout

    remote = store_for_layout(session.engine.layout)
    if remote is not None:  # an s3:// store: say what is still to upload, and retry now
        remote.uploader.wake()
        print(remote.status().summary())
    run = session.current
    if run is None:
        print(f"no open run; store: {session.engine.layout.root}")
        return None
    pending = len(run.writer.unwritten)
    if pending:
        still = run.writer.retry_unwritten()
        print(f"{pending - still} pending trace record(s) written; {still} still pending")
    caption = (
        f"run {run.name} ({run.run_id}) · seed {run.seed} · {len(run.results)} step(s) · "
        f"store {session.engine.layout.root}"
    )
    return StepsView(run.results, caption)


def _config(session: Session, items: list[str]) -> None:
    for item in items:
        key, _, value = item.partition("=")
        if key == "store":
            from rlam_jupyter.engine import Engine

            session.close()
            session.engine = Engine(value or None, policy=session.engine.policy)
            session.runs.clear()
            session.current = None
            print(f"trace store: {session.engine.layout.root}")
        elif key == "executor":
            from rlam_jupyter.engine.executors import executor_for

            session.engine.executor.close()
            session.engine.executor = executor_for(value)
            print(f"steps run on: {session.engine.executor.name}")
        else:
            raise UsageError(f"unknown config key {key!r}; known: store, executor")


_EXTRA_COMMANDS: dict[str, Any] = {}
"""Further ``%rlam`` commands (replay, fork, export, ...) register here from their modules."""

_COMMAND_MODULES = {
    "replay": "rlam_jupyter.operations.replay",
    "fork": "rlam_jupyter.operations.replay",
    "diff": "rlam_jupyter.operations.replay",
    "export": "rlam_jupyter.operations.bundle",
    "import": "rlam_jupyter.operations.bundle",
    "audit": "rlam_jupyter.operations.audit",
    "compact": "rlam_jupyter.store.compaction",
    "browse": "rlam_jupyter.frontends.widget",
    "agent": "rlam_jupyter.operations.agent.magic",
    "python": "rlam_jupyter.frontends.escape_hatch",
}
"""Where each further command lives; imported on first use so ``%load_ext`` stays cheap.
A command's module calls :func:`register_command`; ``agent`` is a cell command too."""


def command_handler(name: str) -> Any:
    """The handler of a further ``%rlam`` / ``%%rlam`` command, importing its module lazily."""
    if name not in _EXTRA_COMMANDS and name in _COMMAND_MODULES:
        import importlib

        try:
            importlib.import_module(_COMMAND_MODULES[name])
        except ModuleNotFoundError as exc:
            if exc.name != _COMMAND_MODULES[name]:
                raise
    return _EXTRA_COMMANDS.get(name)


CommandHandler = Callable[[Magics, Session, list[str], "str | None"], Any]
"""``handler(magics, session, argv, cell_body_or_None)``; parses ``argv`` itself (argparse),
raises ``UsageError``/``RlamError`` with an actionable message on bad input."""


def register_command(
    name: str, *, cell: bool = False
) -> Callable[[CommandHandler], CommandHandler]:
    """Register a further ``%rlam NAME ...`` command (``cell=True``: also ``%%rlam NAME``)."""

    def decorator(func: CommandHandler) -> CommandHandler:
        func.cell = cell  # type: ignore[attr-defined]
        _EXTRA_COMMANDS[name] = func
        return func

    return decorator


__all__ = ["RlamMagics", "StepFailedError", "finish_cell", "register_command", "session_of"]
