"""The graph check: the provenance graph of the trace is complete.

Every run of the manifest is in the trace, forks name runs of the bundle, each run's
environment is recorded, every step belongs to a run, every failure and refusal has
its cause, every artifact a finished step names has a record, and no edge dangles.
Steps that never finished are listed, not fatal.
"""

from __future__ import annotations

from typing import Any

from rlam_jupyter.operations.bundle import format as fmt
from rlam_jupyter.operations.bundle.inspection import FAILED, OK, Check, Inspection
from rlam_jupyter.operations.bundle.problems import Problem
from rlam_jupyter.operations.bundle.trace_rows import OK_STATUSES, TraceRows, json_field
from rlam_jupyter.store.schema import EDGE_TYPES, IN_FLIGHT_STATUSES, INTERRUPTED


def check_graph(result: Inspection) -> None:
    """Add the graph check (needs the trace rows)."""
    rows = result.rows
    assert rows is not None
    edges_file = fmt.trace_entry("edges")
    run_ids = {r["run_id"] for r in rows.runs}
    manifest_runs = {r["run_id"] for r in result.manifest.runs} if result.manifest else set()
    problems = _run_problems(rows, run_ids, manifest_runs)
    step_problems, failures, unfinished = _step_problems(rows, run_ids)
    problems += step_problems
    statuses = {s["step_id"]: s["status"] for s in rows.steps}
    for edge in rows.edges:
        problem = _edge_problem(edge, rows, run_ids, statuses)
        if problem:
            problems.append(Problem(edges_file, problem))
    details = []
    if unfinished:
        details.append(
            f"{len(unfinished)} step(s) never finished (dry run or interrupted): "
            + ", ".join(unfinished[:5])
        )
    summary = (
        f"{len(rows.steps)} steps, {len(rows.edges)} edges, no dangling edge; "
        f"{failures} failure(s), each with its cause"
    )
    if problems:
        summary = f"{len(problems)} problem(s) in the provenance graph"
    result.add(Check("graph", FAILED if problems else OK, summary, problems, details))


def _run_problems(rows: TraceRows, run_ids: set[str], manifest_runs: set[str]) -> list[Problem]:
    """Runs the manifest names but the trace lacks, forks of absent runs, unrecorded
    environments."""
    problems: list[Problem] = []
    for run_id in sorted(manifest_runs - run_ids):
        problems.append(
            Problem(fmt.trace_entry("runs"), f"run {run_id} of the manifest is missing")
        )
    for run in rows.runs:
        parent = run.get("parent_run_id")
        if parent and parent not in run_ids:
            problems.append(
                Problem(
                    fmt.trace_entry("runs"),
                    f"run {run['run_id']} is a fork of {parent}, which is not in the bundle",
                )
            )
        if run.get("env_id") and run["env_id"] not in rows.environments:
            problems.append(
                Problem(
                    fmt.trace_entry("environments"),
                    f"environment {run['env_id'][:12]} of run {run['run_id']} is not recorded",
                )
            )
    return problems


def _step_problems(rows: TraceRows, run_ids: set[str]) -> tuple[list[Problem], int, list[str]]:
    """The steps' problems, how many failed, and the ids of those that never finished."""
    steps_file = fmt.trace_entry("steps")
    problems: list[Problem] = []
    failures = 0
    unfinished = []
    for step in rows.steps:
        step_id, status = step["step_id"], step["status"]
        if step["run_id"] not in run_ids:
            problems.append(Problem(steps_file, f"step {step_id} belongs to no run of the bundle"))
        if status == "failed":
            failures += 1
            if not step.get("error_type") or not step.get("error_message"):
                problems.append(
                    Problem(
                        steps_file,
                        f"failed step {step_id} has no recorded cause (error type/message)",
                    )
                )
        elif status == "rejected" and not step.get("error_message"):
            problems.append(Problem(steps_file, f"rejected step {step_id} has no recorded reason"))
        elif status in OK_STATUSES:
            problems += _unrecorded_artifacts(step, rows, steps_file)
        elif status in (*IN_FLIGHT_STATUSES, INTERRUPTED):
            unfinished.append(step_id)
    return problems, failures, unfinished


def _unrecorded_artifacts(step: dict[str, Any], rows: TraceRows, steps_file: str) -> list[Problem]:
    """The outputs and inputs of a finished step that have no artifact record."""
    step_id = step["step_id"]
    problems: list[Problem] = []
    for name, artifact_id in json_field(step, "outputs", {}).items():
        if artifact_id not in rows.artifacts:
            problems.append(
                Problem(
                    steps_file,
                    f"output {name!r} of step {step_id} ({artifact_id[:12]}) has no artifact record",
                )
            )
    for name, artifact_id in json_field(step, "inputs", {}).items():
        if artifact_id not in rows.artifacts:
            problems.append(
                Problem(
                    steps_file,
                    f"input {name!r} of step {step_id} ({str(artifact_id)[:12]}) has no artifact record",
                )
            )
    return problems


def _edge_problem(
    edge: dict[str, Any], rows: TraceRows, run_ids: set[str], statuses: dict[str, str]
) -> str | None:
    kind, src, dst = edge["type"], edge["src"], edge["dst"]
    label = f"{kind} edge {str(src)[:40]} → {str(dst)[:40]}"
    if kind not in EDGE_TYPES:
        return f"{label}: unknown edge type"
    if edge["run_id"] not in run_ids:
        return f"{label}: belongs to no run of the bundle"
    if kind in ("used", "generated"):
        if src not in rows.step_ids:
            return f"{label}: dangling, no step {src}"
        if dst not in rows.artifacts:
            return f"{label}: dangling, no artifact {dst}"
    elif kind == "derived_from":
        for end in (src, dst):
            if end not in rows.artifacts:
                return f"{label}: dangling, no artifact {end}"
    elif kind == "recovers":
        if src not in rows.step_ids:
            return f"{label}: dangling, no step {src}"
        if statuses.get(dst) not in ("failed", "rejected"):
            return f"{label}: the recovered step {dst} is not a recorded failure"
    elif kind == "forked_from":
        for end in (src, dst):
            if end not in run_ids:
                return f"{label}: dangling, no run {end}"
    elif kind == "proposed_by":
        if src not in rows.step_ids:
            return f"{label}: dangling, no step {src}"
        if dst not in rows.llm_calls and dst not in rows.step_ids:
            return f"{label}: dangling, no LLM call {dst}"
    return None
