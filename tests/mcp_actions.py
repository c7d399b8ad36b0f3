"""Actions the MCP concurrency tests serve (``rlam mcp --actions tests/mcp_actions.py``):
small pure steps that feed each other by name, one of them slow enough that calls overlap."""

from __future__ import annotations

import time
from typing import Annotated

from rlam_jupyter.actions.registry import Input, action


@action
def numbers(start: int, count: int = 3) -> list[int]:
    """The ``count`` integers from ``start``."""
    return list(range(start, start + count))


@action
def nap(values: Annotated[list[int], Input], ms: int = 50, tag: str = "") -> list[int]:
    """``values`` doubled, after sleeping ``ms`` milliseconds (a slow step; ``tag`` only
    tells calls apart, so each is a cache miss)."""
    time.sleep(ms / 1000)
    return [2 * v for v in values]


@action
def total(values: Annotated[list[int], Input]) -> int:
    """The sum of ``values``."""
    return sum(values)
