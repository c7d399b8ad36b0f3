"""Re-execute a bundle's steps in a fresh process and compare output hashes with the record.

``verify --reexecute`` imports the bundle into a scratch store and runs this module
as ``python -m rlam_jupyter.operations.bundle.reexecute``, so nothing from the calling process
(a kernel's state, monkey patches, already-seeded generators) leaks into the check.
Two ways to re-execute, same verdicts: ``engine`` (default) re-runs each step through
:meth:`Engine.execute`, the path that recorded it, on its recorded inputs, parameters
and seed, loading nothing else; ``replay`` uses :func:`rlam_jupyter.operations.replay.replay`
with ``verify=True``. A step is ``identical``, ``diverged``, a ``reproduced failure``,
``not re-executable`` (its action or inputs are missing here) or ``skipped`` with the
reason (external steps are restored, never re-run; refused proposals never ran).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rlam_jupyter.operations.bundle.trace_rows import json_field
from rlam_jupyter.store.catalog import connect
from rlam_jupyter.store.layout import StoreLayout
from rlam_jupyter.store.objects import ObjectStore
from rlam_jupyter.values.hashing import digest_as

if TYPE_CHECKING:
    from rlam_jupyter.engine import Engine, Run
    from rlam_jupyter.engine.trace import StepResult
    from rlam_jupyter.operations.recorded_actions import RecordedActions

IDENTICAL = "identical"
DIVERGED = "diverged"
REPRODUCED_FAILURE = "reproduced failure"
NOT_REEXECUTABLE = "not re-executable"
"""The step ran when recorded but was not re-executed here (external, its action or an
input missing): not verified, never counted as reproduced."""
SKIPPED = "skipped"
"""Nothing to re-execute: a refused proposal or a step that never finished."""
FAILING = (DIVERGED,)
NOT_VERIFIED = (NOT_REEXECUTABLE,)


@dataclass(frozen=True)
class StepOutcome:
    run_id: str
    seq: int
    step_id: str
    action: str
    outcome: str
    detail: str = ""


def reexecute_in_fresh_process(
    store: Path,
    run_ids: Sequence[str],
    modules: Sequence[str] = (),
    method: str = "engine",
    timeout: float = 3600,
) -> tuple[str, list[StepOutcome]]:
    """Run :func:`main` in a new interpreter; returns (method used, outcomes)."""
    request = {
        "store": str(store),
        "modules": [_importable(module) for module in modules],
        "method": method,
        "run_ids": list(run_ids),
    }
    command = [sys.executable, "-m", __name__, json.dumps(request)]
    env = dict(os.environ)
    env.pop("RLAM_HOME", None)
    # the child works in a scratch folder: modules named relative to the caller's folder
    # must still be found there
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [os.getcwd(), env.get("PYTHONPATH")]))
    with tempfile.TemporaryDirectory(prefix="rlam-reexec-") as cwd:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd, check=False
        )
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise RuntimeError("re-execution process failed: " + " | ".join(tail))
    payload = json.loads(done.stdout.strip().splitlines()[-1])
    return str(payload["engine"]), [StepOutcome(**o) for o in payload["outcomes"]]


METHODS = ("engine", "replay")


def reexecute(
    store: Path, run_ids: Sequence[str], method: str = "engine"
) -> tuple[str, list[StepOutcome]]:
    """Re-execute the runs' own steps (a fork's prefix is checked with its parent)."""
    if method == "replay":
        replay_module = importlib.import_module("rlam_jupyter.operations.replay")
        return "replay", _with_replay(replay_module.replay, store, run_ids)
    return "engine", _with_engine(store, run_ids)


def _with_replay(replay: Any, store: Path, run_ids: Sequence[str]) -> list[StepOutcome]:
    outcomes = []
    for run_id in run_ids:
        report = replay(run_id, verify=True, store=str(store), namespace={})
        for step in report.steps:
            if getattr(step, "inherited_from", None):
                continue
            verdict = step.verify or ""
            if step.status == "failed" and verdict == IDENTICAL:
                outcome = REPRODUCED_FAILURE
            elif verdict in (IDENTICAL, DIVERGED):
                outcome = verdict
            elif step.not_verified or step.status in ("missing", "unrestorable"):
                outcome = NOT_REEXECUTABLE
            else:
                outcome = SKIPPED
            detail = "; ".join([verdict, step.detail, *step.differences]).strip("; ")
            outcomes.append(
                StepOutcome(run_id, step.seq, step.step_id, step.action, outcome, detail)
            )
    return outcomes


def _with_engine(store: Path, run_ids: Sequence[str]) -> list[StepOutcome]:
    # lazy: pydantic and the engine: export and verify import this module
    from rlam_jupyter.actions.default_registry import registry
    from rlam_jupyter.engine import Engine  # lazy: the engine, for re-execution only
    from rlam_jupyter.operations.recorded_actions import (  # lazy: pydantic, for rlam export
        RecordedActions,
        rows_from_connection,
    )

    layout = StoreLayout(store)
    con = connect(layout)
    objects = ObjectStore(layout)
    actions = RecordedActions(registry(), rows_from_connection(con))
    artifacts: dict[str, tuple[str, str | None]] = {
        row[0]: (row[1], row[2])
        for row in con.execute("SELECT artifact_id, kind, object_path FROM artifacts").fetchall()
    }
    outcomes: list[StepOutcome] = []
    with tempfile.TemporaryDirectory(prefix="rlam-reexec-store-") as scratch:
        engine = Engine(scratch, registry=registry())
        for run_id in run_ids:
            name, seed = con.execute(
                "SELECT name, seed FROM runs WHERE run_id = ?", [run_id]
            ).fetchone() or (run_id, 0)
            relation = con.execute("SELECT * FROM steps WHERE run_id = ? ORDER BY seq", [run_id])
            columns = [d[0] for d in relation.description]
            run = engine.start_run(f"verify-{name}", int(seed))
            for values in relation.fetchall():
                step = dict(zip(columns, values, strict=True))
                kind, detail = _reexecute_step(engine, run, step, artifacts, objects, actions)
                outcomes.append(
                    StepOutcome(run_id, step["seq"], step["step_id"], step["action"], kind, detail)
                )
            engine.end_run(run)
    con.close()
    return outcomes


def _reexecute_step(
    engine: Engine,
    run: Run,
    step: dict[str, Any],
    artifacts: dict[str, tuple[str, str | None]],
    objects: ObjectStore,
    actions: RecordedActions,
) -> tuple[str, str]:
    """Re-run one recorded step through the engine on its recorded inputs: (outcome, detail)."""
    # lazy: pydantic and the engine: export and verify import this module
    from rlam_jupyter.actions.proposal import Proposal
    from rlam_jupyter.engine import Binding  # lazy: the engine, for re-execution only

    status = step["status"]
    if status == "rejected":
        return SKIPPED, "refused proposal: nothing ran"
    if status not in ("succeeded", "cached", "failed"):
        return SKIPPED, f"never finished (last status {status})"
    if step.get("determinism") == "external":
        return NOT_REEXECUTABLE, "external: its recorded outputs are what it gave, never re-run"
    bindings, missing = {}, []
    for pname, artifact_id in json_field(step, "inputs", {}).items():
        kind, path = artifacts.get(artifact_id, ("", None))
        if not path or not objects.exists(path):
            missing.append(pname)
            continue
        name = f"_input_{pname}"
        bindings[name] = Binding(name, artifact_id, "", kind, path, objects.get(path))
    if missing:
        return NOT_REEXECUTABLE, f"input(s) {missing} cannot be restored (no object)"
    resolved = actions.for_step(
        step["action"],
        step.get("action_version"),
        step.get("determinism"),
        json_field(step, "params", {}),
        list(json_field(step, "inputs", {})),
        tuple(json_field(step, "targets", [])),
        input_types={type(b.value) for b in bindings.values()},
    )
    if resolved.spec is None:
        return NOT_REEXECUTABLE, resolved.reason
    run.bindings = bindings
    run.next_seq = int(step["seq"])
    proposal = Proposal(
        step["action"],
        json_field(step, "params", {}),
        {name.removeprefix("_input_"): name for name in bindings},
        tuple(json_field(step, "targets", [])),
        origin="verify",
    )
    result = engine.execute(run, proposal, use_cache=False, spec=resolved.spec)
    recorded = json_field(step, "outputs", {})
    notes = "; ".join(resolved.notes)
    if status == "failed":
        got = result.error.type if result.error else result.status
        same = result.status == "failed" and got == step.get("error_type")
        return (REPRODUCED_FAILURE if same else DIVERGED), (
            f"recorded {step.get('error_type')}, re-execution gave {got}"
        )
    if result.error is not None:
        return DIVERGED, f"now fails: {result.error.type}: {result.error.message}"
    differing = _differing_outputs(result, recorded, artifacts)
    if result.status == "succeeded" and not differing:
        return IDENTICAL, notes
    return DIVERGED, "; ".join(filter(None, [f"output(s) {differing} have other hashes", notes]))


def _differing_outputs(
    result: StepResult, recorded: dict[str, str], artifacts: dict[str, tuple[str, str | None]]
) -> list[str]:
    """Outputs whose new hash differs from the record; an output recorded by an older
    encoding is re-hashed the way it was recorded before it is called different."""
    differing = []
    for name, recorded_id in sorted(recorded.items()):
        if result.outputs.get(name) == recorded_id:
            continue
        kind = artifacts.get(recorded_id, ("", None))[0]
        if kind and name in result.values and digest_as(result.values[name], kind) == recorded_id:
            continue
        differing.append(name)
    return differing


def _importable(item: str) -> str:
    """A ``--import`` item as the child process can use it: a file path made absolute,
    a module name as it is."""
    path = Path(item)
    if item.endswith(".py") or path.is_file():
        if not path.is_file():
            raise RuntimeError(f"--import {item}: no such file")
        return str(path.resolve())
    return item


def import_actions(item: str) -> None:
    """Import a module by name, or a ``.py`` file by path (its actions register)."""
    if item.endswith(".py"):
        path = Path(item)
        spec = importlib.util.spec_from_file_location(path.stem, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot import {item}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[path.stem] = module
        spec.loader.exec_module(module)
        return
    importlib.import_module(item)


def main(argv: Sequence[str] | None = None) -> int:
    """The child's side: one JSON request (store, modules, method, run_ids) as the only
    argument; prints the outcomes as JSON."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if len(arguments) != 1:
        print("usage: python -m rlam_jupyter.operations.bundle.reexecute REQUEST", file=sys.stderr)
        return 2
    request = json.loads(arguments[0])
    if request["method"] not in METHODS:
        print(f"unknown method {request['method']!r}; known: {', '.join(METHODS)}", file=sys.stderr)
        return 2
    for module in request["modules"]:
        import_actions(module)
    engine, outcomes = reexecute(Path(request["store"]), request["run_ids"], request["method"])
    print(json.dumps({"engine": engine, "outcomes": [asdict(o) for o in outcomes]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
