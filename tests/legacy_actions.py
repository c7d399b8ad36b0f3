"""An action whose output is a plain Python object, so it is stored by pickle.

``tests/data/legacy_store`` was recorded with this module by the release that hashed such
objects with the older ``pickle`` encoding; ``tests/test_legacy_store.py`` checks that the
current code still restores, verifies, forks and exports that store.
"""

from __future__ import annotations

import numpy as np

from rlam_jupyter import action


class Profile:
    """A small model-like object: shared label strings and a seeded NumPy array."""

    def __init__(self, label: str, weights: np.ndarray) -> None:
        self.label = label
        self.labels = [label, label]
        self.weights = weights

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Profile)
            and other.label == self.label
            and other.labels == self.labels
            and np.array_equal(other.weights, self.weights)
        )

    __hash__ = None  # type: ignore[assignment]


@action
def make_profile(rng: np.random.Generator, label: str = "base", size: int = 4) -> Profile:
    """A seeded random profile."""
    return Profile(label, rng.normal(size=size))


@action
def profile_total(profile: Profile) -> float:
    """The sum of a profile's weights."""
    return float(profile.weights.sum())
