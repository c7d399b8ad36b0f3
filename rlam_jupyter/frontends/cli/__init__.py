"""The ``rlam`` command-line tool: inspect, verify, export and audit traces without Jupyter.

Each feature module contributes its own sub-commands through ``register_cli(subparsers)``;
this file holds the shared options and the commands that only read the store.
Exit codes: 0 all good, 1 a check failed (verify/audit, a refused import), 2 bad usage
or input (unknown run, missing file), 3 an internal error (a bug), 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Sequence
from typing import Any

from rlam_jupyter.errors import RlamError
from rlam_jupyter.store.catalog import resolve_run

FEATURE_MODULES = (
    "rlam_jupyter.operations.replay",
    "rlam_jupyter.operations.bundle",
    "rlam_jupyter.operations.audit",
    "rlam_jupyter.store.compaction",
    "rlam_jupyter.store.repair",
    "rlam_jupyter.frontends.bench",
)
"""Modules that add sub-commands via ``register_cli(subparsers, common)``."""

EXIT_OK, EXIT_CHECK_FAILED, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3
EXIT_INTERRUPTED = 130


def common_options() -> argparse.ArgumentParser:
    """``--store`` and ``--json``, shared by every sub-command."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--store", default=None, help="trace store folder (default: $RLAM_HOME or ./.rlam)"
    )
    parent.add_argument("--json", action="store_true", help="print machine-readable JSON")
    return parent


def build_parser() -> argparse.ArgumentParser:
    from rlam_jupyter import __version__

    parser = argparse.ArgumentParser(
        prog="rlam",
        description="Inspect, verify, export and audit R-LAM provenance traces.",
        epilog="Every command takes --store DIR (default: $RLAM_HOME or ./.rlam) and --json. "
        "Exit codes: 0 ok, 1 a check failed, 2 bad usage or input, 3 internal error.",
    )
    parser.add_argument("--version", action="version", version=f"rlam-jupyter {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    common = common_options()
    runs = sub.add_parser(
        "runs",
        parents=[common],
        help="list the runs in a store",
        description="List the runs in a store: id, name, seed, status, how many steps "
        "failed or were refused, and the run a fork came from. Exit 0.",
    )
    runs.set_defaults(handler=_runs)
    show = sub.add_parser(
        "show",
        parents=[common],
        help="show the steps of a run (or one step)",
        description="Show a run's steps, a fork's inherited prefix included, or every "
        "recorded field of one step with --step. Exit 2 when the run or step is unknown.",
    )
    show.add_argument("run", help="run id, unique id prefix, or run name")
    show.add_argument("--step", default=None, help="step number (seq) or step id")
    show.set_defaults(handler=_show)
    for module_name in FEATURE_MODULES:
        _register_feature(module_name, sub, common)
    return parser


def _register_feature(module_name: str, sub: Any, common: argparse.ArgumentParser) -> None:
    """Add a feature module's sub-commands; a broken module costs its commands, not the CLI."""
    try:
        module = importlib.import_module(module_name)
        register = getattr(module, "register_cli", None)
        if register is not None:
            register(sub, common)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            return  # not part of this installation
        _warn_unavailable(module_name, exc)
    except Exception as exc:
        _warn_unavailable(module_name, exc)


def _warn_unavailable(module_name: str, exc: Exception) -> None:
    print(
        f"rlam: the commands of {module_name} are unavailable "
        f"({type(exc).__name__}: {exc}); reinstall rlam-jupyter if this persists",
        file=sys.stderr,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run one sub-command; returns its exit code (see the module docstring)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(handler(args) or 0)
    except RlamError as exc:
        print(f"rlam {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # e.g. `rlam show RUN | head`
        sys.stderr.close()
        return EXIT_OK
    except KeyboardInterrupt:
        print(f"rlam {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception:
        import traceback

        traceback.print_exc()
        print(
            f"rlam {args.command}: internal error (exit {EXIT_INTERNAL}); this is a bug, "
            "please report it with the traceback above",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


def emit(args: argparse.Namespace, data: Any, text: str) -> None:
    """Print ``data`` as JSON with ``--json``, else the human-readable ``text``."""
    if getattr(args, "json", False):
        print(json.dumps(data, indent=2, default=str))
    else:
        print(text)


def _runs(args: argparse.Namespace) -> int:
    from rlam_jupyter.store.catalog import connect

    con = connect(args.store)
    table = con.execute(
        """
        SELECT r.run_id, r.name, r.seed, r.status, r.parent_run_id, r.fork_seq, r.created_at,
               count(s.step_id) AS steps,
               count(*) FILTER (WHERE s.status = 'failed') AS failed,
               count(*) FILTER (WHERE s.status = 'rejected') AS rejected
        FROM runs r LEFT JOIN steps s USING (run_id)
        GROUP BY ALL ORDER BY r.created_at
        """
    )
    rows = [
        dict(zip([d[0] for d in table.description], row, strict=True)) for row in table.fetchall()
    ]
    lines = [f"{'run id':<26}  {'name':<24} {'seed':>6} {'status':<9} steps failed rejected"]
    for row in rows:
        fork = (
            f"  (fork of {row['parent_run_id'][-6:]} at {row['fork_seq']})"
            if row["parent_run_id"]
            else ""
        )
        lines.append(
            f"{row['run_id']:<26}  {row['name'][:24]:<24} {row['seed']:>6} {row['status']:<9} "
            f"{row['steps']:>5} {row['failed']:>6} {row['rejected']:>8}{fork}"
        )
    emit(args, rows, "\n".join(lines) if rows else "no runs in this store")
    return EXIT_OK


def _show(args: argparse.Namespace) -> int:
    from rlam_jupyter.store.catalog import connect

    con = connect(args.store)
    run_id = resolve_run(con, args.run)
    query = "SELECT * EXCLUDE (event_no) FROM run_steps(?) ORDER BY seq"
    table = con.execute(query, [run_id])
    rows = [
        dict(zip([d[0] for d in table.description], row, strict=True)) for row in table.fetchall()
    ]
    if args.step is not None:
        rows = [r for r in rows if str(r["seq"]) == args.step or r["step_id"] == args.step]
        if not rows:
            print(f"rlam show: run {run_id} has no step {args.step!r}", file=sys.stderr)
            return EXIT_USAGE
        step = rows[0]
        text = "\n".join(
            f"{k:>22}: {v}" for k, v in step.items() if v not in (None, "", "{}", "[]")
        )
        emit(args, step, text)
        return EXIT_OK
    lines = [f"run {run_id}"]
    for r in rows:
        duration = "" if r["duration_ms"] is None else f"{r['duration_ms']:.1f} ms"
        detail = r["error_message"] or ", ".join(
            v[:10] for v in json.loads(r["outputs"] or "{}").values()
        )
        lines.append(f"{r['seq']:>5} {r['status']:<9} {r['action']:<20} {duration:>10}  {detail}")
    emit(args, rows, "\n".join(lines))
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
