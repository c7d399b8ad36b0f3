"""The mediation loop: the agent proposes, the engine decides, the trace records both.

One turn: send the conversation and the tools to the proposer (recorded in
``llm_calls`` before anything runs) → each tool call becomes a proposal → the same
schema check, policy, approval and engine as a hand-written cell (the step links to
its call by a ``proposed_by`` edge) → the result, or the precise error, goes back to
the model as the tool's answer. The next proposal after a failure is its recovery
(``recovers`` edge). Budgets bound everything: steps per run, retries per failure,
retries per run. A run ends ``succeeded``, ``failed`` or ``stopped (budget)``, with
the reason in :class:`AgentOutcome` — never silently.
"""

from __future__ import annotations

import dataclasses
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rlam_jupyter.actions.proposal import Proposal, ProposalRejected
from rlam_jupyter.engine import Engine, Run
from rlam_jupyter.engine.trace import CellInfo, StepResult
from rlam_jupyter.operations.agent.messages import opening_messages, tool_answer
from rlam_jupyter.operations.agent.outcome import (
    STOPPED,
    AgentLimits,
    AgentOutcome,
    PendingApproval,
)
from rlam_jupyter.operations.agent.proposers import Proposer, ProviderError
from rlam_jupyter.operations.agent.recording import CallOutcome, record_call
from rlam_jupyter.operations.agent.tools import Reply, ToolCall, agent_tools, to_proposal, unparsed
from rlam_jupyter.policy import Approver, Decision
from rlam_jupyter.store.journal import now_us


@dataclass
class _State:
    queue: deque[ToolCall] = field(default_factory=deque)
    call_id: str = ""
    failure: str | None = None
    """Step id of the latest failure not yet answered by a success."""
    consecutive: int = 0
    run_retries: int = 0
    steps: int = 0
    pending: tuple[ToolCall, Proposal] | None = None
    outcome: AgentOutcome | None = None


