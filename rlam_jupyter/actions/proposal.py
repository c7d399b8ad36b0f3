"""Proposals: what an agent or a person *wants* to run, parsed and checked, never executed.

A ``%%rlam`` body is Python *syntax* read with :mod:`ast`; nothing in it is evaluated.
Each statement must be ``name = action(kw=literal|name, ...)`` (or a tuple of names
for multi-output actions, or a bare ``action(...)``). The same :class:`Proposal`
comes from JSON (an LLM tool call, a sidebar click). :func:`check` validates a
proposal against the action registry and the names bound so far.
"""

from __future__ import annotations

import ast
import difflib
import json
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from rlam_jupyter.actions.registry import ActionSpec, Registry, format_validation_error
from rlam_jupyter.errors import RlamError

MAX_SOURCE_CHARS = 100_000
MAX_LITERAL_ITEMS = 10_000
MAX_STRING_CHARS = 100_000
MAX_NESTING = 16
Origin = str  # "cell" | "json" | "agent" | "sidebar" | "fork"


class ProposalRejected(RlamError):
    """A proposal failed the syntax, name or schema check; nothing ran."""

    def __init__(
        self,
        reason: str,
        *,
        line: int | None = None,
        col: int | None = None,
        hint: str = "",
        action: str | None = None,
    ) -> None:
        self.reason = reason
        self.line = line
        self.col = col
        self.hint = hint
        self.action = action
        super().__init__(self.message)

    @property
    def message(self) -> str:
        where = f"line {self.line}, column {self.col}: " if self.line is not None else ""
        hint = f" {self.hint}" if self.hint else ""
        return f"{where}{self.reason}.{hint}"


@dataclass(frozen=True)
class Proposal:
    """One proposed step: action, literal params, inputs by bound name, output names."""

    action: str
    params: Mapping[str, Any] = field(default_factory=dict)
    inputs: Mapping[str, str] = field(default_factory=dict)
    targets: tuple[str, ...] = ()
    origin: Origin = "cell"
    line: int | None = None
    col: int | None = None
    source_text: str | None = None
    positional: tuple[Any, ...] = ()

    @classmethod
    def from_json(cls, data: str | Mapping[str, Any], origin: Origin = "json") -> Proposal:
        """Build from ``{"action": ..., "params": {...}, "inputs": {...}, "targets": [...]}``."""
        if isinstance(data, str):
            try:
                data = json.loads(data)
            except json.JSONDecodeError as exc:
                raise ProposalRejected(
                    f"proposal is not valid JSON ({exc.msg} at {exc.pos})"
                ) from exc
        if not isinstance(data, Mapping):
            raise ProposalRejected("a proposal must be a JSON object with an 'action' key")
        unknown = set(data) - {"action", "params", "inputs", "targets"}
        if unknown:
            raise ProposalRejected(f"unknown proposal keys {sorted(unknown)}")
        name = data.get("action")
        params = data.get("params", {}) or {}
        inputs = data.get("inputs", {}) or {}
        targets = data.get("targets", []) or []
        if not isinstance(name, str) or not name:
            raise ProposalRejected("'action' must be a non-empty string")
        if not isinstance(params, Mapping) or not all(isinstance(k, str) for k in params):
            raise ProposalRejected("'params' must be an object of parameter values", action=name)
        if not isinstance(inputs, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in inputs.items()
        ):
            raise ProposalRejected(
                "'inputs' must map parameter names to artifact names", action=name
            )
        if not isinstance(targets, list) or not all(
            isinstance(t, str) and t.isidentifier() for t in targets
        ):
            raise ProposalRejected("'targets' must be a list of identifiers", action=name)
        return cls(name, dict(params), dict(inputs), tuple(targets), origin=origin)

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "params": dict(self.params),
            "inputs": dict(self.inputs),
            "targets": list(self.targets),
        }

    def as_source(self) -> str:
        """The proposal written as a ``%%rlam`` statement (for display and the trace)."""
        args = [f"{k}={v}" for k, v in self.inputs.items()]
        args += [f"{k}={v!r}" for k, v in self.params.items()]
        call = f"{self.action}({', '.join(args)})"
        return f"{', '.join(self.targets)} = {call}" if self.targets else call


@dataclass(frozen=True)
class CheckedProposal:
    """A proposal that passed the check: validated params and resolved input names."""

    proposal: Proposal
    spec: ActionSpec
    params: BaseModel
    params_json: dict[str, Any]


# ---------------------------------------------------------------- cell parsing

