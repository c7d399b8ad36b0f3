"""``rlam export``, ``rlam verify`` and ``rlam import``: provenance bundles from the shell."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from rlam_jupyter.errors import RlamError
from rlam_jupyter.frontends.cli.output import EXIT_CHECK_FAILED, EXIT_OK, emit


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Add ``export``, ``verify`` and ``import`` to the ``rlam`` command."""
    exporter = subparsers.add_parser(
        "export",
        parents=[common],
        help="write a provenance bundle (zip) of a notebook and its runs",
        description="Write one deterministic zip: the notebook (cells carry their run and "
        "step ids), the trace as Parquet, the referenced objects, the environment, "
        "prov.json (W3C PROV) and ro-crate-metadata.json, with a manifest of hashes. "
        "Exit 0 when written, 2 when a run, the notebook or an object is missing.",
    )
    exporter.add_argument("notebook", nargs="?", default=None, help="the .ipynb file (optional)")
    exporter.add_argument(
        "--out", "-o", default=None, help="bundle path (default: NOTEBOOK.rlam.zip)"
    )
    exporter.add_argument(
        "--runs",
        nargs="+",
        default=None,
        metavar="RUN",
        help="runs to export (id, prefix or name); default: the notebook's runs, else all",
    )
    exporter.add_argument("--no-objects", action="store_true", help="ship hashes, not output bytes")
    exporter.add_argument(
        "--no-llm-content", action="store_true", help="drop LLM prompts and responses (keep hashes)"
    )
    exporter.set_defaults(handler=_export)

    verifier = subparsers.add_parser(
        "verify",
        parents=[common],
        help="check a bundle's hashes, graph and environment (optionally re-execute)",
        description="Check a bundle: zip safety, the manifest, every object hash, trace "
        "schemas, that every step's inputs and outputs exist and the graph has no dangling "
        "edge, that every failure has its cause, and the environment against this one "
        "(differences are listed, not fatal). --reexecute replays the steps in a fresh "
        "process and compares output hashes (it loads the bundle's pickled objects: only "
        "for bundles you trust). Exit 0 when every check holds, 1 when one fails, "
        "2 on bad usage.",
    )
    verifier.add_argument("bundle", help="the bundle zip")
    verifier.add_argument("--reexecute", action="store_true", help="re-execute and compare hashes")
    verifier.add_argument(
        "--import",
        dest="modules",
        action="append",
        default=[],
        metavar="MODULE_OR_FILE",
        help="import a module (by name, found from the current folder too) or a .py file "
        "before re-executing, for actions whose source the bundle does not hold; repeatable",
    )
    verifier.add_argument(
        "--allow-skipped",
        action="store_true",
        help="exit 0 even when steps could not be re-executed (they are still named)",
    )
    verifier.add_argument(
        "--with",
        dest="method",
        choices=("engine", "replay"),
        default="engine",
        help="re-execute through the engine (default) or rlam_jupyter.operations.replay",
    )
    verifier.set_defaults(handler=_verify)

    importer = subparsers.add_parser(
        "import",
        parents=[common],
        help="add a bundle's runs to a store (browsable, forkable)",
        description="Check a bundle like `rlam verify` (without re-executing) and add its "
        "runs, objects and notebook to the store. A bundle that fails a check is refused "
        "and nothing is written. Exit 0 when imported, 1 when refused, 2 on bad usage.",
    )
    importer.add_argument("bundle", help="the bundle zip")
    importer.set_defaults(handler=_import)


# Handlers import the bundle code when they run: `rlam --help` loads none of it.


def _export(args: argparse.Namespace) -> int:
    # lazy: DuckDB and Arrow, for rlam --help start-up
    from rlam_jupyter.operations.bundle.export import export

    result = export(
        args.notebook,
        out=args.out,
        runs=args.runs,
        store=args.store,
        include_objects=not args.no_objects,
        include_llm_content=not args.no_llm_content,
    )
    emit(args, result.to_json(), result.summary())
    return EXIT_OK


def _existing_bundle(path: str) -> str:
    if not Path(path).is_file():
        raise RlamError(f"no bundle at {path}; give the path of a .zip written by `rlam export`")
    return path


def _verify(args: argparse.Namespace) -> int:
    # lazy: DuckDB and Arrow, for rlam --help start-up
    from rlam_jupyter.operations.bundle.verify import verify_bundle

    _existing_bundle(args.bundle)
    report = verify_bundle(
        args.bundle,
        reexecute=args.reexecute,
        modules=args.modules,
        method=args.method,
        allow_skipped=args.allow_skipped,
    )
    emit(args, report.to_json(), report.text())
    return EXIT_OK if report.ok else EXIT_CHECK_FAILED


def _import(args: argparse.Namespace) -> int:
    # lazy: DuckDB and Arrow, for rlam --help start-up
    from rlam_jupyter.operations.bundle.importer import import_bundle
    from rlam_jupyter.operations.bundle.problems import BundleError  # lazy: DuckDB, for start-up

    _existing_bundle(args.bundle)
    try:
        result = import_bundle(args.bundle, args.store)
    except BundleError as exc:
        data = {
            "ok": False,
            "problems": [{"file": p.file, "problem": p.problem} for p in exc.problems],
        }
        if args.json:
            emit(args, data, "")
        else:
            print(f"rlam import: {exc}", file=sys.stderr)
        return EXIT_CHECK_FAILED
    emit(args, {"ok": True, **result.to_json()}, result.summary())
    return EXIT_OK
