"""The paper's three metrics and a failure report, computed from the trace itself.

- **Trace Completeness**: of everything the trace implies must be there, the share
  that is. Each step needs its proposal and the decision on it; an accepted step needs
  its outcome; a succeeded step the artifacts and ``generated`` edges of its outputs;
  inputs their ``used`` edges; a recovery the failed step it answers; an agent's step
  the LLM call that proposed it; an LLM call as many steps as it made tool calls; step
  numbers have no gaps. A record dropped from a journal shows up here.
- **Failure Visibility**: of the failures, the share recorded with their cause (type
  and message; a traceback too when an action raised). A run that ended ``failed`` or
  ``stopped`` with no failure on record counts as an invisible failure.
- **Reproducibility Success**: of the re-executable steps, the share that re-execute
  to the recorded output hashes (``replay(run, verify=True)``).

``audit(run)`` returns an :class:`AuditReport` (HTML in a notebook, text in a terminal,
``to_json()``); ``rlam audit [RUN]`` exits 1 when a metric is below its target.
"""

from __future__ import annotations

import argparse
import html
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from rlam_jupyter.store.catalog import connect
from rlam_jupyter.store.layout import StoreLayout
from rlam_jupyter.store.resolve import resolve_store
from rlam_jupyter.store.schema import (
    IN_FLIGHT_STATUSES,
    INTERRUPTED,
    USER_INTERRUPT,
    WRITER_DIED,
)

TARGETS = {
    "trace_completeness": 1.0,
    "failure_visibility": 1.0,
    "reproducibility_success": 1.0,
}
"""What the paper's R-LAM achieves; below any of these, ``rlam audit`` exits 1."""

METRIC_LABELS = {
    "trace_completeness": "Trace Completeness",
    "failure_visibility": "Failure Visibility",
    "reproducibility_success": "Reproducibility Success",
}


@dataclass(frozen=True)
class Failure:
    """One failure as the trace has it, for the failure report."""

    run_id: str
    seq: int | None
    step_id: str | None
    action: str
    status: str
    error_type: str | None
    message: str | None
    traceback_tail: str | None
    recovered_by: str | None
    visible: bool


@dataclass
class Tally:
    """Present / expected items of one metric, and what is missing."""

    present: int = 0
    expected: int = 0
    missing: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    """Items that could not be checked at all (a step that was not re-executed): they
    count as expected and not present, and are named apart from real shortfalls."""

    def check(self, ok: bool, what: str) -> None:
        self.expected += 1
        if ok:
            self.present += 1
        else:
            self.missing.append(what)

    def skip(self, what: str) -> None:
        self.expected += 1
        self.skipped.append(what)

    @property
    def value(self) -> float | None:
        return self.present / self.expected if self.expected else None

    def add(self, other: Tally) -> None:
        self.present += other.present
        self.expected += other.expected
        self.missing.extend(other.missing)
        self.skipped.extend(other.skipped)


@dataclass
class RunAudit:
    """The metrics of one run."""

    run_id: str
    name: str
    status: str
    steps: int
    completeness: Tally
    visibility: Tally
    reproducibility: Tally | None
    failures: list[Failure]
    notes: list[str] = field(default_factory=list)

    @property
    def tallies(self) -> list[Tally]:
        """The metrics measured for this run (reproducibility only when re-executed)."""
        found = (self.completeness, self.visibility, self.reproducibility)
        return [t for t in found if t is not None]

    @property
    def missing(self) -> list[str]:
        return [m for tally in self.tallies for m in tally.missing]

    @property
    def skipped(self) -> list[str]:
        return [m for tally in self.tallies for m in tally.skipped]


