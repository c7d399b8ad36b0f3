"""The one action the store tests run: small, deterministic and cheap to record."""

from __future__ import annotations

from rlam_jupyter.actions.registry import Registry, build_spec


def double(x: int) -> int:
    """Twice x."""
    return 2 * x


def double_registry() -> Registry:
    """A registry that holds ``double`` only."""
    actions = Registry()
    actions.add(build_spec(double))
    return actions
