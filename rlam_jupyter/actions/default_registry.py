"""The registry a kernel starts with: the user's ``@action`` functions and the built-in
catalogue, which loads on first use."""

from __future__ import annotations

from rlam_jupyter.actions import registry as actions
from rlam_jupyter.actions.registry import Registry


def registry() -> Registry:
    """All registered actions (the built-in catalogue is loaded on first use)."""
    from rlam_jupyter.actions import catalogue  # noqa: F401 - lazy: pandas, scikit-learn

    return actions.DEFAULT