@dataclass
class AuditReport:
    """Metrics over the audited runs (item-weighted), per run, and the failure report."""

    runs: list[RunAudit]

    def _total(self, metric: str) -> Tally | None:
        total = Tally()
        seen = False
        for run in self.runs:
            tally = {
                "trace_completeness": run.completeness,
                "failure_visibility": run.visibility,
                "reproducibility_success": run.reproducibility,
            }[metric]
            if tally is not None:
                seen = True
                total.add(tally)
        return total if seen else None

    @property
    def metrics(self) -> dict[str, float | None]:
        """Each metric in [0, 1]; None when nothing was there to measure (e.g. no failures)."""
        result: dict[str, float | None] = {}
        for metric in TARGETS:
            tally = self._total(metric)
            result[metric] = tally.value if tally is not None else None
        return result

    @property
    def trace_completeness(self) -> float | None:
        return self.metrics["trace_completeness"]

    @property
    def failure_visibility(self) -> float | None:
        return self.metrics["failure_visibility"]

    @property
    def reproducibility_success(self) -> float | None:
        return self.metrics["reproducibility_success"]

    @property
    def below_target(self) -> dict[str, float]:
        return {m: v for m, v in self.metrics.items() if v is not None and v < TARGETS[m] - 1e-12}

    @property
    def ok(self) -> bool:
        """Every metric meets its target; a step that was not re-executed is a shortfall."""
        return self.passes(allow_skipped=False)

    def passes(self, allow_skipped: bool) -> bool:
        """``ok``, or with ``allow_skipped``: every metric below target is short only by
        items that could not be checked (steps not re-executed, steps in flight under a
        writer of unknown fate); they are still counted in the metric and named."""
        below = self.below_target
        if not allow_skipped:
            return not below
        for metric in below:
            total = self._total(metric)
            if total is None or total.present + len(total.skipped) != total.expected:
                return False
        return True

    def skipped(self) -> list[str]:
        """Everything that could not be checked, and why, one sentence each: steps not
        re-executed (Reproducibility Success), steps in flight under a writer whose fate
        cannot be told (Trace Completeness)."""
        return [f"{run.name}: {what}" for run in self.runs for what in run.skipped]

    @property
    def failures(self) -> list[Failure]:
        return [f for run in self.runs for f in run.failures]

    def missing(self) -> list[str]:
        """Everything the metrics found missing, one sentence each."""
        return [f"{run.name}: {m}" for run in self.runs for m in run.missing]

    def to_json(self) -> dict[str, Any]:
        return {
            "metrics": self.metrics,
            "targets": TARGETS,
            "ok": self.ok,
            "not_verified": self.skipped(),
            "runs": [
                {
                    "run_id": r.run_id,
                    "name": r.name,
                    "status": r.status,
                    "steps": r.steps,
                    "trace_completeness": r.completeness.value,
                    "failure_visibility": r.visibility.value,
                    "reproducibility_success": r.reproducibility.value
                    if r.reproducibility
                    else None,
                    "missing": r.missing,
                    "not_verified": r.skipped,
                    "notes": r.notes,
                }
                for r in self.runs
            ],
            "failures": [f.__dict__ for f in self.failures],
        }

    def __repr__(self) -> str:
        lines = [f"audit of {len(self.runs)} run(s)"]
        for metric, value in self.metrics.items():
            lines.append(
                f"  {METRIC_LABELS[metric]:<24} {_fmt(value):>7}  (target {TARGETS[metric]:.2f})"
            )
        lines.append("")
        lines.append(f"  {'run':<28} {'status':<17} {'steps':>5} {'TC':>6} {'FV':>6} {'RS':>6}")
        for r in self.runs:
            rs = r.reproducibility.value if r.reproducibility else None
            lines.append(
                f"  {r.name[:28]:<28} {r.status[:17]:<17} {r.steps:>5} "
                f"{_fmt(r.completeness.value):>6} {_fmt(r.visibility.value):>6} {_fmt(rs):>6}"
            )
        missing = self.missing()
        if missing:
            lines += ["", "missing or wrong:"] + [f"  - {m}" for m in missing[:50]]
        skipped = self.skipped()
        if skipped:
            lines += ["", f"not verified ({_NOT_VERIFIED}):"]
            lines += [f"  - {m}" for m in skipped[:50]]
        if self.failures:
            lines += ["", "failures:"]
            for f in self.failures:
                where = f"step {f.seq} " if f.seq is not None else ""
                answer = f" → recovered by {f.recovered_by}" if f.recovered_by else ""
                lines.append(
                    f"  - {where}{f.action} {f.status}: {f.error_type}: {f.message}{answer}"
                )
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        cards = "".join(
            f"<div style='display:inline-block;margin:0 1.5em 0.5em 0'>"
            f"<div style='font-size:1.6em;color:{_colour(m, v)}'>{_fmt(v)}</div>"
            f"<div>{METRIC_LABELS[m]}</div></div>"
            for m, v in self.metrics.items()
        )
        rows = "".join(
            "<tr>"
            + "".join(
                f"<td>{html.escape(str(c))}</td>"
                for c in (
                    r.name,
                    r.status,
                    r.steps,
                    _fmt(r.completeness.value),
                    _fmt(r.visibility.value),
                    _fmt(r.reproducibility.value if r.reproducibility else None),
                )
            )
            + "</tr>"
            for r in self.runs
        )
        failures = "".join(
            f"<li><b>{html.escape(f.action)}</b> (step {f.seq}) {html.escape(f.status)}: "
            f"<code>{html.escape(str(f.error_type))}: {html.escape(str(f.message))}</code>"
            + (f" → recovered by {html.escape(f.recovered_by)}" if f.recovered_by else "")
            + "</li>"
            for f in self.failures
        )
        missing = "".join(f"<li>{html.escape(m)}</li>" for m in self.missing()[:50])
        skipped = "".join(f"<li>{html.escape(m)}</li>" for m in self.skipped()[:50])
        return (
            f"<div class='rlam-audit'>{cards}<table class='rlam-table'><thead><tr><th>run</th>"
            "<th>status</th><th>steps</th><th>TC</th><th>FV</th><th>RS</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>"
            + (f"<p>Missing or wrong:</p><ul>{missing}</ul>" if missing else "")
            + (
                f"<p>Not verified ({html.escape(_NOT_VERIFIED)}):</p><ul>{skipped}</ul>"
                if skipped
                else ""
            )
            + (f"<p>Failures:</p><ul>{failures}</ul>" if failures else "")
            + "</div>"
        )


