"""A real LLM in the stand-in's seat, through any OpenAI-compatible endpoint.

The LLM is told the analysis to carry out (the plan's actions, parameters and artifact
names) and offered the catalogue's tool schemas; it answers with one tool call per turn,
which becomes an :class:`Intent`. Faults are injected by the harness, not hoped for:
the first time the LLM calls an action the experiment makes fail, the call's
parameters are replaced by the faulty ones, and the LLM has to recover from the error
it is shown. The naive mode renders the LLM's intents with its code templates, so with
a real LLM both agent modes still run the same decisions.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any, cast

from rlam_jupyter.actions.default_registry import registry
from rlam_jupyter.operations.evaluation.workflow import Feedback, Intent

MAX_TURNS = 20


def task_text(plan: Sequence[Intent]) -> str:
    """What the LLM is asked to do, written from the plan (faults left out)."""
    lines = [
        "Carry out this analysis with the tools, exactly one tool call per turn, in order.",
        "Pass inputs as the names of artifacts produced by earlier steps.",
    ]
    for number, intent in enumerate(plan, start=1):
        wanted = intent.fix or intent
        params = ", ".join(f"{k}={v!r}" for k, v in wanted.params.items())
        inputs = ", ".join(f"{k}={v}" for k, v in wanted.inputs.items())
        arguments = ", ".join(part for part in (inputs, params) if part)
        lines.append(f"{number}. {wanted.action}({arguments}) -> {', '.join(wanted.targets)}")
    lines.append("If a call fails, read the error and call the tool again, corrected.")
    lines.append("When every step has succeeded, answer DONE without a tool call.")
    return "\n".join(lines)


class OpenAIStandIn:
    """An LLM behind an OpenAI-compatible API, configured by ``RLAM_EVAL_BASE_URL``,
    ``RLAM_EVAL_MODEL`` (default ``gpt-4o-mini``) and ``OPENAI_API_KEY``."""

    def __init__(self, plan: Sequence[Intent]) -> None:
        from openai import OpenAI

        self._registry = registry()
        self._client = OpenAI(
            base_url=os.environ.get("RLAM_EVAL_BASE_URL"),
            api_key=os.environ.get("OPENAI_API_KEY", "not-needed"),
            max_retries=0,
        )
        self._model = os.environ.get("RLAM_EVAL_MODEL", "gpt-4o-mini")
        wanted = {i.action for i in plan}
        self._tools = [t for t in self._registry.tools() if t["function"]["name"] in wanted]
        self._messages: list[dict[str, Any]] = [{"role": "user", "content": task_text(plan)}]
        self._targets = {i.action: (i.fix or i).targets for i in plan}
        self._faults = {i.action: i for i in plan if i.fix is not None}
        self._pending: str | None = None
        self._turns = 0

    def next(self, feedback: Feedback | None) -> Intent | None:
        if self._pending is not None and feedback is not None:
            self._messages.append(
                {
                    "role": "tool",
                    "tool_call_id": self._pending,
                    "content": "ok" if feedback.ok else f"error: {feedback.error}",
                }
            )
            self._pending = None
        self._turns += 1
        if self._turns > MAX_TURNS:
            return None
        reply = self._client.chat.completions.create(
            model=self._model,
            messages=cast(Any, self._messages),
            tools=cast(Any, self._tools),
            temperature=0,
        )
        message = reply.choices[0].message
        calls = message.tool_calls or []
        if not calls:
            return None
        call: Any = calls[0]
        name, arguments = call.function.name, call.function.arguments or "{}"
        self._pending = call.id
        self._messages.append(
            {
                "role": "assistant",
                "content": message.content,
                "tool_calls": [
                    {
                        "id": call.id,
                        "type": "function",
                        "function": {"name": name, "arguments": arguments},
                    }
                ],
            }
        )
        return self._intent(name, json.loads(arguments))

    def _intent(self, name: str, arguments: dict[str, Any]) -> Intent:
        spec = self._registry.get(name)
        known_inputs = set(spec.inputs) if spec is not None else set()
        inputs = {k: str(v) for k, v in arguments.items() if k in known_inputs}
        params = {k: v for k, v in arguments.items() if k not in known_inputs}
        targets = self._targets.get(name, spec.outputs if spec is not None else ())
        intent = Intent(name, params, inputs, targets)
        fault = self._faults.pop(name, None)
        if fault is None or fault.fix is None:
            return intent
        injected = {k: v for k, v in fault.params.items() if fault.fix.params.get(k) != v}
        return Intent(name, {**params, **injected}, inputs, targets, fix=intent)
