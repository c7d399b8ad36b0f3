"""The run operations as tools: ``rlam_replay`` (verify a run by re-executing it),
``rlam_fork`` (a new run from a step, with parameter overrides), ``rlam_diff`` (two runs
step by step) and ``rlam_audit`` (the paper's metrics over one run or all), each the
:mod:`operations` function of the CLI, on the server's own session: a fork's outputs land
in the server's namespace and its run becomes the current one (as ``%rlam fork`` in a
kernel), so later action calls without ``--run`` continue the fork.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from mcp_types import Tool, ToolAnnotations

from rlam_jupyter.engine.session import Session
from rlam_jupyter.frontends.mcp.run_tools import RUN_ARG, tool
from rlam_jupyter.operations.audit import audit
from rlam_jupyter.operations.browse.rows import Row
from rlam_jupyter.operations.replay import diff, fork, replay

READS = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)
WRITES = ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False
)


@dataclass(frozen=True)
class OperationTool:
    """An operation on recorded runs: its MCP definition and how the session answers it."""

    definition: Tool
    answer: Callable[[Session, Mapping[str, Any]], Row]


def _replay(session: Session, arguments: Mapping[str, Any]) -> Row:
    # namespace={}: verifying restores nothing into the server's namespace
    report = replay(arguments["run"], verify=True, session=session, namespace={})
    return report.to_json()


def _fork(session: Session, arguments: Mapping[str, Any]) -> Row:
    report = fork(
        arguments["run"],
        arguments["at"],
        arguments.get("params") or {},
        session=session,
        name=arguments.get("name"),
    )
    return report.to_json()


def _diff(session: Session, arguments: Mapping[str, Any]) -> Row:
    return diff(arguments["a"], arguments["b"], session=session).to_json()


def _audit(session: Session, arguments: Mapping[str, Any]) -> Row:
    report = audit(
        arguments.get("run"), session.engine.layout, reproduce=arguments.get("reproduce", True)
    )
    return report.to_json()


OPERATION_TOOLS: dict[str, OperationTool] = {
    "rlam_replay": OperationTool(
        tool(
            "rlam_replay",
            "Verify a run: re-execute every step on its recorded inputs, seed and parameters "
            "and compare output hashes with the recording (identical / diverged / why not).",
            {"run": RUN_ARG},
            ["run"],
            READS,
        ),
        _replay,
    ),
    "rlam_fork": OperationTool(
        tool(
            "rlam_fork",
            "A new run from step `at` of `run`: earlier steps shared, step `at` re-proposed "
            "with `params` merged over its recorded parameters (schema-checked), later steps "
            "re-run (from the cache where unchanged). The fork becomes the current run.",
            {
                "run": RUN_ARG,
                "at": {
                    "type": ["integer", "string"],
                    "description": "the step to change: its number (seq) or step id",
                },
                "params": {
                    "type": "object",
                    "description": "parameter overrides; an input's name rebinds that input",
                },
                "name": {"type": "string", "description": "the fork's name (default derived)"},
            },
            ["run", "at"],
            WRITES,
        ),
        _fork,
    ),
    "rlam_diff": OperationTool(
        tool(
            "rlam_diff",
            "Two runs aligned step by step: parameters, seeds, inputs, output hashes, "
            "metrics and environments that differ.",
            {"a": RUN_ARG, "b": RUN_ARG},
            ["a", "b"],
            READS,
        ),
        _diff,
    ),
    "rlam_audit": OperationTool(
        tool(
            "rlam_audit",
            "The paper's metrics (Reproducibility Success, Trace Completeness, Failure "
            "Visibility) and the failure report, for one run or every run of the store.",
            {
                "run": {**RUN_ARG, "description": "one run (default: every run)"},
                "reproduce": {
                    "type": "boolean",
                    "default": True,
                    "description": "re-execute the runs to measure Reproducibility Success",
                },
            },
            [],
            READS,
        ),
        _audit,
    ),
}
"""The operation tools by name."""
