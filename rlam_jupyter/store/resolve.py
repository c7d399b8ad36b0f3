"""Which store a caller means: a folder, ``RLAM_HOME``, ``./.rlam``, or an S3 store.

Above both :mod:`rlam_jupyter.store.layout` (paths inside a store) and
:mod:`rlam_jupyter.store.remote` (which needs those paths), so neither imports the other's
caller: layout stays the bottom of the store.
"""

from __future__ import annotations

import os
from pathlib import Path

from rlam_jupyter.store.layout import DEFAULT_DIRNAME, StoreLayout
from rlam_jupyter.store.remote import resolve_remote

StoreRef = StoreLayout | str | os.PathLike[str] | None
"""What every public function taking ``store=`` accepts: a resolved layout, a folder, an
``s3://`` URL, or None (``RLAM_HOME``, else ``./.rlam``)."""


def resolve_store(store: StoreRef = None) -> StoreLayout:
    """Pick the store folder: explicit argument, then ``RLAM_HOME``, then ``./.rlam``.

    An ``s3://bucket/prefix`` store resolves to its local buffer, synced from the bucket
    (see :mod:`rlam_jupyter.store.remote`); a layout is already resolved."""
    if isinstance(store, StoreLayout):
        return store
    chosen = os.fspath(store) if store is not None else os.environ.get("RLAM_HOME")
    if isinstance(chosen, str) and chosen.startswith("s3://"):
        return resolve_remote(chosen)
    if store is not None:
        return StoreLayout(Path(store).expanduser().resolve())
    env = os.environ.get("RLAM_HOME")
    if env:
        return StoreLayout(Path(env).expanduser().resolve())
    return StoreLayout((Path.cwd() / DEFAULT_DIRNAME).resolve())
