"""The package's shape: one-way layers, no cycles, small modules, a light import.

The layer contracts themselves live in pyproject.toml (``lint-imports``); these tests
run them with the suite and check what import-linter does not: cycles, sizes, and
what ``import rlam_jupyter`` / ``rlam --help`` load.
"""

from __future__ import annotations

import ast
import io
import json
import subprocess
import sys
import tokenize
from pathlib import Path

import grimp
import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "rlam_jupyter"
HEAVY = ("duckdb", "pandas", "pyarrow", "sklearn", "IPython", "mcp")
LONG_LITERAL_BUILDERS = {("prov_json.py", "build_prov"), ("ro_crate.py", "build_ro_crate")}
"""The PROV and RO-Crate documents are one flat literal each: long, but read top to bottom."""


LINT_IMPORTS = (
    "import sys; from importlinter.cli import lint_imports_command as run; sys.exit(run())"
)
"""``lint-imports`` itself, started with this interpreter (its console script may be elsewhere)."""


def test_layer_contracts_hold() -> None:
    result = subprocess.run(
        [sys.executable, "-c", LINT_IMPORTS, "--no-cache"],
        capture_output=True,
        text=True,
        cwd=PACKAGE.parent,
    )
    if result.returncode != 0:  # pragma: no cover - the message is the point
        pytest.fail(result.stdout[-4000:] + result.stderr[-2000:])
    assert "Contracts: 2 kept, 0 broken." in result.stdout


def test_a_core_module_importing_ipython_breaks_the_contract(tmp_path: Path) -> None:
    """The forbidden contract is not vacuous: a core module that imports IPython fails it."""
    copy = tmp_path / "rlam_jupyter"
    subprocess.run(["cp", "-r", str(PACKAGE), str(copy)], check=True)
    (copy / "values" / "sneaky.py").write_text('"""Breaks the layer."""\nimport IPython\n')
    (tmp_path / "pyproject.toml").write_text((PACKAGE.parent / "pyproject.toml").read_text())
    result = subprocess.run(
        [sys.executable, "-c", LINT_IMPORTS, "--no-cache"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode != 0
    assert "rlam_jupyter.values.sneaky -> IPython" in result.stdout


def test_no_import_cycles() -> None:
    """Counting imports inside functions too: every module's dependencies are below it."""
    graph = grimp.build_graph("rlam_jupyter")
    modules = sorted(graph.modules)
    edges = {m: sorted(graph.find_modules_directly_imported_by(m)) for m in modules}
    cycles = _strongly_connected(modules, edges)
    assert cycles == [], "import cycles: " + "; ".join(" → ".join(c) for c in cycles)


def test_modules_and_functions_stay_small() -> None:
    too_long: list[str] = []
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text()
        lines = text.count("\n")
        if lines > 450:
            too_long.append(f"{path.relative_to(PACKAGE)}: {lines} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > 80 and (path.name, node.name) not in LONG_LITERAL_BUILDERS:
                    too_long.append(f"{path.relative_to(PACKAGE)}:{node.name}: {length} lines")
    assert too_long == []


def test_every_import_inside_a_function_says_why() -> None:
    """An import of a package module inside a function is there for a reason (start-up
    time, a child process's entry point, an optional dependency), and says which in a
    ``# lazy: ...`` comment on its line or the line above: otherwise it belongs at the top."""
    silent: list[str] = []
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text()
        lines = text.splitlines()
        comments = _comments(text)
        for lineno, end in sorted(_package_imports_in_functions(ast.parse(text))):
            own = [comments.get(n, "") for n in range(lineno, end + 1)]
            above = lines[lineno - 2].strip() if lineno > 1 else ""
            if not any("lazy" in c for c in [*own, above if above.startswith("#") else ""]):
                silent.append(f"{path.relative_to(PACKAGE)}:{lineno}: {lines[lineno - 1].strip()}")
    assert silent == [], "imports inside functions that do not say why:\n" + "\n".join(silent)


def _package_imports_in_functions(tree: ast.Module) -> set[tuple[int, int]]:
    """(first line, last line) of each ``import rlam_jupyter...`` / ``from rlam_jupyter...
    import`` (or relative import) inside a function, nested ones included."""
    found: set[tuple[int, int]] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for sub in ast.walk(node):
            if isinstance(sub, ast.ImportFrom):
                ours = sub.level > 0 or (sub.module or "").startswith("rlam_jupyter")
            elif isinstance(sub, ast.Import):
                ours = any(alias.name.startswith("rlam_jupyter") for alias in sub.names)
            else:
                continue
            if ours:
                found.add((sub.lineno, sub.end_lineno or sub.lineno))
    return found


def _comments(text: str) -> dict[int, str]:
    """Line number → the comment on it (tokenized, so a ``#`` inside a string is none)."""
    return {
        token.start[0]: token.string
        for token in tokenize.generate_tokens(io.StringIO(text).readline)
        if token.type == tokenize.COMMENT
    }


def _loaded_after(code: str) -> list[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    loaded = set(json.loads(result.stdout.strip().splitlines()[-1]))
    return sorted(name for name in HEAVY if name in loaded)


def test_importing_the_package_loads_nothing_heavy() -> None:
    assert _loaded_after("import rlam_jupyter") == []


def test_the_cli_parser_loads_nothing_heavy() -> None:
    """``rlam --help`` builds every sub-command's parser and imports no core library."""
    code = (
        "import contextlib, io\n"
        "from rlam_jupyter.frontends.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "    main(['--help'])"
    )
    assert _loaded_after(code) == []


def test_a_public_name_still_imports_on_first_use() -> None:
    code = "import rlam_jupyter\nrlam_jupyter.action\nrlam_jupyter.replay"
    assert "IPython" in _loaded_after(code)  # replay is the notebook API: it knows kernels


def _strongly_connected(nodes: list[str], edges: dict[str, list[str]]) -> list[list[str]]:
    """Tarjan's algorithm; returns the components of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for target in edges.get(node, []):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for node in nodes:
        if node not in index:
            visit(node)
    return found


def test_the_architecture_page_lists_every_module_as_its_docstring_says() -> None:
    script = PACKAGE.parent / "scripts" / "architecture_modules.py"
    result = subprocess.run(
        [sys.executable, str(script), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout


def test_an_audit_without_re_execution_does_not_load_the_engine() -> None:
    probe = "import sys, rlam_jupyter.operations.audit\nprint('rlam_jupyter.engine' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
