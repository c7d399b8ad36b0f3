"""Matplotlib figures as content: a deterministic PNG rendering is their hash and their
preview, and a pickle beside it restores a live figure on replay.

A figure's pickle cannot be its content address: it carries callback registries, object
ids and counters that differ in every process, so a pure plotting step got a new hash on
every run. What a figure *is*, for a reader, is how it looks: the digest of kind
``figure`` is blake3 over a PNG rendered by Agg at a fixed dpi with no ``Software``
metadata (PNG has no creation date), plus which object was recorded (the figure, or its
n-th Axes). Settings that only say how to rasterise or save (``savefig.*``, path
simplification and snapping, text hinting, Agg chunking) are pinned to matplotlib's
defaults while rendering, so a user's ``savefig.dpi`` does not change the hash; settings
that change what is drawn (colours, line widths, fonts, styles) are part of the look and
do change it. The rendering depends on matplotlib, FreeType and the installed fonts, so
it reproduces bit for bit on the same environment; the environment fingerprint tells
when that differs.

Stored bytes (``objects/<d>/<digest>.figure``, format version 1)::

    b"RLAM-FIGURE-1\\n" <header JSON line> <PNG bytes> <pickle bytes>

The header names the PNG and pickle lengths and the target, so a bundle check recomputes
the digest from the PNG without unpickling anything, and the server serves the PNG as the
artifact's image preview. matplotlib is not a dependency of this package: this module is
imported only for values whose type comes from matplotlib.
"""

from __future__ import annotations

import io
import json
import pickle
from dataclasses import dataclass
from typing import Any

from rlam_jupyter.values.digest import FIGURE_KIND, digest_bytes

MAGIC = b"RLAM-FIGURE-1\n"
RENDER_DPI = 100
"""Fixed: a figure's ``dpi`` is how it is shown on a screen, not what it shows."""

_PINNED_PREFIXES = ("savefig.",)
_PINNED_KEYS = (
    "agg.path.chunksize",
    "path.simplify",
    "path.simplify_threshold",
    "path.snap",
    "text.hinting",
    "text.hinting_factor",
)


@dataclass(frozen=True)
class StoredFigure:
    """The parts of a stored figure object, split without unpickling."""

    target: str
    png: bytes
    pickled: bytes


def is_figure_like(value: Any) -> bool:
    """True for a matplotlib ``Figure``, ``SubFigure`` or ``Axes`` (checked by module first,
    so no matplotlib import happens for other values)."""
    if type(value).__module__.split(".")[0] not in ("matplotlib", "mpl_toolkits"):
        return False
    from matplotlib.axes import Axes
    from matplotlib.figure import FigureBase

    return isinstance(value, (FigureBase, Axes))


def root_and_target(value: Any) -> tuple[Any, str]:
    """The top-level Figure that draws ``value``, and which object of it ``value`` is:
    ``"figure"``, ``"subfigure:<n>"`` or ``"axes:<n>"`` (its position among the figure's
    axes), so two Axes of one figure get different hashes and restore as themselves."""
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    root = value
    while not isinstance(root, Figure):
        root = root.figure
    if value is root:
        return root, "figure"
    kind = "axes" if isinstance(value, Axes) else "subfigure"
    members = list(root.findobj(lambda o: type(o) is type(value)))
    position = next(i for i, member in enumerate(members) if member is value)
    return root, f"{kind}:{position}"


def style_settings() -> list[tuple[str, str]]:
    """The rcParams that change what a figure shows (not how it is saved): the part of
    matplotlib's global state an action that draws depends on."""
    import matplotlib

    return [
        (key, repr(value))
        for key, value in sorted(matplotlib.rcParams.items())
        if not key.startswith(_PINNED_PREFIXES) and key not in _PINNED_KEYS + _SCREEN_KEYS
    ]


_SCREEN_KEYS = ("figure.dpi",)
"""How a figure is shown on a screen (see :data:`RENDER_DPI`), not what it shows."""


