"""Which bucket and prefix an ``s3://`` store URL names, and the client that reaches it.

Credentials and the endpoint come from the standard AWS environment and profile
(``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE``,
``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` for MinIO, Ceph or R2), read by boto3;
nothing of them is ever written into the trace or a bundle.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlam_jupyter.errors import RlamError

SCHEMES = ("s3://",)


def is_remote(store: object) -> bool:
    """True for a store given as an object-storage URL (``s3://bucket/prefix``)."""
    return isinstance(store, str) and store.strip().startswith(SCHEMES)


@dataclass(frozen=True)
class RemoteLocation:
    """``s3://bucket/prefix``: every key of the store starts with ``prefix/``."""

    bucket: str
    prefix: str

    @classmethod
    def parse(cls, url: str) -> RemoteLocation:
        text = url.strip()
        if not text.startswith("s3://"):
            raise RlamError(f"{url!r} is not an s3:// URL; write s3://BUCKET/PREFIX")
        bucket, _, prefix = text[len("s3://") :].partition("/")
        if not bucket:
            raise RlamError(f"{url!r} names no bucket; write s3://BUCKET/PREFIX")
        return cls(bucket, prefix.strip("/"))

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    def key(self, relative: str) -> str:
        return f"{self.prefix}/{relative}" if self.prefix else relative

    def relative(self, key: str) -> str:
        return key[len(self.prefix) + 1 :] if self.prefix else key

    def buffer_dir(self) -> Path:
        """The local write-ahead buffer and read cache of this store:
        ``$RLAM_CACHE_DIR`` (default ``~/.cache/rlam``) ``/s3/<bucket>/<prefix>``; the
        endpoint is part of the name so two S3 services never share a cache."""
        base = os.environ.get("RLAM_CACHE_DIR") or os.path.join(
            os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "rlam"
        )
        endpoint = endpoint_url() or "aws"
        tag = hashlib.blake2b(endpoint.encode(), digest_size=4).hexdigest()
        parts = [p for p in self.prefix.split("/") if p and p not in (".", "..")]
        return Path(base).expanduser().resolve().joinpath("s3", f"{self.bucket}-{tag}", *parts)


def endpoint_url() -> str | None:
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


def s3_client() -> Any:
    """A boto3 S3 client with short timeouts: a dropped network must fail an upload
    quickly (it is retried later), never hang the kernel."""
    try:
        import boto3
        from botocore.config import Config
    except ImportError as exc:
        raise RlamError("an s3:// store needs boto3: pip install 'rlam-jupyter[cluster]'") from exc
    config = Config(
        connect_timeout=3,
        read_timeout=30,
        retries={"max_attempts": 2, "mode": "standard"},
        s3={"addressing_style": "path"} if endpoint_url() else {},
    )
    return boto3.session.Session().client("s3", endpoint_url=endpoint_url(), config=config)
