"""The ``python`` action: one reviewed code cell as a step, rebuilt from what the trace holds.

A ``%%rlam python`` cell is never a registered action (agents never get it as a tool).
Its action spec is built from the cell itself: the source (its only parameter, so its
hash is part of the step), the declared inputs and outputs, and whether the person
said it is pure. Everything needed to build that spec again is recorded with the step,
so a fork, ``replay --verify`` and a bundle's re-execution run the recorded cell the
same way the first run did: :func:`spec_for_recorded_cell`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from pydantic import AfterValidator, ConfigDict, create_model

from rlam_jupyter.actions.registry import ActionSpec, InputSpec
from rlam_jupyter.values.digest import digest_bytes

ACTION_NAME = "python"


def python_spec(
    source: str, inputs: Sequence[str], outputs: Sequence[str], pure: bool
) -> ActionSpec:
    """An action spec for one code cell: its identity is the hash of its source.

    The code runs in a namespace holding only its declared inputs, so it sees exactly
    what the trace says it used. The ``source`` parameter must be that code: a proposal
    carrying other code (a fork's override) is refused by the schema check, so a step
    never runs code other than the code its identity and its approval were for."""
    declared = tuple(outputs)
    code = source

    def same_code(value: str) -> str:
        if value != code:
            raise ValueError(
                "the code of a python step is fixed by its cell (its identity, and what was "
                "reviewed): fork with other inputs, or write a new cell for other code"
            )
        return value

    def run_code(source: str, **values: Any) -> Any:  # source: ``code``, checked above
        namespace: dict[str, Any] = dict(values)
        # dont_inherit: the cell's code must not take this module's __future__ imports
        exec(compile(code, "<%%rlam python>", "exec", dont_inherit=True), namespace)
        missing = [name for name in declared if name not in namespace]
        if missing:
            raise NameError(f"the cell did not define the declared output(s) {missing}")
        if len(declared) == 1:
            return namespace[declared[0]]
        return tuple(namespace[name] for name in declared)

    params = create_model(
        "python_params",
        __config__=ConfigDict(strict=True, extra="forbid"),
        source=(Annotated[str, AfterValidator(same_code)], ...),
    )
    return ActionSpec(
        name=ACTION_NAME,
        func=run_code,
        version="1",
        determinism="pure" if pure else "external",
        requires_approval=False,
        cache=pure,
        description="A reviewed Python cell (escape hatch).",
        params_model=params,
        inputs={name: InputSpec(name, object, True) for name in inputs},
        outputs=declared,
        output_types=tuple(object for _ in declared),
        wants_rng=False,
        source_hash=digest_bytes("source", source.encode()),
        positional=(),
        cell_source=source,
    )


def spec_for_recorded_cell(
    params: Mapping[str, Any],
    input_names: Sequence[str],
    targets: Sequence[str],
    determinism: str | None,
) -> ActionSpec | None:
    """The spec a recorded ``python`` step ran with (None when its source is not recorded)."""
    source = params.get("source")
    if not isinstance(source, str):
        return None
    return python_spec(source, list(input_names), list(targets), pure=determinism != "external")
