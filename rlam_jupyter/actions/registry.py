"""Action types: typed Python functions an agent may *propose*, with a formal schema.

``@action`` keeps intent (name, typed parameters, inputs, declared outputs,
determinism class) apart from implementation (the function body). Parameters are
literal values validated by pydantic in strict JSON mode (``"1"`` is not an int);
inputs are artifacts produced by earlier steps; outputs come from the return
annotation. The JSON Schema of each action is what an LLM sees as a tool.
"""

from __future__ import annotations

import contextlib
import html
import inspect
import json
import types
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, get_args, get_origin, overload

from pydantic import (
    BaseModel,
    ConfigDict,
    PydanticSchemaGenerationError,
    TypeAdapter,
    ValidationError,
    create_model,
)

from rlam_jupyter.actions.identity import ActionIdentity, identify, identify_cell
from rlam_jupyter.values.digest import digest_bytes

Determinism = Literal["pure", "seeded", "external"]
F = TypeVar("F", bound=Callable[..., Any])


class Input:
    """Marker for ``Annotated[T, Input]``: this parameter is an artifact, not a literal."""


@dataclass(frozen=True)
class InputSpec:
    name: str
    annotation: Any
    required: bool

    @property
    def type_name(self) -> str:
        return _type_name(self.annotation)


@dataclass(frozen=True)
class ActionSpec:
    """Everything the schema check and the engine need to know about one action type."""

    name: str
    func: Callable[..., Any]
    version: str
    determinism: Determinism
    requires_approval: bool
    cache: bool
    description: str
    params_model: type[BaseModel]
    inputs: Mapping[str, InputSpec]
    outputs: tuple[str, ...]
    output_types: tuple[Any, ...]
    wants_rng: bool
    source_hash: str
    positional: tuple[str, ...] = field(default=())
    cell_source: str | None = None
    """The code of a ``%%rlam python`` cell: its identity is that source and what it
    imports (it runs in a namespace of its declared inputs only)."""

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(self.params_model.model_fields)

    @property
    def identity(self) -> str:
        """Name, declared version and the body's source: what the action was registered as.
        A step records :meth:`current_identity` instead, which covers what it calls."""
        return f"{self.name}@{self.version}#{self.source_hash[:16]}"

    def current_identity(self, input_types: Iterable[type] = ()) -> ActionIdentity:
        """The identity a step of this action has now: its code and, transitively, the
        user code and package versions it depends on (see :mod:`action_identity`)."""
        if self.cell_source is not None:
            return identify_cell(self.name, self.version, self.cell_source)
        return identify(self.name, self.version, self.func, input_types)

    def params_schema(self) -> dict[str, Any]:
        return self.params_model.model_json_schema()

    def json_schema(self) -> dict[str, Any]:
        """One JSON Schema covering parameters and inputs, as offered to an LLM tool call."""
        params = self.params_schema()
        properties = dict(params.get("properties", {}))
        required = list(params.get("required", []))
        for spec in self.inputs.values():
            properties[spec.name] = {
                "type": "string",
                "description": f"name of an artifact ({spec.type_name}) produced by an earlier step",
                "x-rlam-input": True,
            }
            if spec.required:
                required.append(spec.name)
        schema: dict[str, Any] = {
            "title": self.name,
            "description": self.description,
            "type": "object",
            "properties": properties,
            "required": required,
            "additionalProperties": False,
        }
        if "$defs" in params:
            schema["$defs"] = params["$defs"]
        return schema

    def signature(self) -> str:
        """Human-readable call signature used in error messages."""
        parts = [f"{spec.name}=<{spec.type_name} artifact>" for spec in self.inputs.values()]
        for name, info in self.params_model.model_fields.items():
            default = "" if info.is_required() else f"={info.default!r}"
            parts.append(f"{name}: {_type_name(info.annotation)}{default}")
        outputs = ", ".join(self.outputs)
        return f"{self.name}({', '.join(parts)}) -> {outputs}"

    def validate_params(self, params: Mapping[str, Any]) -> BaseModel:
        """Strict validation, JSON semantics; raises ``ValidationError``."""
        return self.params_model.model_validate_json(json.dumps(params))


