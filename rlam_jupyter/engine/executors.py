"""Where an accepted step's action body runs: this process (``local``) or a Dask cluster.

The engine keeps everything that makes a step reproducible in the kernel — the
check, the policy, the seed, recording and hashing — and hands an executor only the
call itself: the action, its parameters, its inputs and its seed. An executor pins
the seed where it runs the body, so a step gives the same outputs wherever it ran,
and it reports where that was (:class:`Placement`) for the trace.

``dask://HOST:PORT`` sends each call to a ``dask.distributed`` scheduler with
``Client.submit``. Inputs travel by content hash (a store-relative object path the
worker reads) when the workers see the kernel's store, else by value. Steps of a cell
that do not depend on each other can be submitted ahead (:meth:`DaskExecutor.prefetch`);
the engine still records them one by one, in order.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from rlam_jupyter.actions.registry import ActionSpec
from rlam_jupyter.errors import RlamError
from rlam_jupyter.policy import StepTimeout, time_limit
from rlam_jupyter.store.layout import StoreLayout
from rlam_jupyter.store.objects import ObjectStore
from rlam_jupyter.values.determinism import generator, pin_seeds
from rlam_jupyter.values.fingerprint import fingerprint
from rlam_jupyter.values.hashing import Canonical, canonical_json, canonicalize, restore

LOCAL = "local"
DASK_SCHEME = "dask://"


@dataclass(frozen=True)
class Placement:
    """Where a step ran: the host, the executor (``local`` or ``dask://… worker``) and,
    when it is not the kernel's, the environment fingerprint of that process."""

    host: str
    executor: str
    env_id: str | None = None
    env: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class StepCall:
    """One action body to run: what the engine decided, nothing left to decide."""

    spec: ActionSpec
    params: Mapping[str, Any]
    inputs: Mapping[str, Any]
    seed: int
    timeout_s: float | None = None
    input_paths: Mapping[str, str | None] = field(default_factory=dict)
    """Store-relative object path of each input (None when it has no stored bytes)."""
    store_root: Path | None = None

    @property
    def key(self) -> tuple[str, int, str]:
        """What identifies a call within a run: action, seed (it encodes the step's
        position) and parameters; used to match a prefetched task to its step."""
        return (self.spec.identity, self.seed, _params_text(self.params))


@dataclass(frozen=True)
class Execution:
    """An action's outputs by name, where it ran, and the canonical forms a worker
    computed (hashed where the value was made: see :func:`_on_worker`)."""

    outputs: Mapping[str, Any]
    placement: Placement
    canonicals: Mapping[str, Canonical] = field(default_factory=dict)


class Executor(Protocol):
    """Runs action bodies; ``name`` is what ``--executor`` and the trace show."""

    name: str

    def run(self, call: StepCall) -> Execution: ...

    def close(self) -> None: ...


def call_action(
    spec: ActionSpec, params: Mapping[str, Any], inputs: Mapping[str, Any], seed: int
) -> dict[str, Any]:
    """Run an action body exactly as a step does (seeds pinned, ``rng`` handed over);
    returns its outputs by name."""
    kwargs = dict(params)
    kwargs.update(inputs)
    if spec.wants_rng:
        kwargs["rng"] = generator(seed)
    pin_seeds(seed)
    return split_outputs(spec, spec.func(**kwargs))


def split_outputs(spec: ActionSpec, returned: Any) -> dict[str, Any]:
    """Name what an action returned after its declared outputs."""
    if not spec.outputs:
        return {}
    if len(spec.outputs) == 1:
        return {spec.outputs[0]: returned}
    if not isinstance(returned, tuple) or len(returned) != len(spec.outputs):
        raise TypeError(
            f"{spec.name} declares {len(spec.outputs)} outputs ({', '.join(spec.outputs)}) "
            f"but returned {type(returned).__name__}"
        )
    return dict(zip(spec.outputs, returned, strict=False))


class LocalExecutor:
    """Runs the body in the kernel's own process (the default)."""

    name = LOCAL

    def __init__(self) -> None:
        self._placement = Placement(socket.gethostname(), LOCAL)

    def run(self, call: StepCall) -> Execution:
        with time_limit(call.timeout_s):
            outputs = call_action(call.spec, call.params, call.inputs, call.seed)
        return Execution(outputs, self._placement)

    def close(self) -> None:
        return None


# ---------------------------------------------------------------- on the worker


def _on_worker(
    spec: ActionSpec,
    params: Mapping[str, Any],
    values: Mapping[str, Any],
    paths: Mapping[str, str],
    store_root: str | None,
    seed: int,
) -> tuple[dict[str, Any], dict[str, Canonical], Placement]:
    """The Dask task: load inputs by hash from the shared store, pin the seed, run, and
    hash the outputs here. Hashing must see the value the action made: pickling an
    estimator for the trip back can change its bytes (not its state), and the trace
    must hold the bytes a local run would record. Restorable outputs travel as their
    canonical payload only; opaque ones as values."""
    inputs = dict(values)
    if paths:
        assert store_root is not None
        objects = ObjectStore(StoreLayout(Path(store_root)))
        inputs.update({name: objects.get(path) for name, path in paths.items()})
    outputs = call_action(spec, params, inputs, seed)
    canonicals = {name: canonicalize(value) for name, value in outputs.items()}
    values = {name: None if canonicals[name].restorable else v for name, v in outputs.items()}
    env = fingerprint()
    try:
        from distributed import get_worker

        address = get_worker().address
    except (ImportError, ValueError):  # pragma: no cover - run outside a worker
        address = "?"
    placement = Placement(socket.gethostname(), f"dask {address}", env.env_id, env.data)
    return values, canonicals, placement


def _is_file(path: str) -> bool:
    return os.path.isfile(path)


# ---------------------------------------------------------------- Dask


class DaskExecutor:
    """Runs bodies as tasks on a ``dask.distributed`` cluster.

    Give it a scheduler address (``dask://HOST:PORT`` or ``tcp://HOST:PORT``) or an
    existing ``distributed.Client``. The client connects on first use."""

    def __init__(self, address: str | Any) -> None:
        if isinstance(address, str):
            self.address = address.removeprefix(DASK_SCHEME)
            if "://" not in self.address:
                self.address = f"tcp://{self.address}"
            self._client: Any = None
        else:
            self._client = address
            self.address = str(address.scheduler.address)
        self.name = f"{DASK_SCHEME}{self.address.removeprefix('tcp://')}"
        self._shared_roots: dict[Path, bool] = {}
        self._prefetched: dict[tuple[str, int, str], Any] = {}
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        if self._client is None:
            try:
                from distributed import Client
            except ImportError as exc:
                raise RlamError(
                    "the Dask executor needs dask.distributed: pip install 'rlam-jupyter[cluster]'"
                ) from exc
            try:
                self._client = Client(self.address, timeout="10s")  # type: ignore[no-untyped-call]
            except OSError as exc:
                raise RlamError(
                    f"cannot reach the Dask scheduler at {self.address} ({exc}); start one with "
                    "`dask scheduler` and `dask worker ADDRESS`, or use `--executor local`"
                ) from exc
        return self._client

    def shares_store(self, root: Path, probe: str) -> bool:
        """True when the workers see the kernel's store: a worker finds an object the
        kernel wrote (checked once per store; no file is written for the check)."""
        known = self._shared_roots.get(root)
        if known is None:
            future = self.client.submit(_is_file, str(root / probe), pure=False)
            known = bool(future.result(timeout=30))
            self._shared_roots[root] = known
        return known

    def submit(self, call: StepCall) -> Any:
        """Send one call to the cluster; returns its future."""
        values = dict(call.inputs)
        paths: dict[str, str] = {}
        stored = {n: p for n, p in call.input_paths.items() if p is not None}
        if call.store_root is not None and stored:
            first = next(iter(stored.values()))
            if self.shares_store(call.store_root, first):
                paths = stored
                for name in paths:
                    values.pop(name, None)
        key = f"rlam-{call.spec.name}-{call.seed}-{uuid.uuid4().hex[:8]}"
        return self.client.submit(
            _on_worker,
            call.spec,
            dict(call.params),
            values,
            paths,
            str(call.store_root) if call.store_root is not None else None,
            call.seed,
            key=key,
            pure=False,
        )

    def prefetch(self, calls: list[StepCall]) -> None:
        """Submit calls that do not depend on each other now, so they run in parallel;
        :meth:`run` then waits for the matching task instead of submitting again."""
        self.discard_prefetched()
        futures = {call.key: self.submit(call) for call in calls}
        with self._lock:
            self._prefetched = futures

    def discard_prefetched(self) -> None:
        """Cancel prefetched tasks that no step claimed (a cell stopped early)."""
        with self._lock:
            leftovers, self._prefetched = self._prefetched, {}
        for future in leftovers.values():
            with contextlib.suppress(Exception):
                future.cancel()

    def run(self, call: StepCall) -> Execution:
        with self._lock:
            future = self._prefetched.pop(call.key, None)
        if future is None:
            future = self.submit(call)
        try:
            values, canonicals, placement = future.result(timeout=call.timeout_s)
        except TimeoutError:
            future.cancel()
            raise StepTimeout(
                f"the step exceeded the policy's timeout of {call.timeout_s:g} s"
            ) from None
        outputs = {
            name: restore(canonicals[name].kind, canonicals[name].payload)
            if canonicals[name].restorable
            else value
            for name, value in values.items()
        }
        return Execution(outputs, placement, canonicals)

    def close(self) -> None:
        self.discard_prefetched()
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()
            self._client = None


def executor_for(spec: str | None) -> Executor:
    """The executor a ``--executor`` value names: ``local`` or ``dask://HOST:PORT``."""
    text = (spec or LOCAL).strip()
    if text == LOCAL:
        return LocalExecutor()
    if text.startswith((DASK_SCHEME, "tcp://")):
        return DaskExecutor(text)
    raise RlamError(
        f"unknown executor {text!r}: use `local` or `dask://HOST:PORT` "
        "(the address of a running Dask scheduler)"
    )


def _params_text(params: Mapping[str, Any]) -> str:
    try:
        return canonical_json(dict(params)).decode()
    except (TypeError, ValueError):
        return repr(sorted(params.items(), key=lambda kv: kv[0]))