_NOT_VERIFIED = (
    "not re-executed, or in flight with a writer of unknown fate; counted against "
    "Reproducibility Success and Trace Completeness respectively"
)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _colour(metric: str, value: float | None) -> str:
    if value is None:
        return "inherit"
    ok = value >= TARGETS[metric] - 1e-12
    return "var(--jp-success-color1,#2e7d32)" if ok else "var(--jp-error-color1,#d32f2f)"


# ---------------------------------------------------------------- computing


def audit(
    run: str | None = None,
    store: Any = None,
    *,
    reproduce: bool = True,
) -> AuditReport:
    """Audit one run (id, name or unique prefix) or, with ``run=None``, every run.

    ``reproduce=False`` skips the re-execution that measures Reproducibility Success.
    """
    layout = store if isinstance(store, StoreLayout) else resolve_store(store)
    con = connect(layout)
    try:
        if run is None:
            run_ids = [
                r[0] for r in con.execute("SELECT run_id FROM runs ORDER BY created_at").fetchall()
            ]
        else:
            from rlam_jupyter.store.catalog import resolve_run

            run_ids = [resolve_run(con, run)]
        audits = [_audit_run(con, run_id) for run_id in run_ids]
    finally:
        con.close()
    if reproduce:
        for item in audits:
            item.reproducibility = _reproducibility(layout, item)
    return AuditReport(audits)


def _rows(con: Any, sql: str, params: Iterable[Any] = ()) -> list[dict[str, Any]]:
    table = con.execute(sql, list(params))
    names = [d[0] for d in table.description]
    return [dict(zip(names, row, strict=True)) for row in table.fetchall()]


