"""Checking a proposal against its action's schema and the names bound so far.

The same check serves every origin (a cell, JSON from an agent or the sidebar, a
fork): inputs must name artifacts an earlier step produced, of the declared type;
parameters must validate against the action's model; targets must match its outputs.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from rlam_jupyter.actions.proposal_record import (
    CheckedProposal,
    Proposal,
    ProposalRejected,
    suggest,
)
from rlam_jupyter.actions.registry import ActionSpec, Registry, format_validation_error

PENDING: Any = type("Pending", (), {"__repr__": lambda self: "<bound by an earlier line>"})()
"""Value of a name that an earlier statement of the same cell will bind (types unknown yet)."""


def check(
    proposal: Proposal,
    registry: Registry,
    bound: Mapping[str, Any],
    spec: ActionSpec | None = None,
) -> CheckedProposal:
    """Validate a proposal against its action's schema and the names bound so far.

    ``bound`` maps artifact names available to this step to their current values
    (used to check input types). ``spec``: the action to check against instead of the
    registry's (a recorded ``python`` cell, an action rebuilt from recorded source).
    Raises :class:`ProposalRejected`.
    """
    where: dict[str, Any] = {"line": proposal.line, "col": proposal.col, "action": proposal.action}
    if spec is None:
        spec = registry.get(proposal.action)
    if spec is None:
        raise ProposalRejected(
            f"unknown action {proposal.action!r}", hint=suggest(proposal.action, registry), **where
        )
    sig = f"Expected: {spec.signature()}"
    _check_inputs(proposal, spec, bound, sig, where)
    for pname in proposal.params:
        if pname in spec.inputs:
            raise ProposalRejected(
                f"{pname!r} is an input: pass the name of an artifact produced by an earlier step",
                hint=sig,
                **where,
            )
    missing = [n for n, s in spec.inputs.items() if s.required and n not in proposal.inputs]
    if missing:
        raise ProposalRejected(f"missing required input {missing[0]!r}", hint=sig, **where)
    try:
        model = spec.validate_params(proposal.params)
    except ValidationError as exc:
        raise ProposalRejected(format_validation_error(spec, exc), hint=sig, **where) from exc
    except (TypeError, ValueError) as exc:  # not JSON-serialisable at all
        raise ProposalRejected(
            f"parameters are not plain values: {exc}", hint=sig, **where
        ) from exc
    if proposal.targets and len(proposal.targets) != len(spec.outputs):
        raise ProposalRejected(
            f"{spec.name} produces {len(spec.outputs)} output(s) ({', '.join(spec.outputs) or 'none'}), "
            f"but {len(proposal.targets)} name(s) were given",
            hint=sig,
            **where,
        )
    if len(set(proposal.targets)) != len(proposal.targets):
        raise ProposalRejected("the same name is assigned twice", **where)
    return CheckedProposal(proposal, spec, model, model.model_dump(mode="json"))


def _check_inputs(
    proposal: Proposal,
    spec: ActionSpec,
    bound: Mapping[str, Any],
    sig: str,
    where: dict[str, Any],
) -> None:
    """Each input names an input of the action and an artifact bound so far, of its type."""
    for pname, artifact in proposal.inputs.items():
        if pname not in spec.inputs:
            if pname in spec.params_model.model_fields:
                raise ProposalRejected(
                    f"{pname!r} expects a literal value, but the artifact name {artifact!r} was given",
                    hint=sig,
                    **where,
                )
            raise ProposalRejected(f"unknown input {pname!r} for {spec.name}", hint=sig, **where)
        if artifact not in bound:
            raise ProposalRejected(
                f"{pname}={artifact}: no earlier step of this run produced an artifact named {artifact!r}",
                hint=_bound_hint(artifact, bound),
                **where,
            )
        expected = spec.inputs[pname].annotation
        expected_type = _runtime_type(expected)
        value = bound[artifact]
        if (
            value is not PENDING
            and expected_type is not None
            and not isinstance(value, expected_type)
        ):
            raise ProposalRejected(
                f"{pname}={artifact}: expected a {spec.inputs[pname].type_name}, "
                f"but {artifact!r} is a {type(bound[artifact]).__name__}",
                hint=sig,
                **where,
            )


def _bound_hint(name: str, bound: Mapping[str, Any]) -> str:
    if not bound:
        return "This run has no artifacts yet; produce one first (e.g. `data = load_dataset(name='iris')`)."
    close = difflib.get_close_matches(name, list(bound), n=1, cutoff=0.5)
    if close:
        return f"Did you mean `{close[0]}`?"
    return f"Available: {', '.join(sorted(bound)[:12])}."


def _runtime_type(annotation: Any) -> type | None:
    import typing

    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation if isinstance(annotation, type) and annotation is not object else None
