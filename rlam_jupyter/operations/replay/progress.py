"""The progress bar of long replays and verifications (tqdm.auto: a widget in a notebook,
text in a terminal); short ones show none."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

PROGRESS_MIN_STEPS = 200
"""Replays of at least this many steps show a progress bar (tqdm.auto)."""


def progress(items: list[Any], desc: str) -> Iterable[Any]:
    """``items``, wrapped in a progress bar when there are at least ``PROGRESS_MIN_STEPS``."""
    if len(items) < PROGRESS_MIN_STEPS:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, unit="step", leave=False)
