"""The ``python`` escape hatch as an MCP tool, offered only by ``rlam mcp --allow-python``.

A call is the ``%%rlam python`` cell of :mod:`frontends.magics.python` sent as data: the
code (``source``, its only parameter, so its hash is the step's identity), the artifacts
it reads (``inputs``: names, or variable → artifact name), the names it defines
(``_outputs``, bound as the step's outputs) and whether it is ``pure``. Its spec is the
magic's (:func:`python_spec`), so replay, fork and a bundle's re-execution rebuild it
from the trace (:func:`spec_for_recorded_cell`). Every call needs a person's approval,
whatever ``--approve`` says: the spec requires it, so the engine's gate asks. The code
is compiled (never run) before the approval, so a syntax error is refused at once.
"""

from __future__ import annotations

import keyword
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from mcp_types import Tool, ToolAnnotations

from rlam_jupyter.actions.proposal import MAX_SOURCE_CHARS, Proposal, ProposalRejected
from rlam_jupyter.actions.python_cell import ACTION_NAME, python_spec
from rlam_jupyter.actions.registry import ActionSpec
from rlam_jupyter.operations.agent.tools import OUTPUTS_ARG

FLAG = "--allow-python"
SIGNATURE = "python(source, inputs?, _outputs?, pure?)"
NAME = r"^[A-Za-z][A-Za-z0-9_]*$"
RESERVED = frozenset({"source"})
"""Variable names the code cannot read an input as (the cell's own parameter)."""


def python_tool() -> Tool:
    """The tool's definition: code, inputs, outputs, purity; never read-only."""
    schema = {
        "type": "object",
        "properties": {
            "source": {"type": "string", "description": "the Python code to run"},
            "inputs": {
                "description": "artifacts the code reads: a list of artifact names (each "
                "read under its own name), or an object {variable in the code: artifact name}",
                "anyOf": [
                    {"type": "array", "items": {"type": "string", "pattern": NAME}},
                    {"type": "object", "additionalProperties": {"type": "string"}},
                ],
            },
            OUTPUTS_ARG: {
                "type": "array",
                "items": {"type": "string", "pattern": NAME},
                "description": "names the code defines, recorded as the step's outputs and "
                "bound for later calls",
            },
            "pure": {
                "type": "boolean",
                "default": False,
                "description": "the code is deterministic: cached and re-executed on replay "
                "(default: external, its outputs restored, never re-run)",
            },
        },
        "required": ["source"],
        "additionalProperties": False,
    }
    return Tool(
        name=ACTION_NAME,
        description="Run a Python code cell as one recorded step (the escape hatch, for what "
        "no action does). The code sees only its inputs; every call waits for the user's "
        "approval, who sees the code. Prefer an action where one fits.\n\n"
        f"Signature: {SIGNATURE}",
        input_schema=schema,
        annotations=ToolAnnotations(
            title="python (reviewed code cell)",
            read_only_hint=False,
            destructive_hint=True,
            idempotent_hint=False,
            open_world_hint=True,
        ),
    )


def not_offered(tool: str) -> ProposalRejected:
    """The refusal of a ``python`` call on a server started without the flag."""
    return ProposalRejected(
        f"unknown tool {tool!r}",
        hint="The python escape hatch is not offered to agents unless the server is "
        f"started with rlam mcp {FLAG} (then every call waits for the user's approval).",
        action=tool,
    )


def python_call(arguments: Mapping[str, Any] | None) -> tuple[Proposal, ActionSpec]:
    """The proposal of one call and the spec it runs with (approval required);
    :class:`ProposalRejected` naming the argument that is wrong."""
    given = dict(arguments or {})
    unknown = sorted(set(given) - {"source", "inputs", OUTPUTS_ARG, "pure"})
    if unknown:
        raise _rejected(f"unknown argument {unknown[0][:60]!r}")
    source = given.get("source")
    if not isinstance(source, str) or not source.strip():
        raise _rejected("source must be the code to run, as a non-empty string")
    if len(source) > MAX_SOURCE_CHARS:
        raise _rejected(f"source has {len(source)} characters, more than {MAX_SOURCE_CHARS}")
    try:
        # compiled, never run: a syntax error is refused before anyone is asked
        compile(source, "<python tool>", "exec", dont_inherit=True)
    except SyntaxError as exc:
        raise ProposalRejected(
            f"the code does not compile: {exc.msg}",
            line=exc.lineno,
            col=exc.offset,
            action=ACTION_NAME,
        ) from None
    inputs = _inputs(given.get("inputs"))
    outputs = _outputs(given.get(OUTPUTS_ARG))
    pure = given.get("pure", False)
    if not isinstance(pure, bool):
        raise _rejected(f"pure must be true or false, not {pure!r}")
    spec = replace(python_spec(source, list(inputs), outputs, pure), requires_approval=True)
    proposal = Proposal(
        ACTION_NAME,
        {"source": source},
        inputs,
        tuple(outputs),
        origin="mcp",
        source_text=_as_cell(source, inputs, outputs, pure),
    )
    return proposal, spec


def _inputs(value: Any) -> dict[str, str]:
    """Variable in the code → artifact name."""
    if value is None:
        return {}
    if isinstance(value, list) and all(isinstance(name, str) for name in value):
        pairs = {name: name for name in value}
    elif isinstance(value, dict) and all(isinstance(name, str) for name in value.values()):
        pairs = dict(value)
    else:
        raise _rejected("inputs must be a list of artifact names or an object {variable: name}")
    for variable, artifact in pairs.items():
        if not _usable(variable) or variable in RESERVED:
            raise _rejected(f"inputs: {variable[:60]!r} cannot be a variable of the code")
        if not artifact.isidentifier():
            raise _rejected(f"inputs: {artifact[:60]!r} is not the name of an artifact")
    return pairs


def _outputs(value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(name, str) for name in value):
        raise _rejected(f"{OUTPUTS_ARG} must be a list of the names the code defines")
    bad = [name for name in value if not _usable(name) or name.startswith("_")]
    if bad:
        raise _rejected(f"{OUTPUTS_ARG}: {bad[0][:60]!r} is not a usable name")
    if len(set(value)) != len(value):
        raise _rejected(f"{OUTPUTS_ARG} names an output twice")
    return list(value)


def _usable(name: str) -> bool:
    return name.isidentifier() and not keyword.iskeyword(name)


def _as_cell(source: str, inputs: Mapping[str, str], outputs: list[str], pure: bool) -> str:
    """The call in the shape of a ``%%rlam python`` cell (a renamed input shows as
    ``variable=artifact``): what the approval form shows and the step records."""
    read = [v if v == a else f"{v}={a}" for v, a in inputs.items()]
    header = "%%rlam python"
    header += f" --inputs {' '.join(read)}" if read else ""
    header += f" --outputs {' '.join(outputs)}" if outputs else ""
    header += " --pure" if pure else ""
    return f"{header}\n{source}"


def _rejected(reason: str) -> ProposalRejected:
    return ProposalRejected(f"python: {reason}", hint=f"Expected: {SIGNATURE}", action=ACTION_NAME)
