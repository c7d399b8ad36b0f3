"""Traces on S3-compatible storage, against a real S3 server (moto) on loopback.

The kernel writes to its local buffer; the uploader pushes journal segments, objects,
Parquet parts and manifests; another process, the server API and the CLI read them
back from the bucket; a network cut loses nothing.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell

from rlam_jupyter.store.catalog import connect
from rlam_jupyter.store.remote import forget_stores, remote_store

pytest.importorskip("moto")
pytest.importorskip("boto3")
from moto.server import ThreadedMotoServer

ROOT = Path(__file__).resolve().parent.parent

LOAD = """
data = load_dataset(name="breast_cancer")
X_train, X_test, y_train, y_test = split(data=data, test_size=0.25)
X_train_s, X_test_s = scale(X_train=X_train, X_test=X_test)
"""
TRAIN = """
model = train_model(X=X_train_s, y=y_train, model="logistic_regression", C=1.0)
metrics = evaluate(model=model, X=X_test_s, y=y_test)
"""
STEPS_SQL = "SELECT step_id, status, outputs FROM steps ORDER BY step_id"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class S3Server:
    """moto's S3 server on 127.0.0.1; stop() and start() again keep its buckets."""

    def __init__(self) -> None:
        self.port = _free_port()
        self._server: ThreadedMotoServer | None = None

    def start(self) -> None:
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture(scope="module")
def s3_server() -> Iterator[S3Server]:
    server = S3Server()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def bucket(
    s3_server: S3Server,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> Iterator[str]:
    """A fresh bucket, the AWS variables pointing at the loopback server, and a
    private local cache for this test's kernel."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "rlam-never-in-trace-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.url)
    monkeypatch.setenv("RLAM_CACHE_DIR", str(tmp_path / "kernel-cache"))
    import boto3

    name = request.node.name.replace("_", "-").lower()[:50]
    boto3.client("s3", endpoint_url=s3_server.url).create_bucket(Bucket=name)
    yield name
    forget_stores()


def _keys(server: S3Server, bucket: str) -> list[str]:
    import boto3

    client = boto3.client("s3", endpoint_url=server.url)
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return [e["Key"] for page in pages for e in page.get("Contents", [])]


def _read_in_other_process(url: str, cache: Path) -> list[list[object]]:
    code = (
        "import json, sys, rlam_jupyter\n"
        f"con = rlam_jupyter.connect({url!r})\n"
        f"print(json.dumps(con.execute({STEPS_SQL!r}).fetchall()))\n"
    )
    import os

    env = {**os.environ, "RLAM_CACHE_DIR": str(cache)}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    rows: list[list[object]] = json.loads(done.stdout.strip().splitlines()[-1])
    return rows


def test_quickstart_trace_lands_in_the_bucket_and_reads_back_elsewhere(
    shell: InteractiveShell,
    s3_server: S3Server,
    bucket: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    url = f"s3://{bucket}/team/trace"
    monkeypatch.setenv("RLAM_HOME", url)
    shell.run_cell_magic("rlam", "--run breast-cancer --seed 42", LOAD)
    store = remote_store(url)
    assert store.uploader.flush(timeout=30)
    # an open run's journal goes up as segments named by writer and start offset
    first = [k for k in _keys(s3_server, bucket) if k.startswith("team/trace/journal/")]
    assert any(k.endswith("/0000000000000000.jsonl") for k in first)
    shell.run_cell_magic("rlam", "--run breast-cancer", TRAIN)
    assert store.uploader.flush(timeout=30)
    later = [k for k in _keys(s3_server, bucket) if k.startswith("team/trace/journal/")]
    assert set(first) < set(later)  # new bytes went up as new keys; none was rewritten
    shell.run_line_magic("rlam", "end")
    assert store.uploader.flush(timeout=30)

    keys = _keys(s3_server, bucket)
    assert all(k.startswith("team/trace/") for k in keys)
    names = [k.removeprefix("team/trace/") for k in keys]
    assert any(n.startswith("objects/") for n in names)
    assert any(n.startswith("parquet/steps/run_id=") for n in names)
    assert any(n.startswith("parquet/_manifests/") for n in names)
    # credentials never reach the trace
    local = connect(store.layout)
    expected = [list(r) for r in local.execute(STEPS_SQL).fetchall()]
    assert len(expected) == 5
    for path in store.layout.root.rglob("*"):
        if path.is_file():
            assert b"rlam-never-in-trace-secret" not in path.read_bytes()

    # another process with an empty cache reads the same trace from the bucket
    assert _read_in_other_process(url, tmp_path / "other-cache") == expected


def test_server_api_serves_a_remote_store(
    shell: InteractiveShell, bucket: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    url = f"s3://{bucket}/shared"
    monkeypatch.setenv("RLAM_HOME", url)
    shell.run_cell_magic("rlam", "--run bc --seed 1", LOAD)
    shell.run_line_magic("rlam", "end")
    assert remote_store(url).uploader.flush(timeout=30)
    forget_stores()
    # the server process: its own empty cache, the same RLAM_HOME
    monkeypatch.setenv("RLAM_CACHE_DIR", str(tmp_path / "server-cache"))
    from rlam_jupyter.operations.browse import queries
    from rlam_jupyter.operations.browse.snapshots import resolve_request_store

    layout = resolve_request_store(tmp_path, "analysis.ipynb")
    assert layout.root.is_relative_to(tmp_path / "server-cache")
    con = connect(layout)
    listed = queries.runs(con)
    assert [r["name"] for r in listed] == ["bc"]
    page = queries.steps_page(con, listed[0]["run_id"])
    assert [s["action"] for s in page["steps"]] == ["load_dataset", "split", "scale"]


def test_network_cut_mid_run_loses_nothing(
    shell: InteractiveShell,
    s3_server: S3Server,
    bucket: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    url = f"s3://{bucket}/cut"
    monkeypatch.setenv("RLAM_HOME", url)
    shell.run_cell_magic("rlam", "--run cut --seed 3", LOAD)
    store = remote_store(url)
    assert store.uploader.flush(timeout=30)

    s3_server.stop()
    try:
        # the notebook keeps working on its local buffer while the service is down
        shell.run_cell_magic("rlam", "--run cut", TRAIN)
        shell.run_line_magic("rlam", "status")
        status = store.status()
        assert status.pending_files > 0
        assert status.pending_bytes > 0
        assert not store.uploader.flush(timeout=1)
    finally:
        s3_server.start()
    shell.run_line_magic("rlam", "end")
    assert store.uploader.flush(timeout=30)
    assert store.status().pending_files == 0

    local = [list(r) for r in connect(store.layout).execute(STEPS_SQL).fetchall()]
    assert [r[1] for r in local] == ["succeeded"] * 5
    assert _read_in_other_process(url, tmp_path / "reader-cache") == local
