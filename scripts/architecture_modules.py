"""Regenerate the module list of ``docs/architecture.md`` from the modules' own docstrings.

Run: ``python scripts/architecture_modules.py`` (rewrites the text between
``<!-- modules:start -->`` and ``<!-- modules:end -->``), or ``--check`` to exit 1 when
the page is out of date (``tests/test_layers.py`` runs the check). A module's line is
the first sentence of its docstring: to change the page, change the docstring.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "rlam_jupyter"
PAGE = ROOT / "docs" / "architecture.md"
START, END = "<!-- modules:start -->", "<!-- modules:end -->"
LAYERS = ["values", "actions", "policy.py", "store", "engine", "operations", "frontends"]
"""Bottom to top; ``errors.py`` and ``version.py`` sit under all of them."""


def first_sentence(path: Path) -> str:
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    paragraph = " ".join(doc.split("\n\n", 1)[0].split())
    for end in (". ", ".\n"):
        if end in paragraph + "\n":
            paragraph = (paragraph + "\n").split(end, 1)[0] + "."
            break
    return paragraph.rstrip(".") + "." if paragraph else "(no docstring)"


def section(title: str, paths: list[Path]) -> list[str]:
    lines = [f"### {title}", ""]
    for path in paths:
        name = path.relative_to(PACKAGE).as_posix()
        lines.append(f"- `{name}`: {first_sentence(path)}")
    return [*lines, ""]


def render() -> str:
    out: list[str] = []
    base = [PACKAGE / "__init__.py", PACKAGE / "__main__.py", PACKAGE / "errors.py"]
    out += section("package root and base", [*base, PACKAGE / "version.py"])
    for layer in LAYERS:
        target = PACKAGE / layer
        paths = [target] if target.is_file() else sorted(target.rglob("*.py"))
        out += section(layer.removesuffix(".py"), paths)
    return "\n".join(out).rstrip() + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the page is stale")
    args = parser.parse_args()
    text = PAGE.read_text()
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    fresh = f"{head}{START}\n{render()}{END}{tail}"
    if args.check:
        if fresh != text:
            print(f"{PAGE} is out of date: run python scripts/architecture_modules.py")
            return 1
        return 0
    PAGE.write_text(fresh)
    return 0


if __name__ == "__main__":
    sys.exit(main())