class Registry(Mapping[str, ActionSpec]):
    """Registered action types by name; renders as an HTML table in a notebook."""

    def __init__(self) -> None:
        self._actions: dict[str, ActionSpec] = {}

    def __getitem__(self, name: str) -> ActionSpec:
        return self._actions[name]

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._actions))

    def __len__(self) -> int:
        return len(self._actions)

    def add(self, spec: ActionSpec) -> None:
        self._actions[spec.name] = spec

    def remove(self, name: str) -> None:
        self._actions.pop(name, None)

    def tools(self) -> list[dict[str, Any]]:
        """The registry as OpenAI-style tool definitions."""
        return [
            {
                "type": "function",
                "function": {
                    "name": spec.name,
                    "description": spec.description,
                    "parameters": spec.json_schema(),
                },
            }
            for spec in self.values()
        ]

    def __repr__(self) -> str:
        return "\n".join(spec.signature() for spec in self.values())

    def _repr_html_(self) -> str:
        rows = "".join(
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>".format(
                html.escape(spec.name),
                html.escape(spec.description),
                html.escape(", ".join(f"{i.name}: {i.type_name}" for i in spec.inputs.values())),
                html.escape(
                    ", ".join(
                        f"{n}: {_type_name(f.annotation)}"
                        for n, f in spec.params_model.model_fields.items()
                    )
                ),
                html.escape(f"{', '.join(spec.outputs)} · {spec.determinism}"),
            )
            for spec in self.values()
        )
        return (
            "<table class='rlam-table'><thead><tr><th>action</th><th>purpose</th>"
            "<th>inputs</th><th>parameters</th><th>outputs · determinism</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>"
        )


DEFAULT = Registry()
"""Where ``@action`` registers (see :func:`rlam_jupyter.actions.default_registry.registry`)."""
_COLLECTORS: list[Registry] = []
"""While not empty, ``@action`` registers into the last of these instead of the registry."""


@contextlib.contextmanager
def collecting_actions(target: Registry) -> Iterator[Registry]:
    """Send the ``@action`` registrations made inside the block to ``target`` (rebuilding
    recorded actions must not replace the ones the user registered)."""
    _COLLECTORS.append(target)
    try:
        yield target
    finally:
        _COLLECTORS.pop()


@overload
def action(func: F, /) -> F: ...


@overload
def action(
    *,
    name: str | None = None,
    version: str = "1",
    determinism: Determinism | None = None,
    requires_approval: bool = False,
    cache: bool = True,
    outputs: tuple[str, ...] | None = None,
) -> Callable[[F], F]: ...


def action(
    func: F | None = None,
    /,
    *,
    name: str | None = None,
    version: str = "1",
    determinism: Determinism | None = None,
    requires_approval: bool = False,
    cache: bool = True,
    outputs: tuple[str, ...] | None = None,
) -> F | Callable[[F], F]:
    """Register a typed function as an action type (bare ``@action`` or ``@action(...)``).

    Parameters typed with JSON-compatible types (numbers, strings, ``Literal``,
    enums, lists, ``Annotated[..., Field(ge=...)]``) are literal *parameters*; any
    other type (DataFrame, ndarray, estimators, or ``Annotated[T, Input]``) is an
    *input* artifact. A parameter named ``rng`` receives a seeded
    ``numpy.random.Generator``. The function itself is returned unchanged.
    """

    def register(target: F) -> F:
        spec = build_spec(
            target,
            name=name,
            version=version,
            determinism=determinism,
            requires_approval=requires_approval,
            cache=cache,
            outputs=outputs,
        )
        (_COLLECTORS[-1] if _COLLECTORS else DEFAULT).add(spec)
        return target

    if func is not None:
        return register(func)
    return register


