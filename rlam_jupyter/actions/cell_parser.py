"""Reading a ``%%rlam`` body into proposals, never executing it.

The body is Python *syntax* read with :mod:`ast`; nothing in it is evaluated. Each
statement must be ``name = action(kw=literal|name, ...)`` (or a tuple of names for
multi-output actions, or a bare ``action(...)``); literals are bounded in size and
nesting. Only syntax and action names are checked here; the schema check is
:func:`rlam_jupyter.actions.proposal_check.check`.
"""

from __future__ import annotations

import ast
import warnings
from typing import Any

from rlam_jupyter.actions.proposal_record import Proposal, ProposalRejected, suggest
from rlam_jupyter.actions.registry import ActionSpec, Registry

MAX_SOURCE_CHARS = 100_000
MAX_LITERAL_ITEMS = 10_000
MAX_STRING_CHARS = 100_000
MAX_NESTING = 16

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
    params, inputs = _arguments(value, name, registry[name], line, col)
    return Proposal(
        name, params, inputs, targets, origin="cell", line=line, col=col, source_text=text
    )


def _arguments(
    value: ast.Call, name: str, spec: ActionSpec, line: int, col: int
) -> tuple[dict[str, Any], dict[str, str]]:
    """A call's arguments, positional ones named by the action's signature: literal
    parameters, and inputs passed by an artifact's name."""
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
    return params, inputs


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
