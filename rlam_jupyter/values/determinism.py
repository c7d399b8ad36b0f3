"""Seed derivation and pinning: the same run seed and step position give the same randomness.

A step's seed depends only on the run seed and the step's position (``seq``), so a
fork, which keeps positions, re-derives exactly the seeds of its parent.
"""

from __future__ import annotations

import random
import sys
from typing import Any

import blake3

SEED_BITS = 32  # numpy's legacy global state accepts seeds below 2**32


def derive_seed(run_seed: int, seq: int) -> int:
    """H(run seed, step position) reduced to 32 bits."""
    digest = blake3.blake3(f"rlam-step-seed:{run_seed}:{seq}".encode()).digest(length=8)
    return int.from_bytes(digest, "big") % (1 << SEED_BITS)


def pin_seeds(seed: int) -> list[str]:
    """Seed every random source in use; returns the names of what was seeded."""
    random.seed(seed)
    seeded = ["random"]
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed(seed)
        seeded.append("numpy.random")
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.manual_seed(seed)
        seeded.append("torch")
    return seeded


def generator(seed: int) -> Any:
    """A fresh ``numpy.random.Generator`` for actions that take an ``rng`` parameter."""
    import numpy as np

    return np.random.default_rng(seed)
