"""Execute a demo notebook headlessly in a real kernel and say where its trace is.

``python -m rlam_jupyter.frontends.demo notebooks/quickstart.ipynb`` (what the README's demo
command runs). The executed notebook is written next to the original as
``*.executed.ipynb`` so nothing a user edits is overwritten.
"""

from __future__ import annotations

import sys
from pathlib import Path

from rlam_jupyter.store.catalog import connect


def run_notebook(path: Path, timeout: int = 600) -> Path:
    """Execute ``path`` with nbclient in its own folder; returns the executed copy's path."""
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent.resolve())}},
    )
    client.execute()
    out = path.with_name(path.stem + ".executed.ipynb")
    nbformat.write(notebook, out)
    return out


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    if len(args) != 1:
        print("usage: python -m rlam_jupyter.frontends.demo NOTEBOOK.ipynb", file=sys.stderr)
        return 2
    path = Path(args[0])
    if not path.is_file():
        print(f"no notebook at {path}", file=sys.stderr)
        return 2
    print(f"executing {path} in a fresh kernel ...", flush=True)
    executed = run_notebook(path)
    store = path.parent.resolve() / ".rlam"
    con = connect(store)
    summary = con.execute(
        "SELECT status, count(*) FROM steps GROUP BY status ORDER BY status"
    ).fetchall()
    runs = con.execute("SELECT count(*) FROM runs").fetchone()
    print(f"executed notebook: {executed}")
    print(f"trace store:       {store}  ({runs[0] if runs else 0} runs)")
    print("steps by status:   " + ", ".join(f"{s}={n}" for s, n in summary))
    print(f"explore it:        rlam runs --store {store}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
