"""Jupyter server extension: the trace browser's REST API (``/rlam/api/``) and the
notebook-attached MCP server (``/rlam/mcp``).

Enabled automatically by ``jupyter_server_config.d/rlam_jupyter.json``, which
``pip install`` puts into ``<prefix>/etc/jupyter``. Importing this package is cheap;
the handlers (and tornado) load only when the server loads the extension.
"""

from __future__ import annotations

from typing import Any


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "rlam_jupyter.frontends.server"}]


def _load_jupyter_server_extension(server_app: Any) -> None:
    """Register the ``/rlam/api/`` routes and the ``/rlam/mcp`` server."""
    from rlam_jupyter.frontends.server.approval_board import ApprovalBoard  # lazy: asyncio
    from rlam_jupyter.frontends.server.handlers import setup_handlers  # lazy: tornado, DuckDB
    from rlam_jupyter.frontends.server.mcp_endpoint import setup_mcp  # lazy: the MCP SDK

    board = ApprovalBoard()
    setup_handlers(server_app.web_app, server_app.root_dir, board)
    setup_mcp(server_app, board)
    server_app.log.info(
        "rlam_jupyter: trace API at %srlam/api/, MCP server at %srlam/mcp",
        server_app.base_url,
        server_app.base_url,
    )


load_jupyter_server_extension = _load_jupyter_server_extension
"""Older name some Jupyter servers look for."""
