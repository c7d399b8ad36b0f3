"""The manifest check: every zip entry is listed, every listed entry is there, and each
one's bytes hash to what the manifest recorded.

Object entries are also checked against the hash in their name; Parquet and JSON
entries are kept (raw bytes, parsed JSON) for the checks after this one.
"""

from __future__ import annotations

import json

import blake3

from rlam_jupyter.operations.bundle import format as fmt
from rlam_jupyter.operations.bundle.inspection import FAILED, OK, Check, Inspection
from rlam_jupyter.operations.bundle.objects_check import object_matches
from rlam_jupyter.operations.bundle.problems import BundleError, Problem
from rlam_jupyter.store.schema import SCHEMA_VERSION


def check_manifest(result: Inspection) -> bool:
    """Add the manifest check; False when there is no readable manifest to go on with."""
    archive = result.archive
    assert archive is not None
    names = set(archive.names())
    if fmt.MANIFEST not in names:
        result.add(
            Check(
                "manifest",
                FAILED,
                "no manifest",
                [Problem(fmt.MANIFEST, "missing: this is not an rlam bundle, or it was cut")],
            )
        )
        return False
    try:
        raw = archive.read(fmt.MANIFEST)
        manifest = fmt.Manifest.parse(raw)
    except BundleError as exc:
        result.add(Check("manifest", FAILED, "unreadable manifest", exc.problems))
        return False
    result.manifest = manifest
    result.manifest_hash = blake3.blake3(raw).hexdigest()
    problems: list[Problem] = []
    for name in sorted(names - set(manifest.files) - {fmt.MANIFEST}):
        problems.append(Problem(name, "not listed in the manifest (added after export?)"))
    for name in sorted(set(manifest.files) - names):
        problems.append(Problem(name, "listed in the manifest but missing from the zip"))
    checked_objects = 0
    for name in sorted(set(manifest.files) & names):
        entry = manifest.files[name]
        problem = _check_entry(result, name, entry)
        if problem:
            problems.append(Problem(name, problem))
        elif name.startswith("objects/"):
            checked_objects += 1
    if manifest.schema_version > SCHEMA_VERSION:
        problems.append(
            Problem(
                fmt.MANIFEST,
                f"trace schema version {manifest.schema_version} is newer than this "
                f"rlam-jupyter reads ({SCHEMA_VERSION}); upgrade rlam-jupyter",
            )
        )
    status = FAILED if problems else OK
    summary = (
        f"{len(manifest.files)} files, every blake3 matches; "
        f"{checked_objects} objects match their content hash"
        if not problems
        else f"{len(problems)} file(s) do not match the manifest"
    )
    result.add(Check("manifest", status, summary, problems))
    return True


def _check_entry(result: Inspection, name: str, entry: fmt.FileEntry) -> str | None:
    """Hash one entry (streaming) and check what its kind allows; returns a problem or None."""
    archive = result.archive
    assert archive is not None
    size = archive.size(name)
    if size != entry.bytes:
        what = "truncated" if size < entry.bytes else "longer than exported"
        return f"{size:,} bytes, the manifest says {entry.bytes:,} ({what})"
    obj = fmt.OBJECT_NAME.match(name)
    keep = obj is not None or name.endswith((".parquet", ".json", ".ipynb"))
    try:
        data = archive.read(name) if keep else None
    except BundleError as exc:
        return exc.problems[0].problem
    if data is None:
        hasher = blake3.blake3()
        try:
            with archive.open(name) as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    hasher.update(chunk)
        except Exception as exc:
            return f"corrupt entry: {exc}"
        digest = hasher.hexdigest()
    else:
        digest = blake3.blake3(data).hexdigest()
    if digest != entry.blake3:
        return "content altered: its blake3 does not match the manifest"
    if name.startswith("objects/"):
        if obj is None:
            return "not a valid object name (objects/xx/<blake3>.<kind>)"
        assert data is not None
        try:
            matches = object_matches(obj.group(3), data, obj.group(2))
        except ValueError as exc:
            return f"object unreadable: {exc}"
        if not matches:
            return "object content does not match the hash in its name (altered)"
        result.objects[name] = obj.group(2)
    elif data is not None and name.endswith(".parquet"):
        result.contents[name] = data
    elif data is not None and name.endswith((".json", ".ipynb")):
        try:
            result.contents[name] = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            return f"not valid JSON ({exc})"
    return None
