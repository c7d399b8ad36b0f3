"""Jupyter server extension: the trace browser's read-only REST API (``/rlam/api/``).

Enabled automatically by ``jupyter_server_config.d/rlam_jupyter.json``, which
``pip install`` puts into ``<prefix>/etc/jupyter``. Importing this package is cheap;
the handlers (and tornado) load only when the server loads the extension.
"""

from __future__ import annotations

from typing import Any


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "rlam_jupyter.frontends.server"}]


def _load_jupyter_server_extension(server_app: Any) -> None:
    """Register the ``/rlam/api/`` routes on the running server."""
    # lazy: tornado, jupyter_server, DuckDB: only once the server loads the extension
    from rlam_jupyter.frontends.server.handlers import setup_handlers

    setup_handlers(server_app.web_app, server_app.root_dir)
    server_app.log.info("rlam_jupyter: trace API at %srlam/api/", server_app.base_url)


load_jupyter_server_extension = _load_jupyter_server_extension
"""Older name some Jupyter servers look for."""