def _audit_run(con: Any, run_id: str) -> RunAudit:
    run = _rows(con, "SELECT * FROM runs WHERE run_id = ?", [run_id])[0]
    events = _rows(con, "SELECT * FROM step_events WHERE run_id = ? ORDER BY event_no", [run_id])
    edges = _rows(con, "SELECT src, dst, type, role FROM edges WHERE run_id = ?", [run_id])
    calls = _rows(
        con, "SELECT call_id, error, attributes FROM llm_calls WHERE run_id = ?", [run_id]
    )
    approvals = _rows(con, "SELECT step_id, decision FROM approvals WHERE run_id = ?", [run_id])
    by_step: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_step.setdefault(event["step_id"], []).append(event)
    latest = {step_id: evs[-1] for step_id, evs in by_step.items()}
    output_ids = {a for s in latest.values() for a in json.loads(s["outputs"] or "{}").values()}
    known_artifacts = {
        r["artifact_id"]
        for r in _rows(
            con,
            "SELECT DISTINCT artifact_id FROM artifacts WHERE artifact_id IN "
            "(SELECT unnest(?::VARCHAR[]))",
            [sorted(output_ids)],
        )
    }
    edge_set = {(e["src"], e["dst"], e["type"]) for e in edges}
    call_ids = {c["call_id"] for c in calls}
    completeness = Tally()
    notes: list[str] = []
    writers = _rows(con, "SELECT state, reason FROM writers WHERE run_id = ?", [run_id])
    # An open run is in flight only while a writer may still be working on it; one whose
    # writers all died reads as 'interrupted' (the catalog derives it) and is judged whole.
    open_run = (run["status"] or "open") == "open"
    interrupted_run = run["status"] == INTERRUPTED
    died = "; ".join(w["reason"] for w in writers if w["state"] == "dead")
    # Steps in flight are uncounted only while every writer of the run is seen working;
    # under a writer whose fate cannot be told (another host) they may never finish, so
    # they are counted as not checked (skipped), never as complete.
    not_alive = [w["reason"] for w in writers if w["state"] != "alive"]
    fate_unknown = open_run and (not writers or bool(not_alive))
    if open_run:
        why = f" ({'; '.join(not_alive)})" if not_alive else ""
        notes.append(
            f"the run is still open{why}: "
            + (
                "steps in flight are counted as not verified, their writer's fate unknown"
                if fate_unknown
                else "steps in flight are not counted as missing"
            )
        )
    elif interrupted_run:
        notes.append(
            "the run was interrupted: its writer died before ending it"
            + (f" ({died})" if died else "")
        )

    first = run["fork_seq"] or 1
    seqs = sorted({e["seq"] for e in events if e["seq"] is not None})
    if seqs:
        present = set(seqs)
        for seq in range(first, seqs[-1] + 1):
            completeness.check(
                seq in present, f"step {seq}: no record at all (a gap in the step numbers)"
            )

    proposed_by_count: dict[str, int] = {}
    for step_id, evs in sorted(by_step.items()):
        last = evs[-1]
        label = f"step {last['seq']} ({last['action']})"
        statuses = {e["status"] for e in evs}
        completeness.check(
            any(e["action"] and e["params"] is not None for e in evs),
            f"{label}: the proposal (action and parameters) is not recorded",
        )
        decided = bool(statuses & {"accepted", "rejected"})
        completeness.check(decided, f"{label}: no decision (accepted/rejected) is recorded")
        if "accepted" in statuses or statuses & {"succeeded", "cached", "failed", INTERRUPTED}:
            # an interrupt the step's own writer recorded is an outcome; a dead writer's is not
            done = bool(statuses & {"succeeded", "cached", "failed"}) or (
                last["status"] == INTERRUPTED and last["error_type"] == USER_INTERRUPT
            )
            if not done and fate_unknown:
                who = "; ".join(not_alive) or "no journal names its writer"
                completeness.skip(
                    f"{label}: in flight, its writer's fate unknown ({who}): whether it "
                    "finished cannot be known from here"
                )
            elif done or not open_run:
                if _interrupted(last, interrupted_run):
                    cause = last["error_message"] or died or "its writer died"
                    missing = (
                        f"{label}: interrupted (writer died) before an outcome was recorded: "
                        f"{cause}"
                    )
                else:
                    missing = f"{label}: accepted, but no outcome (succeeded/failed) is recorded"
                completeness.check(done, missing)
        if last["status"] in ("succeeded", "cached"):
            for output, artifact_id in json.loads(last["outputs"] or "{}").items():
                completeness.check(
                    (step_id, artifact_id, "generated") in edge_set,
                    f"{label}: output {output} has no 'generated' edge",
                )
                completeness.check(
                    artifact_id in known_artifacts,
                    f"{label}: output {output} ({artifact_id[:10]}) has no artifact record",
                )
            for pname, artifact_id in json.loads(last["inputs"] or "{}").items():
                completeness.check(
                    (step_id, artifact_id, "used") in edge_set,
                    f"{label}: input {pname} has no 'used' edge",
                )
        if last["recovers"]:
            target = latest.get(last["recovers"])
            completeness.check(
                target is not None and target["status"] in ("failed", "rejected", INTERRUPTED),
                f"{label}: recovers {last['recovers']}, which is not a recorded failure",
            )
            completeness.check(
                (step_id, last["recovers"], "recovers") in edge_set,
                f"{label}: its 'recovers' edge is missing",
            )
        proposer = next((e["proposed_by"] for e in evs if e["proposed_by"]), None)
        if proposer:
            proposed_by_count[proposer] = proposed_by_count.get(proposer, 0) + 1
            completeness.check(
                proposer in call_ids,
                f"{label}: the LLM call {proposer} that proposed it is not recorded",
            )
            completeness.check(
                (step_id, proposer, "proposed_by") in edge_set,
                f"{label}: its 'proposed_by' edge is missing",
            )
    for call in calls:
        attributes = json.loads(call["attributes"] or "{}")
        asked = len(attributes.get("rlam.tool_call_ids") or [])
        if asked:
            got = proposed_by_count.get(call["call_id"], 0)
            completeness.check(
                got >= asked,
                f"LLM call {call['call_id']} made {asked} tool call(s) but only {got} step(s) "
                "record them",
            )
    for approval in approvals:
        completeness.check(
            approval["step_id"] in latest,
            f"approval ({approval['decision']}) of {approval['step_id']}, a step with no record",
        )

    visibility, failures = _failures(run, latest, calls, died)
    return RunAudit(
        run_id,
        run["name"],
        run["status"] or "open",
        len(latest),
        completeness,
        visibility,
        None,
        failures,
        notes,
    )