class AgentLoop:
    """Drives one agent run; :meth:`run` returns an outcome, or a pause for approval
    when ``approval="widget"`` (then :meth:`resume` continues)."""

    def __init__(
        self,
        engine: Engine,
        run: Run,
        proposer: Proposer,
        *,
        task: str | None = None,
        messages: Sequence[Mapping[str, Any]] | None = None,
        limits: AgentLimits | None = None,
        record_content: bool = True,
        approve: bool = False,
        approver: Approver | None = None,
        approval: str = "sync",
        cell: CellInfo | None = None,
        on_result: Callable[[Proposal, StepResult], None] | None = None,
        end_run: bool = True,
    ) -> None:
        if messages is None and task is None:
            raise ValueError("give the agent a task (or a recorded conversation to continue)")
        self.engine = engine
        self.run_ = run
        self.proposer = proposer
        self.limits = limits or AgentLimits()
        self.record_content = record_content
        self.approve = approve
        self.approver = approver
        self.approval = approval
        self.cell = cell
        self.on_result = on_result
        self.end_run = end_run
        self.tools = agent_tools(engine.registry)
        self.messages: list[dict[str, Any]] = (
            [dict(m) for m in messages]
            if messages is not None
            else opening_messages(run, task or "")
        )
        self.results: list[StepResult] = []
        self.call_ids: list[str] = []
        self.tokens = [0, 0]
        self.turn = 0
        self._s = _State()

    # ------------------------------------------------------------ driving

    def run(self) -> AgentOutcome | PendingApproval:
        """Propose and execute until the agent is done, a budget is spent, or a person
        must decide (widget approval)."""
        s = self._s
        while s.outcome is None:
            if not s.queue:
                if s.steps >= self.limits.max_steps:
                    return self._finish(
                        STOPPED,
                        f"the agent used its budget of {self.limits.max_steps} step(s) without "
                        "finishing; raise --max-steps or narrow the task",
                    )
                reply = self._ask()
                if reply is None:
                    break
                if not reply.tool_calls:
                    return self._finish_by_text(reply)
                s.queue.extend(reply.tool_calls)
            call = s.queue.popleft()
            paused = self._handle(call)
            if paused is not None:
                return paused
        assert s.outcome is not None
        return s.outcome

    def resume(self, decision: Decision) -> AgentOutcome | PendingApproval:
        """Continue after a person decided on the paused proposal."""
        s = self._s
        if s.pending is None:
            raise RuntimeError("the agent is not waiting for an approval")
        call, proposal = s.pending
        s.pending = None
        result = self._execute(proposal, lambda _checked: decision)
        self._after(call, result, proposal)
        return self.run()

    @property
    def outcome(self) -> AgentOutcome | None:
        return self._s.outcome

    # ------------------------------------------------------------ one call to the proposer

    def _ask(self) -> Reply | None:
        run = self.run_
        self.turn += 1
        call_id = f"{run.run_id}-llm{self.turn:04d}"
        request: dict[str, Any] = {
            "model": self.proposer.model,
            "messages": [dict(m) for m in self.messages],
            "tools": self.tools,
            "tool_choice": "auto",
            "temperature": 0,
            "seed": run.seed,
        }
        started = now_us()
        t0 = time.perf_counter()
        reply: Reply | None = None
        failure: BaseException | None = None
        try:
            reply = self.proposer.complete(request)
        except Exception as exc:  # recorded first, then reported (a bug is re-raised)
            failure = exc
        latency = (time.perf_counter() - t0) * 1e3
        kind = None
        if failure is not None:
            kind = failure.kind if isinstance(failure, ProviderError) else type(failure).__name__
        record_call(
            run,
            call_id,
            self.turn,
            provider=self.proposer.provider,
            base_url=self.proposer.base_url,
            model=self.proposer.model,
            request=request,
            outcome=CallOutcome(reply, kind, str(failure) if failure else None, latency, started),
            record_content=self.record_content,
        )
        self.call_ids.append(call_id)
        if failure is not None:
            error = failure if isinstance(failure, ProviderError) else None
            self._finish(
                "failed",
                f"the proposer failed at turn {self.turn}: {failure} (recorded as {call_id})",
                error,
            )
            if error is None:
                raise failure
            return None
        assert reply is not None
        self.tokens[0] += reply.input_tokens or 0
        self.tokens[1] += reply.output_tokens or 0
        self._s.call_id = call_id
        self.messages.append(reply.assistant_message())
        return reply

    # ------------------------------------------------------------ one tool call

    def _handle(self, call: ToolCall) -> PendingApproval | None:
        s = self._s
        s.steps += 1
        if s.steps > self.limits.max_steps:
            result = self.engine.reject(
                self.run_,
                unparsed(call),
                ProposalRejected(
                    f"not run: the run's budget of {self.limits.max_steps} step(s) is used up"
                ),
                self.cell,
                proposed_by=s.call_id,
            )
            self._after(call, result)
            return None
        try:
            proposal = to_proposal(call, self.engine.registry)
        except ProposalRejected as rejection:
            result = self.engine.reject(
                self.run_, unparsed(call), rejection, self.cell, proposed_by=s.call_id
            )
            self._after(call, result)
            return None
        spec = self.engine.registry[proposal.action]
        if self.approval == "widget" and (self.approve or spec.requires_approval):
            try:
                self.engine.precheck(self.run_, [proposal])
            except ProposalRejected:
                pass  # refused anyway: the engine records why, nobody needs to approve it
            else:
                s.pending = (call, proposal)
                return PendingApproval(proposal, self.run_.next_seq, s.call_id)
        self._after(call, self._execute(proposal, self.approver), proposal)
        return None

    def _execute(self, proposal: Proposal, approver: Approver | None) -> StepResult:
        engine = self.engine
        saved = (engine.policy, engine.approver)
        if self.approve:
            engine.policy = dataclasses.replace(engine.policy, require_approval=True)
        engine.approver = approver
        try:
            return engine.execute(
                self.run_,
                proposal,
                cell=self.cell,
                recovers=self._s.failure,
                proposed_by=self._s.call_id,
            )
        finally:
            engine.policy, engine.approver = saved

    def _after(self, call: ToolCall, result: StepResult, proposal: Proposal | None = None) -> None:
        s = self._s
        self.results.append(result)
        proposal = proposal or unparsed(call)
        if self.on_result is not None:
            self.on_result(proposal, result)
        self.messages.append(
            {"role": "tool", "tool_call_id": call.id, "content": tool_answer(result, proposal)}
        )
        if result.ok:
            s.failure, s.consecutive = None, 0
            return
        if result.error is not None and result.error.message.startswith("not run:"):
            return  # a consequence of an earlier refusal or of the budget, not a new failure
        was_retry = s.failure is not None
        s.failure = result.step_id
        what = f"step {result.seq} ({result.action}) {result.status}"
        if not was_retry:
            s.consecutive = 0
            if self.limits.max_retries == 0 or s.run_retries >= self.limits.max_run_retries:
                self._give_up(f"{what} and no retry is left (--max-retries)")
            return
        s.consecutive += 1
        s.run_retries += 1
        if s.consecutive >= self.limits.max_retries:
            self._give_up(
                f"{what} again after {s.consecutive} retr{'y' if s.consecutive == 1 else 'ies'} "
                f"(--max-retries {self.limits.max_retries})"
            )
        elif s.run_retries >= self.limits.max_run_retries:
            self._give_up(
                f"{what} and the run's retry budget ({self.limits.max_run_retries}) is used up"
            )

    def _give_up(self, reason: str) -> None:
        for call in list(self._s.queue):
            self._s.queue.popleft()
            result = self.engine.reject(
                self.run_,
                unparsed(call),
                ProposalRejected("not run: the agent run ended (retry budget used up)"),
                self.cell,
                proposed_by=self._s.call_id,
            )
            self.results.append(result)
            self.messages.append(
                {"role": "tool", "tool_call_id": call.id, "content": tool_answer(result)}
            )
        self._finish("failed", reason)

    # ------------------------------------------------------------ the end

    def _finish_by_text(self, reply: Reply) -> AgentOutcome:
        said = (reply.content or "").strip().replace("\n", " ")
        said = said if len(said) <= 160 else said[:159] + "…"
        if not self.results:
            return self._finish(
                "failed",
                f"the model answered without proposing any step ({said!r}); does the endpoint "
                "support tool calls for this model?",
            )
        if self._s.failure is not None or self.run_.unrecovered_failures:
            return self._finish("failed", f"the model stopped with a failure unanswered: {said!r}")
        return self._finish("succeeded", f"the model finished: {said!r}")

    def _finish(self, status: str, reason: str, error: ProviderError | None = None) -> AgentOutcome:
        s = self._s
        # Proposals already made in this turn but not reached are refused, not lost.
        while s.queue:
            call = s.queue.popleft()
            result = self.engine.reject(
                self.run_,
                unparsed(call),
                ProposalRejected(f"not run: the agent run ended ({status})"),
                self.cell,
                proposed_by=s.call_id,
            )
            self.results.append(result)
        if self.end_run and self.run_.status == "open":
            self.engine.end_run(self.run_, status)
        s.outcome = AgentOutcome(
            self.run_.run_id,
            self.run_.name,
            status,
            reason,
            list(self.results),
            list(self.call_ids),
            self.messages,
            error,
            (self.tokens[0], self.tokens[1]),
        )
        return s.outcome


__all__ = ["STOPPED", "AgentLimits", "AgentLoop", "AgentOutcome", "PendingApproval"]
