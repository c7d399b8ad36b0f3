"""The run tools: ``rlam_runs``, ``rlam_steps`` (one run, paged) and ``rlam_step`` (one
step's detail), the trace browser's own questions (:mod:`operations.browse`) over a
snapshot of the server's store. They read the trace; they are not steps of it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from mcp_types import Tool, ToolAnnotations

from rlam_jupyter.operations.browse import queries, step_detail
from rlam_jupyter.operations.browse.rows import Row
from rlam_jupyter.operations.browse.snapshots import Snapshot
from rlam_jupyter.store.schema import STEP_STATUSES

RUN_ARG = {"type": "string", "description": "a run's id, name or unique id prefix (see rlam_runs)"}
READ_ONLY = ToolAnnotations(read_only_hint=True, idempotent_hint=False, open_world_hint=False)


@dataclass(frozen=True)
class RunTool:
    """A read-only question about the trace: its MCP definition and its answer."""

    definition: Tool
    answer: Callable[[Snapshot, Mapping[str, Any]], Row]


def _runs(snapshot: Snapshot, _arguments: Mapping[str, Any]) -> Row:
    return {"runs": queries.runs(snapshot.con)}


def _steps(snapshot: Snapshot, arguments: Mapping[str, Any]) -> Row:
    run_id = queries.resolve_run(snapshot.con, str(arguments["run"]))
    return queries.steps_page(
        snapshot.materialise("steps"),
        run_id,
        offset=int(arguments.get("offset", 0)),
        limit=int(arguments.get("limit", 50)),
        statuses=list(arguments.get("statuses") or ()),
        index=snapshot.step_index(run_id),
    )


def _step(snapshot: Snapshot, arguments: Mapping[str, Any]) -> Row:
    run_id = queries.resolve_run(snapshot.con, str(arguments["run"]))
    return step_detail.step(snapshot.con, run_id, int(arguments["seq"]))


def tool(
    name: str,
    description: str,
    properties: Row,
    required: list[str],
    hints: ToolAnnotations = READ_ONLY,
) -> Tool:
    """A tool of this server's own (not an action): a closed JSON Schema of ``properties``."""
    schema = {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }
    return Tool(name=name, description=description, input_schema=schema, annotations=hints)


RUN_TOOLS: dict[str, RunTool] = {
    "rlam_runs": RunTool(
        tool("rlam_runs", "The runs of this server's trace store, with their step counts.", {}, []),
        _runs,
    ),
    "rlam_steps": RunTool(
        tool(
            "rlam_steps",
            "One page of a run's steps in order: action, status, seed, output hashes, error.",
            {
                "run": RUN_ARG,
                "offset": {"type": "integer", "minimum": 0, "default": 0},
                "limit": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": queries.MAX_PAGE,
                    "default": 50,
                },
                "statuses": {
                    "type": "array",
                    "items": {"type": "string", "enum": list(STEP_STATUSES)},
                    "description": "only steps with one of these statuses",
                },
            },
            ["run"],
        ),
        _steps,
    ),
    "rlam_step": RunTool(
        tool(
            "rlam_step",
            "One step in detail: parameters, where its inputs came from, its outputs with "
            "previews, its error and history, the call that proposed it.",
            {
                "run": RUN_ARG,
                "seq": {"type": "integer", "minimum": 1, "description": "step number"},
            },
            ["run", "seq"],
        ),
        _step,
    ),
}
"""The run tools by name."""
