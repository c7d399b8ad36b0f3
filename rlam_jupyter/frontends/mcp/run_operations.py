"""The run operations as tools: ``rlam_replay`` (verify a run by re-executing it),
``rlam_fork`` (a new run from a step, with parameter overrides), ``rlam_diff`` (two runs
step by step), ``rlam_audit`` (the paper's metrics over one run or all) and
``rlam_export`` (a provenance bundle), each the :mod:`operations` function of the CLI,
on the server's own session: a fork's outputs land in the server's namespace and its run
becomes the current one (as ``%rlam fork`` in a kernel), so later action calls without
``--run`` continue the fork.

``rlam_export`` chooses its runs as ``rlam export`` does: the named ones, else the
notebook's, else every run of the store (a headless server has no notebook of its own;
the store is the work the user pointed it at). It writes only a ``.zip`` path that does
not exist yet; ``overwrite`` replaces an earlier bundle, never a file of another kind.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcp_types import Tool, ToolAnnotations

from rlam_jupyter.engine.session import Session
from rlam_jupyter.errors import RlamError
from rlam_jupyter.frontends.mcp.run_tools import RUN_ARG, tool
from rlam_jupyter.operations.audit import audit
from rlam_jupyter.operations.browse.rows import Row
from rlam_jupyter.operations.bundle import format as bundle_format
from rlam_jupyter.operations.bundle.export import export
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


def _export(session: Session, arguments: Mapping[str, Any]) -> Row:
    out = _bundle_path(str(arguments["path"]), bool(arguments.get("overwrite", False)))
    try:
        result = export(
            arguments.get("notebook"),
            out=out,
            runs=arguments.get("runs") or None,
            store=session.engine.layout,
            include_objects=arguments.get("objects", True),
            include_llm_content=arguments.get("llm_content", True),
        )
    except OSError as exc:
        raise RlamError(f"cannot write the bundle {out}: {exc.strerror or exc}") from None
    return {
        **result.to_json(),
        "verify": f"rlam verify {result.path} --reexecute",
        "summary": result.summary(),
    }


def _bundle_path(path: str, overwrite: bool) -> Path:
    """Where the bundle goes (relative to the server's working folder): a ``.zip`` that
    does not exist, or, with ``overwrite``, one that is an earlier bundle."""
    out = Path(path).expanduser()
    if out.suffix.lower() != ".zip":
        raise RlamError(f"path={path!r}: a bundle is a .zip file; give a path ending in .zip")
    if out.is_dir():
        raise RlamError(f"path={path!r} is a folder; give the path of the .zip to write")
    if out.exists() and not overwrite:
        raise RlamError(
            f"{out.resolve()} exists; give another path, or overwrite=true to replace it"
        )
    if out.exists() and not _is_bundle(out):
        raise RlamError(
            f"{out.resolve()} exists and is not an rlam bundle (no {bundle_format.MANIFEST}); "
            "overwrite replaces only an earlier bundle: give another path"
        )
    return out


def _is_bundle(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            return bundle_format.MANIFEST in archive.namelist()
    except (OSError, zipfile.BadZipFile):
        return False


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
    "rlam_export": OperationTool(
        tool(
            "rlam_export",
            "Write a provenance bundle (one deterministic zip: the trace as Parquet, the "
            "output objects, the environment, W3C PROV and RO-Crate, a manifest of hashes) "
            "that `rlam verify BUNDLE --reexecute` checks anywhere. Runs: `runs`, else the "
            "notebook's runs, else every run of the store; fork parents are included. "
            "Answers the bundle's path, blake3 hash and what it holds.",
            {
                "path": {
                    "type": "string",
                    "description": "the .zip to write, relative to the server's working "
                    "folder; must not exist unless overwrite",
                },
                "runs": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "runs to export (id, name or id prefix); default: the "
                    "notebook's runs, else every run of the store",
                },
                "notebook": {
                    "type": "string",
                    "description": "a saved .ipynb to include; its %%rlam cells are matched "
                    "to their steps",
                },
                "overwrite": {
                    "type": "boolean",
                    "default": False,
                    "description": "replace an earlier bundle at path (never another file)",
                },
                "objects": {
                    "type": "boolean",
                    "default": True,
                    "description": "include the output objects (false: hashes only)",
                },
                "llm_content": {
                    "type": "boolean",
                    "default": True,
                    "description": "include recorded prompts, responses and call arguments "
                    "(false: hashes only)",
                },
            },
            ["path"],
            WRITES,  # writes a file, destroys none: overwrite replaces only an earlier bundle
        ),
        _export,
    ),
}
"""The operation tools by name."""
