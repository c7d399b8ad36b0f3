"""Shared fixtures: a fresh store folder and a real IPython shell with the extension loaded."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell

from rlam_jupyter.magics import close_session

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