def _interrupted(last: Mapping[str, Any], interrupted_run: bool) -> bool:
    """True when a step's newest record says interrupted, or it was in flight in a run
    whose writer died (what the ``steps`` view derives)."""
    return last["status"] == INTERRUPTED or (
        interrupted_run and last["status"] in IN_FLIGHT_STATUSES
    )


def _failures(
    run: Mapping[str, Any],
    latest: Mapping[str, Mapping[str, Any]],
    calls: list[dict[str, Any]],
    died: str = "",
) -> tuple[Tally, list[Failure]]:
    visibility = Tally()
    failures: list[Failure] = []
    answered = {s["recovers"]: s["step_id"] for s in latest.values() if s["recovers"]}
    interrupted_run = run["status"] == INTERRUPTED
    for step in sorted(latest.values(), key=lambda s: s["seq"] or 0):
        label = f"step {step['seq']} ({step['action']})"
        if _interrupted(step, interrupted_run):
            # The cause is on record (repair's event) or derived from the dead writer's
            # lease: visible, unlike a kernel death before liveness was tracked.
            message = step["error_message"] or died or "its writer died"
            visibility.check(True, f"{label} was interrupted")
            failures.append(
                Failure(
                    run["run_id"],
                    step["seq"],
                    step["step_id"],
                    step["action"],
                    INTERRUPTED,
                    step["error_type"] or WRITER_DIED,
                    message,
                    None,
                    answered.get(step["step_id"]),
                    True,
                )
            )
            continue
        if step["status"] not in ("failed", "rejected"):
            continue
        has_cause = bool(step["error_type"]) and bool((step["error_message"] or "").strip())
        if step["status"] == "failed":
            visible = has_cause and bool((step["traceback"] or "").strip())
            visibility.check(visible, f"{label} failed without its type, message and traceback")
        else:
            visible = has_cause
            visibility.check(visible, f"{label} was refused without a reason")
        tail = (step["traceback"] or "").strip().splitlines()
        failures.append(
            Failure(
                run["run_id"],
                step["seq"],
                step["step_id"],
                step["action"],
                step["status"],
                step["error_type"],
                step["error_message"],
                tail[-1] if tail else None,
                answered.get(step["step_id"]),
                visible,
            )
        )
    for call in calls:
        if call["error"]:
            kind, _, message = str(call["error"]).partition(": ")
            visible = bool(message.strip())
            visibility.check(visible, f"LLM call {call['call_id']} failed without a message")
            failures.append(
                Failure(
                    run["run_id"],
                    None,
                    call["call_id"],
                    "llm call",
                    "error",
                    kind,
                    message,
                    None,
                    None,
                    visible,
                )
            )
    status = run["status"] or "open"
    if status == INTERRUPTED and not failures:
        # Killed between steps: nothing was lost, and the trace says why the run stopped.
        visibility.check(True, "the run was interrupted")
        failures.append(
            Failure(
                run["run_id"],
                None,
                None,
                "run",
                status,
                WRITER_DIED,
                died or None,
                None,
                None,
                True,
            )
        )
    elif status not in ("open", "succeeded") and not failures:
        visibility.check(False, f"the run ended {status!r} but no failure is recorded")
        failures.append(
            Failure(run["run_id"], None, None, "run", status, None, None, None, None, False)
        )
    return visibility, failures


