"""Start a real ``jupyter server`` / ``jupyter lab`` process for the API and browser tests.

The process gets its own config, runtime and settings folders (nothing from the
developer's home leaks in) but the installed extensions of this environment, so
the tests see what ``pip install`` put in place. It listens on a free loopback port
with a random token and is stopped (its own process group) when the test is done.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ANNOUNCEMENTS_OFF = {"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}
LABEXTENSION = Path(__file__).resolve().parent.parent / "rlam_jupyter" / "labextension"
"""The sidebar built from this checkout (``cd labextension && jlpm build``)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class JupyterApp:
    url: str
    token: str
    root: Path
    process: subprocess.Popen[bytes]
    log: Path

    def get(
        self,
        endpoint: str,
        *,
        token: bool = True,
        method: str = "GET",
        body: Any = None,
        **params: Any,
    ) -> tuple[int, Any]:
        """``GET <url>/<endpoint>?params`` → (status, parsed JSON body); another
        ``method`` sends ``body`` as JSON (``{}`` when None)."""
        query = urllib.parse.urlencode(params, doseq=True)
        request = urllib.request.Request(
            f"{self.url}{endpoint}" + (f"?{query}" if query else ""),
            method=method,
            data=json.dumps(body if body is not None else {}).encode() if method != "GET" else None,
        )
        if token:
            request.add_header("Authorization", f"token {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            body = error.read()
            try:
                return error.code, json.loads(body or b"null")
            except ValueError:
                return error.code, body.decode(errors="replace")

    def get_raw(
        self, endpoint: str, *, token: bool = True, **params: Any
    ) -> tuple[int, str, bytes]:
        """``GET <url>/<endpoint>?params`` → (status, content type, body bytes)."""
        query = urllib.parse.urlencode(params, doseq=True)
        request = urllib.request.Request(f"{self.url}{endpoint}" + (f"?{query}" if query else ""))
        if token:
            request.add_header("Authorization", f"token {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, response.headers.get("Content-Type", ""), response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.headers.get("Content-Type", ""), error.read()


@contextlib.contextmanager
def running(kind: str, root: Path, workdir: Path, *extra: str) -> Iterator[JupyterApp]:
    """``jupyter server`` or ``jupyter lab`` serving ``root``, ready when this yields."""
    config = workdir / "jupyter-config"
    (config / "labconfig").mkdir(parents=True, exist_ok=True)
    (config / "labconfig" / "page_config.json").write_text(json.dumps(ANNOUNCEMENTS_OFF))
    env = {k: v for k, v in os.environ.items() if k != "RLAM_HOME"}
    env.update(
        JUPYTER_CONFIG_DIR=str(config),
        JUPYTER_RUNTIME_DIR=str(workdir / "runtime"),
        JUPYTERLAB_SETTINGS_DIR=str(workdir / "lab-settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(workdir / "lab-workspaces"),
        PYTHONUNBUFFERED="1",
    )
    if kind == "lab":
        extra = (this_checkouts_labextension(workdir), *extra)
    port, token = free_port(), secrets.token_hex(16)
    log = workdir / f"{kind}.log"
    args = [
        sys.executable,
        "-m",
        "jupyterlab" if kind == "lab" else "jupyter_server",
        "--no-browser",
        "--allow-root",
        "--ip=127.0.0.1",
        f"--port={port}",
        f"--ServerApp.root_dir={root}",
        f"--IdentityProvider.token={token}",
        "--ServerApp.port_retries=0",
        *extra,
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(
            args, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    app = JupyterApp(f"http://127.0.0.1:{port}/", token, root, process, log)
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"jupyter {kind} exited:\n{log.read_text()[-3000:]}")
            with contextlib.suppress(OSError):
                status, _ = app.get("api/status")
                if status == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"jupyter {kind} did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.25)
        yield app
    finally:
        stop(process)


def this_checkouts_labextension(workdir: Path) -> str:
    """The option that makes JupyterLab serve the sidebar built from this checkout,
    ahead of the one installed in the environment (which may be another worktree's)."""
    if not (LABEXTENSION / "package.json").is_file():
        raise RuntimeError(
            f"no sidebar build in {LABEXTENSION}: run `cd labextension && jlpm build`"
        )
    folder = workdir / "labextensions"
    folder.mkdir(exist_ok=True)
    (folder / "rlam-jupyter").symlink_to(LABEXTENSION, target_is_directory=True)
    return f"--LabApp.extra_labextensions_path={folder}"


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop the server and the kernels it started (its own process group)."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    # Kernels run in their own sessions; a server stopped by SIGTERM shuts them down.
