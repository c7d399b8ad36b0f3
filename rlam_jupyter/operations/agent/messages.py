"""What the model reads: the rules it works by, the opening of its conversation, and
the answer to each tool call (the names bound with a preview, or the precise error).
"""

from __future__ import annotations

from typing import Any

from rlam_jupyter.actions.proposal import Proposal
from rlam_jupyter.engine import Run
from rlam_jupyter.engine.trace import StepResult
from rlam_jupyter.values.preview import preview

SYSTEM_PROMPT = """You carry out a data analysis by calling tools. Each tool is a \
registered analysis action. Its parameters are literal JSON values; its inputs are the \
names (strings) of artifacts produced by earlier calls. Name the outputs of a call with \
the `_outputs` argument (a list of names) and pass those names to later calls. Call one \
tool at a time. Each call is checked before it runs: if it is refused or fails you get \
the precise error; fix the call and try again. When the task is done, answer with a short \
summary and no tool call."""


def opening_messages(run: Run, task: str) -> list[dict[str, Any]]:
    """The conversation an agent starts from: the rules, the artifacts it can use, the task."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM_PROMPT}]
    if run.bindings:
        names = ", ".join(f"{n} ({b.kind})" for n, b in sorted(run.bindings.items())[:50])
        messages.append(
            {"role": "system", "content": f"Artifacts already available in this run: {names}."}
        )
    messages.append({"role": "user", "content": task.strip()})
    return messages


def tool_answer(result: StepResult, proposal: Proposal | None = None) -> str:
    """What the model reads back: the names bound (with a preview), or the precise error."""
    if result.ok:
        shown = []
        targets = proposal.targets if proposal is not None else ()
        names = list(targets) + list(result.values)[len(targets) :]
        for name, value in zip(names, result.values.values(), strict=False):
            text = preview(value, limit=300).replace("\n", " ")
            shown.append(f"{name} = {text}")
        cached = " (from cache)" if result.status == "cached" else ""
        outputs = "; ".join(shown) or "no outputs"
        return f"ok: step {result.seq} {result.action} {result.status}{cached}. {outputs}"
    error = result.error
    detail = f"{error.type}: {error.message}" if error else "no detail"
    if result.status == "rejected":
        if error is not None and error.message.startswith("not run:"):
            return error.message
        return f"rejected: {error.message if error else detail}"
    return f"failed: step {result.seq} {result.action} raised {detail}"