def build_spec(
    func: Callable[..., Any],
    *,
    name: str | None = None,
    version: str = "1",
    determinism: Determinism | None = None,
    requires_approval: bool = False,
    cache: bool = True,
    outputs: tuple[str, ...] | None = None,
) -> ActionSpec:
    """Derive an :class:`ActionSpec` from a function's signature and type hints."""
    action_name = name or func.__name__
    if not action_name.isidentifier() or action_name.startswith("_"):
        raise ValueError(f"action name {action_name!r} must be a public Python identifier")
    hints = typing.get_type_hints(func, include_extras=True)
    signature = inspect.signature(func)
    param_fields: dict[str, Any] = {}
    inputs: dict[str, InputSpec] = {}
    wants_rng = False
    positional: list[str] = []
    for pname, parameter in signature.parameters.items():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise TypeError(f"action {action_name}: *args/**kwargs cannot be described by a schema")
        if pname == "rng":
            wants_rng = True
            continue
        if pname not in hints:
            raise TypeError(
                f"action {action_name}: parameter {pname!r} has no type annotation; "
                "annotate it (e.g. `n: int = 3` or `data: pandas.DataFrame`)"
            )
        annotation = hints[pname]
        required = parameter.default is inspect.Parameter.empty
        positional.append(pname)
        if _is_input(annotation):
            inputs[pname] = InputSpec(pname, annotation, required)
        else:
            default = ... if required else parameter.default
            param_fields[pname] = (annotation, default)
    model = create_model(
        f"{action_name}_params",
        __config__=ConfigDict(strict=True, extra="forbid"),
        **param_fields,
    )
    returns = hints.get("return", type(None))
    output_names, output_types = _outputs(action_name, returns, outputs)
    if determinism is None:
        determinism = "seeded" if wants_rng else "pure"
    doc = inspect.getdoc(func) or ""
    return ActionSpec(
        name=action_name,
        func=func,
        version=str(version),
        determinism=determinism,
        requires_approval=requires_approval,
        cache=cache,
        description=doc.split("\n\n")[0].replace("\n", " ").strip() or action_name,
        params_model=model,
        inputs=inputs,
        outputs=output_names,
        output_types=output_types,
        wants_rng=wants_rng,
        source_hash=_source_hash(func),
        positional=tuple(positional),
    )


def _is_input(annotation: Any) -> bool:
    if get_origin(annotation) is typing.Annotated and any(
        meta is Input or isinstance(meta, Input) for meta in get_args(annotation)[1:]
    ):
        return True
    try:
        TypeAdapter(annotation).json_schema()
    except (PydanticSchemaGenerationError, TypeError, ValueError):
        return True
    return False


def _outputs(
    action_name: str, returns: Any, names: tuple[str, ...] | None
) -> tuple[tuple[str, ...], tuple[Any, ...]]:
    if returns is None or returns is type(None):
        return (), ()
    fields = getattr(returns, "_fields", None)
    if names is None and isinstance(fields, tuple):
        hints = typing.get_type_hints(returns)
        return tuple(fields), tuple(hints.get(f, Any) for f in fields)
    if get_origin(returns) is tuple and names is not None:
        args = get_args(returns)
        if len(args) != len(names):
            raise TypeError(
                f"action {action_name}: outputs={names!r} names {len(names)} values but the "
                f"return annotation has {len(args)}"
            )
        return tuple(names), tuple(args)
    if names is not None and len(names) != 1:
        raise TypeError(
            f"action {action_name}: several outputs need a tuple[...] or NamedTuple return annotation"
        )
    return (names[0] if names else "result",), (returns,)


def _source_hash(func: Callable[..., Any]) -> str:
    try:
        source = inspect.getsource(func).encode()
    except (OSError, TypeError):
        code = getattr(func, "__code__", None)
        source = code.co_code if code is not None else repr(func).encode()
    return digest_bytes("source", source)


def _type_name(annotation: Any) -> str:
    """Readable type names for messages: ``float | None``, ``Literal['a', 'b']``, ``list[str]``."""
    origin = get_origin(annotation)
    args = get_args(annotation)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin is Literal:
        return "Literal[" + ", ".join(repr(a) for a in args) + "]"
    if origin in (typing.Union, types.UnionType):
        return " | ".join("None" if a is type(None) else _type_name(a) for a in args)
    if origin is not None:
        name = getattr(origin, "__name__", str(origin))
        return f"{name}[{', '.join(_type_name(a) for a in args)}]"
    if annotation is Any:
        return "Any"
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def format_validation_error(spec: ActionSpec, error: ValidationError) -> str:
    """Turn pydantic's errors into one sentence per problem, naming each parameter."""
    problems = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "(parameters)"
        if item["type"] == "extra_forbidden":
            problems.append(f"unknown parameter {where!r}")
        elif item["type"] == "missing":
            problems.append(f"missing required parameter {where!r}")
        else:
            shown = repr(item.get("input"))
            if len(shown) > 60:
                shown = shown[:57] + "..."
            problems.append(f"{where}={shown}: {item['msg']}")
    return "; ".join(problems)
