"""The ways of running the workflow that the evaluation compares (see the package docstring)."""

from __future__ import annotations

import contextlib
import json
import secrets
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import rlam_jupyter.engine.engine as engine_module
from rlam_jupyter.actions.proposal import Proposal
from rlam_jupyter.engine import Engine, Run
from rlam_jupyter.operations.evaluation.metrics import (
    Event,
    Kept,
    Repetition,
    TextKept,
    TraceKept,
    recorded_hashes,
)
from rlam_jupyter.operations.evaluation.workflow import (
    FORK_AT,
    FORK_C,
    RUN_SEED,
    Experiment,
    Feedback,
    Intent,
    StandIn,
    fork_plan,
    naive_snippet,
    output_repr,
    outputs_of,
    plan,
    seeded_tools,
)
from rlam_jupyter.operations.replay import fork
from rlam_jupyter.values.hashing import hash_value


class Mode(Protocol):
    name: str

    def repeat(self, experiment: Experiment, index: int, workdir: Path) -> Repetition: ...


class Observer:
    """The harness's eyes: records events and output hashes as they happen, and keeps the
    mode's wall clock, paused while the harness itself is busy (hashing, bookkeeping)."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.hashes: list[tuple[str, str]] = []
        self.wall_s = 0.0
        self._since: float | None = None

    def start(self) -> None:
        if self._since is None:
            self._since = time.perf_counter()

    def stop(self) -> None:
        if self._since is not None:
            self.wall_s += time.perf_counter() - self._since
            self._since = None

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        self.stop()
        try:
            yield
        finally:
            self.start()

    def proposed(self, intent: Intent, key: str) -> None:
        with self.paused():
            self.events.append(Event("proposal", intent.action, intent.params, key))
            self.events.append(Event("decision", intent.action, intent.params, key))

    def failed(self, intent: Intent, key: str, error_type: str, message: str) -> None:
        with self.paused():
            self.events.append(
                Event(
                    "failure",
                    intent.action,
                    intent.params,
                    key,
                    error_type=error_type,
                    error_message=message,
                    injected=intent.fix is not None,
                )
            )

    def executed(
        self, label: str, intent: Intent, key: str, values: Mapping[str, Any], own: bool = True
    ) -> None:
        """An execution and its outputs; ``own=False`` when the mode's recorded hashes
        (not the harness's) are what reproducibility is judged on."""
        with self.paused():
            digests = tuple(hash_value(v) for v in values.values())
            if own:
                self.hashes.extend(
                    (f"{label}:{n}", d) for n, d in zip(values, digests, strict=True)
                )
            reprs = tuple(r for r in (output_repr(v) for v in values.values()) if r)
            self.events.append(
                Event("execution", intent.action, intent.params, key, digests, reprs)
            )

    def repetition(self, mode: str, experiment: Experiment, index: int, kept: Kept) -> Repetition:
        return Repetition(
            mode,
            experiment,
            index,
            self.wall_s,
            tuple(self.hashes),
            self.events,
            [kept.has(e) for e in self.events],
        )


def _agent_loop(
    observer: Observer, stand_in: StandIn, step: Callable[[Intent, bool], Feedback]
) -> None:
    """Propose, run, feed back, until the agent is done; the clock runs meanwhile."""
    feedback: Feedback | None = None
    steps = 0
    observer.start()
    while (intent := stand_in.next(feedback)) is not None:
        recovering = feedback is not None and not feedback.ok
        feedback = step(intent, recovering)
        steps += 1
        if steps > 50:
            raise RuntimeError("the stand-in LLM did not finish within 50 steps")
    observer.stop()


class ScriptMode:
    """A plain script: fixed seeds, a silent ``try/except`` for the known fault, and a
    results file (``metrics.json``) as the only thing kept."""

    name = "script"

    def repeat(self, experiment: Experiment, index: int, workdir: Path) -> Repetition:
        observer = Observer()
        tools = seeded_tools()
        results: dict[str, Any] = {}

        def workflow(C: float, label: str) -> None:
            ns: dict[str, Any] = {}
            for intent in plan("linear", C):
                kwargs = {**intent.params, **{p: ns[n] for p, n in intent.inputs.items()}}
                tool = tools[intent.action]
                if experiment == "failure" and intent.action == "split":
                    try:  # the author was unsure of the column name, and hid the doubt
                        returned = tool(**{**kwargs, "target": "diagnosis"})
                    except KeyError as exc:
                        fault = Intent(
                            intent.action, {**intent.params, "target": "diagnosis"}, fix=intent
                        )
                        observer.failed(fault, "", type(exc).__name__, str(exc))
                        returned = tool(**kwargs)
                else:
                    returned = tool(**kwargs)
                values = outputs_of(intent, returned)
                ns.update(values)
                observer.executed(label, intent, "", values)
            results[label] = ns["metrics"]
            (workdir / "metrics.json").write_text(json.dumps(results, sort_keys=True))

        observer.start()
        workflow(1.0, "main")
        if experiment == "fork":
            workflow(FORK_C, "fork")  # a script re-runs everything
        observer.stop()
        kept = TextKept([(workdir / "metrics.json").read_text()])
        return observer.repetition(self.name, experiment, index, kept)


class NaiveLamMode:
    """An agent that ``exec``\\ s the LLM's snippets unchecked in one namespace. It is the
    baseline being criticised, so its snippets run in this process without any guard."""

    name = "naive_lam"
    cell_source = 'agent.run("Train and evaluate a classifier on the breast cancer data")'

    def __init__(self, stand_in_factory: Callable[[Sequence[Intent]], StandIn]) -> None:
        self.stand_in_factory = stand_in_factory

    def repeat(self, experiment: Experiment, index: int, workdir: Path) -> Repetition:
        observer = Observer()
        namespace: dict[str, Any] = {}

        def step_for(label: str) -> Callable[[Intent, bool], Feedback]:
            def step(intent: Intent, recovering: bool) -> Feedback:
                source = naive_snippet(intent)
                observer.proposed(intent, source)
                try:
                    exec(compile(source, "<llm snippet>", "exec"), namespace)
                except Exception as exc:
                    observer.failed(intent, source, type(exc).__name__, str(exc))
                    return Feedback(False, f"{type(exc).__name__}: {exc}")
                values = {t: namespace[t] for t in intent.targets}
                observer.executed(label, intent, source, values)
                return Feedback(True)

            return step

        _agent_loop(observer, self.stand_in_factory(plan(experiment)), step_for("main"))
        displayed = [json.dumps(namespace.get("metrics"), sort_keys=True)]
        if experiment == "fork":
            # The notebook way: edit the training cell, re-run it and what follows.
            _agent_loop(observer, self.stand_in_factory(fork_plan()), step_for("fork"))
            displayed.append(json.dumps(namespace.get("metrics"), sort_keys=True))
        kept = TextKept([self.cell_source, *displayed])
        return observer.repetition(self.name, experiment, index, kept)


@contextlib.contextmanager
def seeds_unpinned() -> Iterator[None]:
    """Disable the engine's seed derivation: every step draws a fresh seed from the OS.

    Used to show that reproducibility success is measured, not assumed.
    """
    original = engine_module.__dict__["derive_seed"]

    def fresh(run_seed: int, seq: int) -> int:
        return secrets.randbelow(2**32)

    engine_module.__dict__["derive_seed"] = fresh
    try:
        yield
    finally:
        engine_module.__dict__["derive_seed"] = original


class RlamMode:
    """This package: proposals checked against the action schemas, executed by the engine
    (pinned seeds, hashed outputs), recorded in a trace store of its own per repetition."""

    name = "rlam"

    def __init__(
        self,
        stand_in_factory: Callable[[Sequence[Intent]], StandIn],
        pin_seeds: bool = True,
        before_audit: Callable[[Path], None] | None = None,
    ) -> None:
        self.stand_in_factory = stand_in_factory
        self.pin_seeds = pin_seeds
        self.before_audit = before_audit

    def repeat(self, experiment: Experiment, index: int, workdir: Path) -> Repetition:
        with contextlib.nullcontext() if self.pin_seeds else seeds_unpinned():
            return self._repeat(experiment, index, workdir)

    def _repeat(self, experiment: Experiment, index: int, workdir: Path) -> Repetition:
        store = workdir / "store"
        observer = Observer()
        observer.start()
        engine = Engine(str(store))

        def step_for(run: Run, label: str) -> Callable[[Intent, bool], Feedback]:
            def step(intent: Intent, recovering: bool) -> Feedback:
                failed = run.results[-1].step_id if recovering and run.results else None
                proposal = Proposal(
                    intent.action, dict(intent.params), dict(intent.inputs), intent.targets, "agent"
                )
                result = engine.execute(run, proposal, use_cache=False, recovers=failed)
                observer.proposed(intent, result.step_id)
                if result.error is not None:
                    observer.failed(intent, result.step_id, result.error.type, result.error.message)
                    return Feedback(False, f"{result.error.type}: {result.error.message}")
                observer.executed(label, intent, result.step_id, result.values, own=False)
                return Feedback(True)

            return step

        run = engine.start_run(f"paper-eval-{experiment}", seed=RUN_SEED)
        _agent_loop(observer, self.stand_in_factory(plan(experiment)), step_for(run, "main"))
        observer.start()
        engine.end_run(run)
        run_ids = [run.run_id]
        if experiment == "fork":
            run_ids.append(self._fork(engine, run, store, observer))
        observer.stop()
        if self.before_audit is not None:
            self.before_audit(store)
        observer.hashes = list(recorded_hashes(store, run_ids))
        return observer.repetition(self.name, experiment, index, TraceKept.read(store))

    @staticmethod
    def _fork(engine: Any, parent: Any, store: Path, observer: Observer) -> str:
        """The product's own fork (``rlam_jupyter.operations.replay.fork``): the steps before the
        training step are shared by reference, training is re-proposed with the new
        ``C`` and evaluation re-runs after it."""
        at = [r for r in parent.results if r.ok][FORK_AT].seq
        observer.start()
        report = fork(parent.run_id, at, {"C": FORK_C}, store=str(store), engine=engine)
        observer.stop()
        for intent, result in zip(fork_plan(), report.results, strict=True):
            observer.proposed(intent, result.step_id)
            if result.error is not None:
                observer.failed(intent, result.step_id, result.error.type, result.error.message)
            else:
                observer.executed("fork", intent, result.step_id, result.values, own=False)
        return str(report.run_id)


@dataclass
class UpstreamKept:
    """PyPI ``rlam``'s in-memory ``ExecutionTrace`` graphs (nothing of them is on disk)."""

    graphs: list[Any]

    def has(self, event: Event) -> bool:
        nodes = [node for graph in self.graphs for node in graph.nodes.values()]
        same = [
            n
            for n in nodes
            if n["action"].action_type == event.action
            and dict(n["action"].parameters) == dict(event.params)
        ]
        if event.kind == "proposal":
            return bool(same)
        if event.kind == "decision":
            return False  # upstream executes whatever it is given: there is no decision
        if event.kind == "execution":
            return any(
                n["status"] == "SUCCESS" and _upstream_hashes(n["output"]) == event.output_hashes
                for n in same
            )
        return any(
            n["status"] == "FAILED"
            and event.error_type in (n["error"] or "")
            and event.error_message in (n["error"] or "")
            for n in same
        )


def _upstream_hashes(output: Any) -> tuple[str, ...]:
    values = output if isinstance(output, tuple) else (output,)
    return tuple(hash_value(v) for v in values)


def upstream_available() -> bool:
    """True when PyPI ``rlam`` (0.1.x) can be imported."""
    try:
        import rlam  # noqa: F401
    except ImportError:
        return False
    return True


class UpstreamMode:
    """PyPI ``rlam`` 0.1.0 as its README drives it: ``Action`` + ``execute_action`` with
    seeded tool functions, results added to an ``ExecutionTrace``; recovery with
    ``add_recovery``; the fork with ``fork_trace``."""

    name = "upstream"

    def __init__(self, stand_in_factory: Callable[[Sequence[Intent]], StandIn]) -> None:
        self.stand_in_factory = stand_in_factory
        from rlam.utils import compute_environment_hash

        self.env_hash = compute_environment_hash()  # once: it costs ~20-100 ms a call

    def repeat(self, experiment: Experiment, index: int, workdir: Path) -> Repetition:
        from rlam import Action, ExecutionTrace, execute_action, fork_trace

        tools = seeded_tools()
        observer = Observer()
        namespace: dict[str, Any] = {}
        counter = iter(range(1, 10_000))

        def step_for(trace: Any, label: str) -> Callable[[Intent, bool], Feedback]:
            def step(intent: Intent, recovering: bool) -> Feedback:
                action_id = f"A{next(counter)}"
                raised: list[Exception] = []

                def tool(**kwargs: Any) -> Any:
                    try:
                        return tools[intent.action](**kwargs)
                    except Exception as exc:  # seen by the harness, not kept by upstream
                        raised.append(exc)
                        raise

                action = Action(
                    action_id=action_id,
                    action_type=intent.action,
                    inputs={p: namespace[n] for p, n in intent.inputs.items()},
                    parameters=dict(intent.params),
                    environment_hash=self.env_hash,
                )
                result = execute_action(action, tool)
                parents = list(trace.graph.nodes)[-1:]
                if recovering:
                    trace.add_recovery(parents[0], result)
                else:
                    trace.add_result(result, parents=parents)
                observer.proposed(intent, action_id)
                if result.status == "FAILED":
                    observer.failed(intent, action_id, type(raised[0]).__name__, str(raised[0]))
                    return Feedback(False, result.error or "")
                values = outputs_of(intent, result.output)
                namespace.update(values)
                observer.executed(label, intent, action_id, values)
                return Feedback(True)

            return step

        trace = ExecutionTrace()
        graphs = [trace.graph]
        _agent_loop(observer, self.stand_in_factory(plan(experiment)), step_for(trace, "main"))
        if experiment == "fork":
            observer.start()
            fork_point = [
                n for n, d in trace.graph.nodes.items() if d["action"].action_type == "scale"
            ][-1]
            forked = fork_trace(trace, fork_point)
            observer.stop()
            graphs.append(forked.graph)
            _agent_loop(observer, self.stand_in_factory(fork_plan()), step_for(forked, "fork"))
        return observer.repetition(self.name, experiment, index, UpstreamKept(graphs))
