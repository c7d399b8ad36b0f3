"""A notebook opened in a real JupyterLab by Debian's Chromium, for the browser tests.

``notebook_page`` yields a Playwright page once the notebook is shown and its kernel is
idle; ``window.jupyterapp`` is there when the lab runs with
``--LabApp.expose_app_in_browser=True``. Screenshots for the README go to ``docs/`` with
``RLAM_SCREENSHOTS=docs``, else to a temp folder, so a test run leaves the tree clean.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.jupyter_app import JupyterApp

DOCS = Path(__file__).resolve().parent.parent / "docs"

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
KERNEL_IDLE = """path => {
  const w = Array.from(window.jupyterapp.shell.widgets('main')).find(
    w => w.context && w.context.path === path);
  const k = w && w.sessionContext.session && w.sessionContext.session.kernel;
  return k && k.status === 'idle';
}"""


def screenshot_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``docs/`` with ``RLAM_SCREENSHOTS=docs``, else a temp folder."""
    if os.environ.get("RLAM_SCREENSHOTS") == "docs":
        DOCS.mkdir(exist_ok=True)
        return DOCS
    return tmp_path_factory.mktemp("screenshots")


@contextlib.contextmanager
def notebook_page(lab: JupyterApp, notebook: str) -> Iterator[Any]:
    """A Chromium page showing ``notebook`` (a path under the lab's root), kernel idle."""
    from playwright.sync_api import sync_playwright

    assert CHROMIUM.exists(), "the browser tests need Debian's chromium: apt-get install chromium"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 950})
            page.set_default_timeout(90_000)
            page.goto(f"{lab.url}lab/tree/{notebook}?token={lab.token}")
            page.wait_for_function("() => window.jupyterapp !== undefined")
            page.wait_for_selector(".jp-NotebookPanel .jp-Cell")
            page.wait_for_function(KERNEL_IDLE, arg=notebook)
            yield page
        finally:
            browser.close()


def widen_sidebar(page: Any, by: int = 260) -> None:
    """Drag the handle between the notebook and the right sidebar to the left."""
    box = page.evaluate(
        """() => {
          const panel = document.getElementById('rlam-sidebar').getBoundingClientRect();
          const handles = Array.from(document.querySelectorAll('#jp-main-split-panel > .lm-SplitPanel-handle'));
          const h = handles.map(h => h.getBoundingClientRect())
            .filter(r => r.width > 0).sort((a, b) => Math.abs(a.x - panel.x) - Math.abs(b.x - panel.x))[0];
          return h ? {x: h.x + h.width / 2, y: h.y + h.height / 2} : null;
        }"""
    )
    if box is None:
        return
    page.mouse.move(box["x"], box["y"])
    page.mouse.down()
    page.mouse.move(box["x"] - by, box["y"], steps=8)
    page.mouse.up()