def render_png(figure: Any) -> bytes:
    """The figure drawn by Agg into PNG bytes, the same in every process of one environment."""
    import matplotlib

    defaults = matplotlib.rcParamsDefault
    pinned = {
        key: defaults[key]
        for key in defaults
        if key.startswith(_PINNED_PREFIXES) or key in _PINNED_KEYS
    }
    buffer = io.BytesIO()
    with matplotlib.rc_context(pinned):
        figure.savefig(buffer, format="png", dpi=RENDER_DPI, metadata={"Software": None})
    return buffer.getvalue()


def digest_of(target: str, png: bytes) -> str:
    """The content hash of a figure-kind artifact, from its target and rendering."""
    return digest_bytes(FIGURE_KIND, target.encode() + b"\0" + png)


def figure_digest(value: Any) -> str:
    """What :func:`canonical_parts` would hash ``value`` to, without pickling it."""
    root, target = root_and_target(value)
    return digest_of(target, render_png(root))


def canonical_parts(value: Any) -> tuple[str, bytes, str]:
    """(digest, stored bytes, note): the note is non-empty when the figure does not survive
    a pickle round trip, in which case the stored bytes are empty and it cannot be restored."""
    root, target = root_and_target(value)
    png = render_png(root)
    digest = digest_of(target, png)
    try:
        pickled = _detached_pickle(value, root)
        again = pickle.loads(pickled)
        same = figure_digest(again) == digest
    except Exception as exc:
        return (
            digest,
            b"",
            (
                f"the figure cannot be pickled ({type(exc).__name__}: {exc}); it is recorded by "
                "its rendering and cannot be restored on replay"
            ),
        )
    if not same:
        return (
            digest,
            b"",
            (
                "the figure looks different after a pickle round trip; it is recorded by its "
                "rendering and cannot be restored on replay"
            ),
        )
    return digest, pack(target, png, pickled), ""


def pack(target: str, png: bytes, pickled: bytes) -> bytes:
    header = json.dumps({"target": target, "png": len(png), "pickle": len(pickled)})
    return MAGIC + header.encode() + b"\n" + png + pickled


def unpack(payload: bytes) -> StoredFigure:
    """Split stored figure bytes; raises ValueError when they are not a figure object."""
    if not payload.startswith(MAGIC):
        raise ValueError("not a stored figure (its bytes do not start with RLAM-FIGURE-1)")
    end = payload.find(b"\n", len(MAGIC))
    try:
        header = json.loads(payload[len(MAGIC) : end])
        target, png_size, pickle_size = header["target"], header["png"], header["pickle"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"a stored figure with an unreadable header ({exc})") from None
    body = payload[end + 1 :]
    if not isinstance(target, str) or len(body) != png_size + pickle_size:
        raise ValueError("a stored figure whose parts do not add up to its size")
    return StoredFigure(target, body[:png_size], body[png_size:])


def stored_digest(payload: bytes) -> str:
    """The recorded digest of stored figure bytes, from the PNG alone (nothing unpickled)."""
    stored = unpack(payload)
    return digest_of(stored.target, stored.png)


def restore_figure(payload: bytes) -> Any:
    """A fresh Figure (or Axes) from stored bytes, not attached to pyplot."""
    return pickle.loads(unpack(payload).pickled)


def _detached_pickle(value: Any, root: Any) -> bytes:
    """A pickle of ``value`` whose figure does not re-register with pyplot when loaded:
    a restored copy must not open a window or show up again in a notebook's output."""

    class Detached(pickle.Pickler):
        def reducer_override(self, obj: Any) -> Any:
            if obj is not root:
                return NotImplemented
            reduced = obj.__reduce_ex__(pickle.HIGHEST_PROTOCOL)
            state = dict(reduced[2])
            state.pop("_restore_to_pylab", None)
            return (reduced[0], reduced[1], state, *reduced[3:])

    buffer = io.BytesIO()
    Detached(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(value)
    return buffer.getvalue()
