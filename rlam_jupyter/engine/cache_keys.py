"""Cache keys, and steps served from the cache instead of run.

Key = H(action identity, canonical params, input artifact hashes, seed — for ``seeded``
actions only). A key blind to the action's code (an identity that could not cover it)
never serves and is never stored: a missed hit is acceptable, a wrong hit never is.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rlam_jupyter.actions.identity import ActionIdentity
from rlam_jupyter.actions.registry import ActionSpec
from rlam_jupyter.engine.outputs import record_inputs_used
from rlam_jupyter.engine.recorder import StepFacts, StepOutcome, record_edge, record_step
from rlam_jupyter.engine.run_state import Binding
from rlam_jupyter.engine.trace import StepResult
from rlam_jupyter.errors import StoreReadError
from rlam_jupyter.store.cache import CacheEntry, StepCache
from rlam_jupyter.store.index.model import ArtifactRef
from rlam_jupyter.store.journal import now_us
from rlam_jupyter.store.objects import ObjectStore
from rlam_jupyter.values.digest import digest_bytes
from rlam_jupyter.values.hashing import canonical_json


@dataclass(frozen=True)
class CachePlan:
    """Whether a step may be served from (and stored in) the cache, under which key."""

    key: str | None
    """Recorded with the step; None when the identity is blind to the code."""
    cacheable: bool
    note: str | None = None
    """Why a step that would be cached is not (its identity could not cover its code)."""


def plan_cache(
    spec: ActionSpec,
    identity: ActionIdentity,
    params: Mapping[str, Any],
    inputs: Mapping[str, str],
    seed: int,
) -> CachePlan:
    """The cache plan of a step: ``params`` canonical, ``inputs`` by artifact id
    (``external`` actions and ``cache=False`` never serve)."""
    material = {
        "action": identity.digest,
        "params": params,
        "inputs": dict(inputs),
        "seed": seed if spec.determinism == "seeded" else None,
    }
    key = digest_bytes("cache-key", canonical_json(material))
    cacheable = spec.cache and spec.determinism != "external"
    if cacheable and identity.uncacheable:
        # a key blind to the code must never serve
        note = f"not served from the cache and not cached: {identity.uncacheable}"
        return CachePlan(None, False, note)
    return CachePlan(key, cacheable)


def serve_cached(
    objects: ObjectStore, facts: StepFacts, spec: ActionSpec, hit: CacheEntry
) -> StepResult | None:
    """Record the step as ``cached`` with the outputs of ``hit``, bind them and return
    its result; None (nothing recorded) when the hit cannot be served."""
    if set(hit.outputs) != set(spec.outputs) or any(
        path is None for _, _, path in hit.outputs.values()
    ):
        return None
    t0 = time.perf_counter()
    try:
        values = {name: objects.get(hit.outputs[name][2] or "") for name in spec.outputs}
    except StoreReadError:
        return None  # an object was removed since: run the step instead
    run, step_id = facts.run, facts.step_id
    outputs = {name: hit.outputs[name][0] for name in spec.outputs}
    targets = facts.proposal.targets or spec.outputs
    for target, name in zip(targets, spec.outputs, strict=False):
        artifact_id, kind, path = hit.outputs[name]
        run.bindings[target] = Binding(target, artifact_id, step_id, kind, path, values[name])
        record_edge(run, step_id, artifact_id, "generated", name)
    record_inputs_used(facts)
    duration = (time.perf_counter() - t0) * 1e3
    artifacts = {
        artifact_id: ArtifactRef(artifact_id, kind, path)
        for artifact_id, kind, path in hit.outputs.values()
    }
    record_step(
        facts,
        StepOutcome(
            "cached",
            outputs=outputs,
            cached_from=hit.step_id,
            started_at=now_us(),
            duration_ms=duration,
            artifacts=artifacts,
        ),
    )
    return facts.result(
        "cached",
        duration_ms=duration,
        outputs=outputs,
        values=values,
        cached_from=hit.step_id,
    )


def remember(
    cache: StepCache, plan: CachePlan, step_id: str, spec: ActionSpec, bindings: Sequence[Binding]
) -> None:
    """Store a succeeded step's outputs under its key, when every one has its bytes."""
    if plan.cacheable and plan.key and all(b.object_path for b in bindings):
        cache.put(
            plan.key,
            CacheEntry(
                step_id,
                {
                    name: (b.artifact_id, b.kind, b.object_path)
                    for name, b in zip(spec.outputs, bindings, strict=False)
                },
            ),
        )
