"""Options that a ``%rlam`` command and its ``rlam`` twin share, declared once.

Each is a list of ``(flags, keywords)`` for ``add_argument``: the CLI adds them to its
argparse sub-command, a magic command applies them with
:func:`rlam_jupyter.frontends.magics.commands.magic_options`. Nothing here imports IPython,
so ``rlam --help`` does not load it.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Iterable, Sequence
from typing import Any

from rlam_jupyter.errors import RlamError

Option = tuple[Sequence[str], dict[str, Any]]

RUN = (["run"], {"help": "run id, run name, or unique id prefix"})
REPLAY: list[Option] = [
    RUN,
    (["--upto"], {"default": None, "help": "last step to restore (number or step id)"}),
    (
        ["--verify"],
        {"action": "store_true", "help": "re-execute each step and compare output hashes"},
    ),
]
DIFF: list[Option] = [(["run_a"], {}), (["run_b"], {})]
FORK: list[Option] = [
    RUN,
    (["--at"], {"required": True, "help": "step to re-propose (number or step id)"}),
    (
        ["--set"],
        {
            "dest": "overrides",
            "action": "append",
            "default": [],
            "metavar": "NAME=VALUE",
            "help": "parameter override (Python/JSON literal), repeatable",
        },
    ),
    (["--name"], {"default": None, "help": "name of the new run"}),
    (["--no-downstream"], {"action": "store_true", "help": "re-run only the step at --at"}),
]
AUDIT: list[Option] = [
    (["run"], {"nargs": "?", "default": None, "help": "run id, prefix or name (default: all)"}),
    (
        ["--no-reproduce"],
        {"action": "store_true", "help": "skip re-execution (no reproducibility metric)"},
    ),
]


def _literal(text: str) -> Any:
    """``--set`` values: Python or JSON literals; anything else is taken as a string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        pass
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """``["C=0.1", "model=random_forest"]`` → ``{"C": 0.1, "model": "random_forest"}``."""
    overrides: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip().isidentifier():
            raise RlamError(
                f"--set {item!r}: write name=value, e.g. --set C=0.1 or --set model=random_forest"
            )
        overrides[key.strip()] = _literal(value.strip())
    return overrides
