"""The no-op action ``benchmarks/mcp.py`` calls through ``rlam mcp --actions``: pure, a
constant result, so what a call costs is the server's bookkeeping and the transport."""

from __future__ import annotations

import rlam_jupyter


@rlam_jupyter.action(determinism="pure")
def noop(n: int = 0) -> int:
    """Does nothing; ``n`` makes each call new (a cache miss) or repeats one (a hit)."""
    return 0
