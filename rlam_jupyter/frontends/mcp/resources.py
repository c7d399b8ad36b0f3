"""The trace as MCP resources: ``rlam://runs`` (every run), ``rlam://runs/{run}`` (one
run: its summary and a page of its steps) and ``rlam://steps/{step_id}`` (one step in
detail, with previews), as JSON.

They answer what the run tools answer (:mod:`.run_tools`: the trace browser's own
questions, :mod:`operations.browse`) over the same store snapshot, for clients that
attach context by URI rather than call a tool. A run's page takes ``?offset=N&limit=M``
(default the first :data:`PAGE` steps); the rest is a further page, or ``rlam_steps``.
A URI that names nothing raises :class:`RlamError` naming the URI and the valid forms.
"""

from __future__ import annotations

import json
from urllib.parse import parse_qs, unquote, urlsplit

import mcp_types as types

from rlam_jupyter.errors import RlamError
from rlam_jupyter.operations.browse import queries, step_detail
from rlam_jupyter.operations.browse.rows import Row, rows
from rlam_jupyter.operations.browse.snapshots import Snapshot

SCHEME = "rlam"
RUNS_URI = "rlam://runs"
RUN_TEMPLATE = "rlam://runs/{run}"
STEP_TEMPLATE = "rlam://steps/{step_id}"
JSON = "application/json"
PAGE = 100
"""Steps of a run's resource without ``?limit`` (the sidebar's page)."""
FORMS = (
    f"{RUNS_URI}, {RUN_TEMPLATE} (a run's id, name or unique id prefix; "
    f"?offset=N&limit=M for a page of its steps) or {STEP_TEMPLATE}"
)


def resource_templates() -> list[types.ResourceTemplate]:
    return [
        types.ResourceTemplate(
            name="run",
            uri_template=RUN_TEMPLATE,
            description="One run: its summary and a page of its steps (action, status, seed, "
            f"output hashes, error); run is its id, name or id prefix; ?offset=N&limit=M "
            f"(limit at most {queries.MAX_PAGE}) for other pages.",
            mime_type=JSON,
        ),
        types.ResourceTemplate(
            name="step",
            uri_template=STEP_TEMPLATE,
            description="One step in detail: parameters, where its inputs came from, its "
            "outputs with previews, its error and history, the call that proposed it.",
            mime_type=JSON,
        ),
    ]


def resources(snapshot: Snapshot) -> list[types.Resource]:
    """``rlam://runs``, then one resource per run of the store."""
    listed = [
        types.Resource(
            name="runs",
            uri=RUNS_URI,
            description="The runs of this server's trace store, with their step counts.",
            mime_type=JSON,
        )
    ]
    for run in queries.runs(snapshot.con):
        listed.append(
            types.Resource(
                name=f"run {run['name']}",
                uri=f"rlam://runs/{run['run_id']}",
                description=f"run {run['name']} ({run['status']}): {run['steps']} step(s), "
                f"{run['failed']} failed, {run['rejected']} rejected",
                mime_type=JSON,
            )
        )
    return listed


def read_resource(snapshot: Snapshot, uri: str) -> types.ReadResourceResult:
    """The JSON of the resource at ``uri``; :class:`RlamError` when it names nothing."""
    data = _answer(snapshot, uri)
    text = json.dumps(data, default=str, indent=1)
    return types.ReadResourceResult(
        contents=[types.TextResourceContents(uri=uri, mime_type=JSON, text=text)]
    )


def _answer(snapshot: Snapshot, uri: str) -> Row:
    parts = urlsplit(uri)
    segments = [unquote(s) for s in parts.path.split("/") if s]
    if parts.scheme != SCHEME or parts.fragment:
        raise _unknown(uri, "not an rlam:// resource")
    query = parse_qs(parts.query, keep_blank_values=True)
    if parts.netloc == "runs" and not segments and not query:
        return {"store": str(snapshot.layout.root), "runs": queries.runs(snapshot.con)}
    if parts.netloc == "runs" and len(segments) == 1:
        return _run(snapshot, uri, segments[0], query)
    if parts.netloc == "steps" and len(segments) == 1 and not query:
        return _step(snapshot, uri, segments[0])
    raise _unknown(uri, "no such resource")


def _run(snapshot: Snapshot, uri: str, ref: str, query: dict[str, list[str]]) -> Row:
    unknown = sorted(set(query) - {"offset", "limit"})
    if unknown:
        raise _unknown(uri, f"unknown query parameter {unknown[0]!r}")
    try:
        offset = int(query.get("offset", ["0"])[-1])
        limit = int(query.get("limit", [str(PAGE)])[-1])
        run_id = queries.resolve_run(snapshot.con, ref)
        page = queries.steps_page(
            snapshot.materialise("steps"),
            run_id,
            offset=offset,
            limit=limit,
            index=snapshot.step_index(run_id),
        )
    except (RlamError, ValueError) as exc:
        raise _unknown(uri, str(exc)) from None
    return {"run": queries.run(snapshot.con, run_id), **page}


def _step(snapshot: Snapshot, uri: str, step_id: str) -> Row:
    con = snapshot.materialise("artifacts", "edges")
    found = rows(con, "SELECT run_id, seq FROM steps WHERE step_id = ? LIMIT 1", [step_id])
    if not found:
        raise _unknown(uri, f"no step {step_id!r} in this store (step ids: see {RUNS_URI}/RUN)")
    return step_detail.step(con, found[0]["run_id"], int(found[0]["seq"]))


def _unknown(uri: str, why: str) -> RlamError:
    return RlamError(f"resource {uri!r}: {why}; the resources are {FORMS}")
