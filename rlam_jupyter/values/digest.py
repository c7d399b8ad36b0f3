"""The content hash itself: blake3 over a value's kind and its canonical bytes.

Below everything that encodes values (:mod:`.hashing`, :mod:`.figures`), so each of
them hashes the same way without importing the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import blake3

FIGURE_KIND = "figure"
"""The kind of matplotlib figures and axes (hashed from a deterministic rendering)."""


def digest_bytes(kind: str, data: bytes) -> str:
    """blake3 of ``kind`` and ``data``; the kind keeps ``"1"`` and ``1`` apart."""
    return digest_parts(kind, (data,))


def digest_parts(kind: str, parts: Sequence[Any]) -> str:
    """:func:`digest_bytes` of the concatenated ``parts``, without concatenating them."""
    hasher = blake3.blake3(kind.encode() + b"\0")
    for part in parts:
        hasher.update(part)
    return str(hasher.hexdigest())