_FORBIDDEN = {
    ast.Import: "imports are not allowed",
    ast.ImportFrom: "imports are not allowed",
    ast.FunctionDef: "function definitions are not allowed (register an @action instead)",
    ast.AsyncFunctionDef: "function definitions are not allowed (register an @action instead)",
    ast.ClassDef: "class definitions are not allowed",
    ast.For: "loops are not allowed; write one statement per step",
    ast.While: "loops are not allowed; write one statement per step",
    ast.If: "conditionals are not allowed; write one statement per step",
    ast.With: "with-blocks are not allowed",
    ast.Try: "try-blocks are not allowed (failures are recorded by the engine)",
    ast.Delete: "del is not allowed",
    ast.Global: "global is not allowed",
    ast.AugAssign: "augmented assignment is not allowed",
    ast.AnnAssign: "annotated assignment is not allowed",
    ast.Return: "return is not allowed",
    ast.Raise: "raise is not allowed",
    ast.Assert: "assert is not allowed",
    ast.Pass: "pass is not a step",
}

_EXPRESSION_NAMES = {
    ast.Attribute: "attribute access",
    ast.Subscript: "subscripts",
    ast.Lambda: "lambdas",
    ast.ListComp: "comprehensions",
    ast.SetComp: "comprehensions",
    ast.DictComp: "comprehensions",
    ast.GeneratorExp: "generator expressions",
    ast.JoinedStr: "f-strings",
    ast.BinOp: "arithmetic (write the resulting value)",
    ast.BoolOp: "boolean operators",
    ast.Compare: "comparisons",
    ast.IfExp: "conditional expressions",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.NamedExpr: "walrus assignments",
    ast.Starred: "star-unpacking",
    ast.Set: "sets (use a list)",
}


def parse_cell(source: str, registry: Registry) -> list[Proposal]:
    """Parse a ``%%rlam`` body into proposals; raise :class:`ProposalRejected` on the first problem.

    Only syntax and names of actions are checked here; :func:`check` does the schema.
    """
    if len(source) > MAX_SOURCE_CHARS:
        raise ProposalRejected(
            f"the cell has {len(source)} characters, more than the {MAX_SOURCE_CHARS} allowed",
            hint="Load large data with an action (e.g. load_csv) instead of literals.",
        )
    try:
        with warnings.catch_warnings():  # e.g. invalid escape sequences: the rejection says enough
            warnings.simplefilter("ignore")
            tree = ast.parse(source, mode="exec")
    except SyntaxError as exc:
        raise ProposalRejected(
            f"not valid syntax: {exc.msg}", line=exc.lineno, col=exc.offset
        ) from exc
    except (ValueError, RecursionError, MemoryError) as exc:
        raise ProposalRejected(f"the cell cannot be parsed: {exc}") from exc
    lines = source.splitlines()
    return [_statement(node, registry, lines) for node in tree.body]


def _statement(node: ast.stmt, registry: Registry, lines: list[str]) -> Proposal:
    line, col = node.lineno, node.col_offset + 1
    text = "\n".join(lines[node.lineno - 1 : (node.end_lineno or node.lineno)]).strip()
    for kind, reason in _FORBIDDEN.items():
        if isinstance(node, kind):
            raise ProposalRejected(reason, line=line, col=col, hint=_SHAPE_HINT)
    targets: tuple[str, ...] = ()
    if isinstance(node, ast.Assign):
        if len(node.targets) != 1:
            raise ProposalRejected("chained assignment is not allowed", line=line, col=col)
        targets = _targets(node.targets[0])
        value = node.value
    elif isinstance(node, ast.Expr):
        value = node.value
    else:
        raise ProposalRejected(
            f"{type(node).__name__} statements are not allowed",
            line=line,
            col=col,
            hint=_SHAPE_HINT,
        )
    if not isinstance(value, ast.Call):
        raise ProposalRejected(
            f"expected a call to an action, found {_describe(value)}",
            line=value.lineno,
            col=value.col_offset + 1,
            hint=_SHAPE_HINT,
        )
    if not isinstance(value.func, ast.Name):
        raise ProposalRejected(
            f"the called thing must be an action name, not {_describe(value.func)}",
            line=value.func.lineno,
            col=value.func.col_offset + 1,
            hint=_SHAPE_HINT,
        )
    name = value.func.id
    if name not in registry:
        raise ProposalRejected(
            f"unknown action {name!r}",
            line=line,
            col=value.func.col_offset + 1,
            hint=suggest(name, registry),
            action=name,
        )
    spec = registry[name]
    params: dict[str, Any] = {}
    inputs: dict[str, str] = {}
    names = list(spec.positional)
    if len(value.args) > len(names):
        raise ProposalRejected(
            f"{name} takes at most {len(names)} arguments, {len(value.args)} given",
            line=line,
            col=col,
            hint=f"Signature: {spec.signature()}",
            action=name,
        )
    pairs: list[tuple[str, ast.expr]] = list(zip(names, value.args, strict=False))
    for keyword in value.keywords:
        if keyword.arg is None:
            raise ProposalRejected(
                "**-unpacking is not allowed",
                line=keyword.value.lineno,
                col=keyword.value.col_offset + 1,
                action=name,
            )
        pairs.append((keyword.arg, keyword.value))
    seen: set[str] = set()
    for pname, expr in pairs:
        if pname in seen:
            raise ProposalRejected(
                f"{pname!r} is given twice", line=expr.lineno, col=expr.col_offset + 1, action=name
            )
        seen.add(pname)
        if isinstance(expr, ast.Name):
            inputs[pname] = expr.id
        else:
            params[pname] = _literal(expr, name, pname, 0)
    return Proposal(
        name, params, inputs, targets, origin="cell", line=line, col=col, source_text=text
    )