def _reproducibility(layout: StoreLayout, item: RunAudit) -> Tally:
    from rlam_jupyter.errors import RlamError
    from rlam_jupyter.operations.replay import replay

    tally = Tally()
    try:
        report = replay(item.run_id, verify=True, store=layout, namespace={})
    except RlamError as exc:
        tally.check(False, f"cannot be verified: {exc}")
        return tally
    for step in report.steps:
        if step.inherited_from:
            continue  # audited with the run it belongs to
        label = f"step {step.seq} ({step.action})"
        if step.verify in ("identical", "diverged"):
            detail = "; ".join(step.differences) or "outputs differ"
            tally.check(step.verify == "identical", f"{label} does not reproduce: {detail}")
        elif step.ran and step.verify:
            why = "; ".join(step.differences)
            tally.skip(f"{label} {step.verify}" + (f": {why}" if why else ""))
    return tally


# ---------------------------------------------------------------- %rlam audit and rlam audit


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, add_help=False, exit_on_error=False)
    parser.add_argument("run", nargs="?", default=None)
    parser.add_argument("--no-reproduce", action="store_true")
    return parser


def _register_magic() -> None:
    from rlam_jupyter.frontends.magics import register_command

    @register_command("audit")
    def audit_command(magics: Any, session: Any, argv: list[str], cell: str | None) -> Any:
        """``%rlam audit [RUN] [--no-reproduce]``: the paper's metrics over the trace."""
        from IPython.core.error import UsageError

        try:
            args = _parser("%rlam audit").parse_args(argv)
        except (argparse.ArgumentError, SystemExit) as exc:
            raise UsageError(f"%rlam audit [RUN] [--no-reproduce]: {exc}") from None
        return audit(args.run, session.engine.layout, reproduce=not args.no_reproduce)


def register_cli(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """``rlam audit [RUN] [--no-reproduce]``: exit 1 when a metric is below its target."""
    parser = subparsers.add_parser(
        "audit",
        parents=[common],
        help="the paper's metrics (trace completeness, failure visibility, reproducibility)",
    )
    parser.add_argument(
        "run", nargs="?", default=None, help="run id, prefix or name (default: all)"
    )
    parser.add_argument(
        "--no-reproduce", action="store_true", help="skip re-execution (no reproducibility metric)"
    )
    parser.add_argument(
        "--allow-skipped",
        action="store_true",
        help="exit 0 even when steps could not be re-executed (they are still counted and named)",
    )
    parser.set_defaults(handler=_audit_cli)


def _audit_cli(args: argparse.Namespace) -> int:
    from rlam_jupyter.frontends.cli import EXIT_CHECK_FAILED, EXIT_OK, emit

    report = audit(args.run, args.store, reproduce=not args.no_reproduce)
    emit(args, report.to_json(), repr(report))
    return EXIT_OK if report.passes(args.allow_skipped) else EXIT_CHECK_FAILED


_register_magic()
