"""A real LLM in the stand-in's seat, through any OpenAI-compatible endpoint."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any, cast

from rlam_jupyter.evaluation.workflow import Feedback, Intent


class OpenAIStandIn:
    """A real LLM (any OpenAI-compatible endpoint) in the stand-in's seat.

    The LLM sees the catalogue's tool schemas and the task, and picks one tool call per
    turn; the harness maps the call to an :class:`Intent`. Configure with
    ``RLAM_EVAL_BASE_URL``, ``RLAM_EVAL_MODEL`` and ``OPENAI_API_KEY``.
    """

    TASK = (
        "Analyse the breast_cancer dataset: load it, describe it, split it (target column "
        "'target'), scale the features, train a logistic regression (C={C}) and evaluate it. "
        "Call exactly one tool per turn; use artifact names data, summary, X_train, X_test, "
        "y_train, y_test, X_train_s, X_test_s, model, metrics. Reply DONE when finished."
    )

    def __init__(self, plan: Sequence[Intent]) -> None:
        from openai import OpenAI

        from rlam_jupyter.actions import registry

        self._client = OpenAI(
            base_url=os.environ.get("RLAM_EVAL_BASE_URL"),
            api_key=os.environ.get("OPENAI_API_KEY", "not-needed"),
        )
        self._model = os.environ.get("RLAM_EVAL_MODEL", "gpt-4o-mini")
        wanted = {i.action for i in plan}
        self._tools = [t for t in registry().tools() if t["function"]["name"] in wanted]
        c = next((i.params.get("C") for i in plan if i.action == "train_model"), 1.0)
        self._messages: list[dict[str, Any]] = [{"role": "user", "content": self.TASK.format(C=c)}]
        self._targets = {i.action: i.targets for i in plan}
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
        self._turns += 1
        if self._turns > 20:
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
        call = calls[0]
        self._pending = call.id
        self._messages.append(
            {
                "role": "assistant",
                "content": message.content,
                "tool_calls": [
                    {
                        "id": call.id,
                        "type": "function",
                        "function": {
                            "name": call.function.name,  # type: ignore[union-attr]
                            "arguments": call.function.arguments,  # type: ignore[union-attr]
                        },
                    }
                ],
            }
        )
        name = call.function.name  # type: ignore[union-attr]
        arguments = json.loads(call.function.arguments or "{}")  # type: ignore[union-attr]
        from rlam_jupyter.actions import registry

        spec = registry()[name]
        inputs = {k: v for k, v in arguments.items() if k in spec.inputs}
        params = {k: v for k, v in arguments.items() if k not in spec.inputs}
        return Intent(name, params, inputs, self._targets.get(name, spec.outputs))
