"""Shared fixtures: a fresh store folder, a real IPython shell with the extension loaded, and
an engine whose store compacts only when a test says so (the store tests' engine)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from double_action import double_registry
from IPython.core.interactiveshell import InteractiveShell

from rlam_jupyter.engine import Engine
from rlam_jupyter.frontends.kernel import close_session

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / ".rlam"


@pytest.fixture
def shell(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[InteractiveShell]:
    """A real IPython shell, working in a temp folder, with ``%load_ext rlam_jupyter`` done."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RLAM_HOME", raising=False)
    ip = InteractiveShell.instance()
    close_session(ip)
    ip.reset(new_session=True)
    if "rlam_jupyter" not in ip.extension_manager.loaded:
        ip.run_line_magic("load_ext", "rlam_jupyter")
    yield ip
    close_session(ip)
    ip.reset(new_session=True)


@pytest.fixture
def engine(store: Path, monkeypatch: pytest.MonkeyPatch) -> Engine:
    """An engine with one action, ``double``, whose store never compacts on its own: each
    test decides when to compact. A test file with an ``engine`` of its own overrides it."""
    monkeypatch.setenv("RLAM_AUTO_COMPACT", "0")
    return Engine(store, registry=double_registry())