_SHAPE_HINT = "Each line must look like `name = action(param=value, input=name)`."


def _targets(target: ast.expr) -> tuple[str, ...]:
    if isinstance(target, ast.Name):
        return (target.id,)
    if isinstance(target, ast.Tuple) and all(isinstance(e, ast.Name) for e in target.elts):
        return tuple(e.id for e in target.elts if isinstance(e, ast.Name))
    raise ProposalRejected(
        f"can only assign to plain names, not {_describe(target)}",
        line=target.lineno,
        col=target.col_offset + 1,
        hint=_SHAPE_HINT,
    )


def _literal(expr: ast.expr, action_name: str, pname: str, depth: int) -> Any:
    where: dict[str, Any] = {"line": expr.lineno, "col": expr.col_offset + 1, "action": action_name}
    if depth > MAX_NESTING:
        raise ProposalRejected(f"{pname}: literal nested deeper than {MAX_NESTING} levels", **where)
    if isinstance(expr, ast.Constant):
        value = expr.value
        if isinstance(value, (bytes, complex)) or value is Ellipsis:
            raise ProposalRejected(
                f"{pname}: {type(value).__name__} literals are not allowed", **where
            )
        if isinstance(value, str) and len(value) > MAX_STRING_CHARS:
            raise ProposalRejected(
                f"{pname}: string literal of {len(value)} characters is too large "
                f"(limit {MAX_STRING_CHARS})",
                **where,
            )
        return value
    if isinstance(expr, ast.UnaryOp) and isinstance(expr.op, (ast.USub, ast.UAdd)):
        operand = expr.operand
        number = operand.value if isinstance(operand, ast.Constant) else None
        if type(number) in (int, float):
            assert isinstance(number, (int, float))
            return -number if isinstance(expr.op, ast.USub) else number
        raise ProposalRejected(f"{pname}: a sign may only precede a number", **where)
    if isinstance(expr, (ast.List, ast.Tuple)):
        if len(expr.elts) > MAX_LITERAL_ITEMS:
            raise ProposalRejected(
                f"{pname}: list literal of {len(expr.elts)} items is too large "
                f"(limit {MAX_LITERAL_ITEMS})",
                **where,
            )
        return [_literal(e, action_name, pname, depth + 1) for e in expr.elts]
    if isinstance(expr, ast.Dict):
        if len(expr.keys) > MAX_LITERAL_ITEMS:
            raise ProposalRejected(f"{pname}: dict literal is too large", **where)
        result: dict[str, Any] = {}
        for key, item in zip(expr.keys, expr.values, strict=False):
            if not (isinstance(key, ast.Constant) and isinstance(key.value, str)):
                raise ProposalRejected(f"{pname}: dict keys must be string literals", **where)
            result[key.value] = _literal(item, action_name, pname, depth + 1)
        return result
    if isinstance(expr, ast.Name):
        raise ProposalRejected(
            f"{pname}: names inside literals are not allowed ({expr.id!r})",
            hint="Pass artifacts directly as an argument, e.g. `data=df`.",
            **where,
        )
    if isinstance(expr, ast.Call):
        raise ProposalRejected(
            f"{pname}: calls inside arguments are not allowed ({_describe(expr)})",
            hint="Make it a step of its own and pass its result by name.",
            **where,
        )
    raise ProposalRejected(f"{pname}: {_describe(expr)} not allowed in a %%rlam cell", **where)


def _describe(node: ast.AST) -> str:
    for kind, label in _EXPRESSION_NAMES.items():
        if isinstance(node, kind):
            if isinstance(node, ast.Attribute):
                return f"attribute access `{_short(node)}`"
            return label
    if isinstance(node, ast.Call):
        return f"a call `{_short(node)}`"
    if isinstance(node, ast.Constant):
        return f"a constant {node.value!r:.40}"
    if isinstance(node, ast.Name):
        return f"the name {node.id!r}"
    return f"{type(node).__name__} expressions"


def _short(node: ast.AST) -> str:
    text = ast.unparse(node)
    return text if len(text) <= 50 else text[:47] + "..."


def suggest(name: str, candidates: Iterable[str]) -> str:
    """'Did you mean ...?' for an unknown action name."""
    matches = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.5)
    if matches:
        return f"Did you mean `{matches[0]}`? (`rlam_jupyter.registry()` lists all actions)"
    return "`rlam_jupyter.registry()` lists the registered actions."


# ---------------------------------------------------------------- schema check

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
