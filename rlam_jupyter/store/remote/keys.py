"""How the files of a local store map to object keys, and back.

Three kinds of files, three rules, none needing a read-modify-write of a shared key:

* **logs** (``journal/<run>/<writer>.jsonl``, ``cache/<xx>/<writer>.jsonl``) grow by
  appends from one writer: each upload sends the bytes since the last one, up to the
  last complete line, as its own key ``journal/<run>/<writer>/<start offset>.jsonl``;
* **immutable** files (``objects/…``, Parquet parts) are uploaded once under their path;
* **manifests** (``parquet/_manifests/<run>.json``) are replaced by the one compactor of
  their run: uploaded under their path, newest generation wins.

Everything else (run indexes, locks, temp files) is derived or private and stays local.
"""

from __future__ import annotations

import re
from typing import Literal

Kind = Literal["log", "immutable", "manifest"]

_SEGMENT = re.compile(r"^(journal/[^/]+/[^/]+|cache/[0-9a-f]{2}/[^/]+)/(\d{16})\.jsonl$")
_LOG = re.compile(r"^(journal/[^/]+/[^/]+|cache/[0-9a-f]{2}/[^/]+)\.jsonl$")
_OBJECT = re.compile(r"^objects/[0-9a-f]{2}/[^/.][^/]*$")
_PART = re.compile(r"^parquet/(?!_)[^/]+/run_id=[^/]+/[^/.][^/]*\.parquet$")
_MANIFEST = re.compile(r"^parquet/_manifests/[^/.][^/]*\.json$")


def local_kind(relative: str) -> Kind | None:
    """The kind of a store-relative local path, or None when it is not uploaded."""
    if _LOG.match(relative):
        return "log"
    if _OBJECT.match(relative) or _PART.match(relative):
        return "immutable"
    if _MANIFEST.match(relative):
        return "manifest"
    return None


def segment_name(log: str, offset: int) -> str:
    """``journal/R/W.jsonl`` at byte 1234 → ``journal/R/W/0000000000001234.jsonl``."""
    return f"{log.removesuffix('.jsonl')}/{offset:016d}.jsonl"


def parse_segment(name: str) -> tuple[str, int] | None:
    """The log a segment belongs to and its start offset, or None for other names."""
    match = _SEGMENT.match(name)
    if match is None:
        return None
    return f"{match.group(1)}.jsonl", int(match.group(2))


def remote_kind(name: str) -> Kind | Literal["segment"] | None:
    """The kind of a store-relative remote name."""
    if _SEGMENT.match(name):
        return "segment"
    kind = local_kind(name)
    return None if kind == "log" else kind
