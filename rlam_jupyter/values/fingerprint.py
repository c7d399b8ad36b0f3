"""Environment fingerprint: what the numbers depend on besides code, seeds and data.

Computing the package list costs tens of milliseconds, so it is cached and only
recomputed when an entry of ``sys.path`` changes (a ``pip install`` in the kernel)
or one of the recorded environment variables does.
"""

from __future__ import annotations

import html
import importlib.metadata
import os
import platform
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlam_jupyter.values.digest import digest_bytes
from rlam_jupyter.values.hashing import canonical_json

ENV_VARS = (
    "PYTHONHASHSEED",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "CUBLAS_WORKSPACE_CONFIG",
)

_cache: tuple[tuple[Any, ...], Fingerprint] | None = None


@dataclass(frozen=True)
class Fingerprint:
    """A hashed description of the running environment."""

    data: dict[str, Any]

    @property
    def env_id(self) -> str:
        return digest_bytes("env", canonical_json(self.data))

    def diff(self, other: Fingerprint) -> list[tuple[str, Any, Any]]:
        """Every (key, this value, other value) that differs, packages one by one."""
        return compare(self.data, other.data)

    def _summary_rows(self) -> list[tuple[str, str]]:
        python = self.data.get("python", {})
        system = self.data.get("platform", {})
        cpu = self.data.get("cpu", {})
        env = self.data.get("env", {})
        return [
            ("python", f"{python.get('version')} ({python.get('implementation')})"),
            ("platform", f"{system.get('system')} {system.get('release')} {system.get('machine')}"),
            ("cpu", f"{cpu.get('model')} × {cpu.get('count')}"),
            ("packages", str(len(self.data.get("packages", {})))),
            ("environment variables", ", ".join(f"{k}={v}" for k, v in env.items()) or "none set"),
        ]

    def __repr__(self) -> str:
        lines = [f"environment {self.env_id[:12]}"]
        lines += [f"  {k:<22} {v}" for k, v in self._summary_rows()]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        body = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
            for k, v in self._summary_rows()
        )
        packages = "".join(
            f"<tr><td>{html.escape(name)}</td><td>{html.escape(str(version))}</td></tr>"
            for name, version in self.data.get("packages", {}).items()
        )
        return (
            f"<table class='rlam-table'><caption style='text-align:left'>environment "
            f"<code>{self.env_id[:12]}</code></caption>{body}</table>"
            f"<details><summary>{len(self.data.get('packages', {}))} packages</summary>"
            f"<table class='rlam-table'>{packages}</table></details>"
        )


def _path_stamp() -> tuple[Any, ...]:
    stamp: list[Any] = [tuple(os.environ.get(name) for name in ENV_VARS)]
    for entry in sys.path:
        try:
            stamp.append((entry, os.stat(entry or ".").st_mtime))
        except OSError:
            stamp.append((entry, -1.0))
    return tuple(stamp)


def fingerprint() -> Fingerprint:
    """The current environment (cached until site-packages change)."""
    global _cache
    stamp = _path_stamp()
    if _cache is not None and _cache[0] == stamp:
        return _cache[1]
    result = Fingerprint(_collect())
    _cache = (stamp, result)
    return result


def _collect() -> dict[str, Any]:
    packages: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            packages[name.lower().replace("_", "-")] = dist.version
    return {
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
            "executable": os.path.realpath(sys.executable),
        },
        "platform": {
            "system": platform.system(),
            "release": platform.release(),
            "machine": platform.machine(),
        },
        "cpu": {"model": cpu_model(), "count": os.cpu_count() or 0},
        "packages": dict(sorted(packages.items())),
        "env": {
            name: os.environ.get(name) for name in ENV_VARS if os.environ.get(name) is not None
        },
    }


def cpu_model() -> str:
    """The CPU's marketing name (Linux ``/proc/cpuinfo``), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def compare(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[tuple[str, Any, Any]]:
    """Flattened differences between two fingerprint dicts (``packages.numpy``: 1.26 → 2.0);
    a key present on one side only has None on the other."""
    differences: list[tuple[str, Any, Any]] = []
    for key in sorted(set(a) | set(b)):
        left, right = a.get(key), b.get(key)
        path = f"{prefix}{key}"
        if isinstance(left, dict) and isinstance(right, dict):
            differences.extend(compare(left, right, path + "."))
        elif left != right:
            differences.append((path, left, right))
    return differences
