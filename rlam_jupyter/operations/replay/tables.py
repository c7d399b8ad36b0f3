"""How replay's reports render: HTML tables for a notebook, aligned text for a terminal,
and the compact values (short hashes, parameter changes) their cells hold."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

TABLE_STYLE = (
    "<style>.rlam-replay td,.rlam-replay th{padding:2px 8px;text-align:left;vertical-align:top}"
    ".rlam-bad td{color:var(--jp-error-color1,#d32f2f)}"
    ".rlam-good td:nth-child(4){color:var(--jp-success-color1,#388e3c)}</style>"
)
"""The CSS every report's HTML ends with (bad rows red, good verdicts green)."""


def html_table(
    caption: str, header: Sequence[str], rows: Sequence[tuple[str, Sequence[Any]]]
) -> str:
    """A ``rlam-replay`` table; each row is ``(css class, cells)``."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        f"<tr class='{css}'>"
        + "".join(f"<td>{html.escape('' if v is None else str(v))}</td>" for v in values)
        + "</tr>"
        for css, values in rows
    )
    cap = f"<caption style='text-align:left'>{html.escape(caption)}</caption>" if caption else ""
    return f"<table class='rlam-replay'>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def text_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Columns padded to their widest cell (at most 60 characters), one line a row."""
    cells = [[("" if v is None else str(v)).replace("\n", " ") for v in row] for row in rows]
    widths = [min(60, max([len(h)] + [len(r[i]) for r in cells])) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    for r in cells:
        lines.append("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
    return "\n".join(lines)


def format_env_difference(key: str, recorded: Any, now: Any, labels: tuple[str, str]) -> str:
    """``packages.numpy: 1.26.4 (recorded) → 2.4.6 (now)``; absent sides say so."""
    left = "absent" if recorded is None else str(recorded)
    right = "absent" if now is None else str(now)
    return f"{key}: {left} ({labels[0]}) → {right} ({labels[1]})"


def short(value: Any, limit: int = 40) -> str:
    """A compact rendering for tables: hashes shortened, long reprs cut."""
    if isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value):
        return value[:12] + "…"
    text = repr(value) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[: limit - 1] + "…"


def describe_param_changes(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    """``key: old → new`` for every key whose value differs (``∅`` where one side lacks it)."""
    return [
        f"{key}: {short(a.get(key, '∅'))} → {short(b.get(key, '∅'))}"
        for key in sorted(set(a) | set(b))
        if a.get(key) != b.get(key)
    ]
