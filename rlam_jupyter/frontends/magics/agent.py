"""``%%rlam agent``: an agent proposes the steps of a new run; the engine decides.

The cell body is the task in natural language (``--provider openai``) or the script
(``--provider scripted``, the default: JSON proposals or ``%%rlam`` statements). The
run's outputs land in the notebook namespace like a hand-written cell's. A run that
does not succeed raises after its table is shown, with the reason.
"""

from __future__ import annotations

import os
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics
from IPython.display import display

from rlam_jupyter.engine.session import Session
from rlam_jupyter.frontends.approval import ApprovalPanel, ConsoleApprover, interactive_frontend
from rlam_jupyter.frontends.kernel import cell_info
from rlam_jupyter.frontends.magics.cell import StepFailedError
from rlam_jupyter.frontends.magics.commands import command
from rlam_jupyter.frontends.options import Option
from rlam_jupyter.operations.agent.fork import fork_agent
from rlam_jupyter.operations.agent.loop import AgentLimits, AgentLoop, AgentOutcome, PendingApproval
from rlam_jupyter.operations.agent.openai_provider import OpenAIProposer
from rlam_jupyter.operations.agent.proposers import Proposer
from rlam_jupyter.operations.agent.scripted import ScriptedProposer
from rlam_jupyter.policy import Decision

SCRIPTED_TASK = "Carry out the scripted analysis steps."


AGENT_OPTIONS: list[Option] = [
    (["--provider"], {"choices": ("scripted", "openai"), "default": "scripted"}),
    (["--model"], {"default": None, "help": "model name (openai; default $RLAM_AGENT_MODEL)"}),
    (
        ["--base-url"],
        {"default": None, "help": "OpenAI-compatible endpoint (default $OPENAI_BASE_URL)"},
    ),
    (["--max-steps"], {"type": int, "default": 20, "help": "proposals allowed in the run"}),
    (
        ["--max-retries"],
        {"type": int, "default": 2, "help": "retries in a row answering one failure"},
    ),
    (["--max-run-retries"], {"type": int, "default": 6, "help": "retries in the whole run"}),
    (["--approve"], {"action": "store_true", "help": "ask a person before each step"}),
    (["--no-content"], {"action": "store_true", "help": "record hashes of prompts/responses only"}),
    (["--timeout"], {"type": float, "default": 120.0, "help": "seconds per LLM request"}),
    (["--run"], {"default": None, "help": "name of the new run"}),
    (
        ["--fork"],
        {"default": None, "metavar": "RUN", "help": "fork this agent run and re-ask from --at"},
    ),
    (["--at"], {"type": int, "default": None, "metavar": "SEQ", "help": "step to fork at"}),
    (["--seed"], {"type": int, "default": 0, "help": "run seed (also sent to the model)"}),
    (["-q", "--quiet"], {"action": "store_true", "help": "do not display the steps table"}),
]


def make_proposer(args: Any, body: str, session: Session) -> Proposer:
    if args.provider == "scripted":
        return ScriptedProposer.from_text(body, session.engine.registry)
    return OpenAIProposer(args.model, args.base_url, timeout_s=args.timeout)


@command(
    "agent",
    "Let an agent propose the steps of a new run; each proposal is "
    "schema-checked, recorded and executed by the engine.",
    AGENT_OPTIONS,
    cell=True,
)
def agent_cell(magics: Magics, session: Session, args: Any, cell: str | None) -> Any:
    """``%%rlam agent [options]`` with the task (or script) as the cell body."""
    if cell is None or not cell.strip():
        raise UsageError(
            "`%%rlam agent` is a cell command: put the task (or, with the scripted "
            "provider, the steps) in the cell body. See `%rlam agent -h`."
        )
    try:
        limits = AgentLimits(args.max_steps, args.max_retries, args.max_run_retries)
    except ValueError as exc:
        raise UsageError(f"%%rlam agent: {exc}") from None
    proposer = make_proposer(args, cell, session)
    if args.fork is not None:
        return _fork(session, args, proposer, limits)
    shell = magics.shell
    name = args.run or _agent_run_name(session)
    run = session.start(name, args.seed)
    assert shell is not None  # a magic always runs in a shell
    info = cell_info(shell, cell)
    widget = interactive_frontend(shell)
    loop = AgentLoop(
        session.engine,
        run,
        proposer,
        task=SCRIPTED_TASK if args.provider == "scripted" else cell,
        limits=limits,
        record_content=not args.no_content,
        approve=args.approve,
        approver=None if widget else ConsoleApprover(),
        approval="widget" if widget else "sync",
        cell=info,
        on_result=lambda proposal, result: session.bind(run, proposal),
    )
    outcome = loop.run()
    if isinstance(outcome, PendingApproval):
        _ask_in_notebook(loop, outcome, quiet=args.quiet)
        return None
    return _finish(outcome, quiet=args.quiet, raise_on_failure=True)


def _fork(session: Session, args: Any, proposer: Proposer, limits: AgentLimits) -> Any:
    """``--fork RUN --at SEQ``: share the steps before SEQ, re-ask the agent from there."""
    if args.at is None:
        raise UsageError("%%rlam agent --fork RUN needs --at SEQ (the step to re-ask from)")
    outcome: AgentOutcome = fork_agent(
        args.fork,
        args.at,
        proposer,
        engine=session.engine,
        name=args.run,
        limits=limits,
        record_content=not args.no_content,
        approve=args.approve,
        approver=ConsoleApprover(),
        notebook=session.notebook,
    )
    run = session.engine.runs[outcome.run_id]
    session.runs[run.name] = run
    for name, binding in run.bindings.items():
        if binding.loaded or binding.object_path is not None:
            session.namespace[name] = session.engine.value(binding)
    return _finish(outcome, quiet=args.quiet, raise_on_failure=True)


def _agent_run_name(session: Session) -> str:
    base = os.path.splitext(os.path.basename(session.notebook or "session"))[0]
    taken = set(session.runs)
    n = 1
    while f"{base}-agent-{n}" in taken:
        n += 1
    return f"{base}-agent-{n}"


def _ask_in_notebook(loop: AgentLoop, pending: PendingApproval, *, quiet: bool) -> None:
    """Show the approval panel; a click resumes the loop, whose output goes under it."""

    def decided(decision: Decision) -> None:
        nxt = loop.resume(decision)
        if isinstance(nxt, PendingApproval):
            _ask_in_notebook(loop, nxt, quiet=quiet)
        else:
            _finish(nxt, quiet=quiet, raise_on_failure=False)

    panel = ApprovalPanel(
        pending.proposal,
        decided,
        title=f"run {loop.run_.name}, step {pending.step_seq}: approve?",
    )
    display(panel)


def _finish(outcome: AgentOutcome, *, quiet: bool, raise_on_failure: bool) -> Any:
    if not quiet:
        display(outcome)  # its output metadata names the run (RunsOutput)
    if outcome.ok:
        return None
    message = (
        f"agent run {outcome.run_name} {outcome.status}: {outcome.reason}. "
        f"Everything it did is recorded in run {outcome.run_id}."
    )
    if raise_on_failure:
        raise StepFailedError(message)
    print(message)
    return None
