"""Round trip of a no-op MCP tool call: ``rlam mcp`` beside a bare server on the same SDK.

Run: ``python benchmarks/mcp.py [--calls 300] [--warmup 30] [--modes auto legacy]
[--profile DIR]``. One process drives, with the SDK's own client, four servers per client
mode (the SDK's default ``auto``, which speaks the stateless 2026-07-28 revision, and
``legacy``, the initialize handshake of 2025-11-25), all at once:
``rlam mcp --actions benchmarks/mcp_actions.py`` over stdio and over Streamable HTTP
(bearer token), and the floor, ``benchmarks/mcp_floor.py`` (the SDK's low-level server,
one no-op tool), over the same two transports. The rows are interleaved call by call
(in a shuffled order each round), so a noisy neighbour hits every row alike. Our no-op
action is called with a new ``n`` each time (a cache miss: the step is checked, run,
hashed and recorded) and with one repeated ``n`` (a cache hit: the step is recorded and
served from the cache). In-process rows time the same call without SDK or transport
(:class:`ActionCalls` and the answer; the engine alone), to show where the extra goes.

Target (issue 17): extra = ours − floor ≤ 1 ms p50 per call, on each transport.
``--profile DIR`` runs every server under cProfile (``DIR/<server>.prof``) and prints
where each spends its time instead of writing the results.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# this file's name is the SDK's package name: its folder goes last on the path (a stable
# sort), so `import mcp` finds the SDK and `import report` still finds ours
sys.path.sort(key=lambda entry: Path(entry or ".").resolve() == Path(__file__).resolve().parent)

import anyio
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp_types import Implementation
from report import RESULTS, percentiles, write

HERE = Path(__file__).resolve().parent
ACTIONS = HERE / "mcp_actions.py"
FLOOR = HERE / "mcp_floor.py"
TOKEN = "benchmark-token-0123456789"
CLIENT = Implementation(name="rlam-benchmark", version="1")
TARGET_MS = 1.0
RLAM = "rlam mcp"
BARE = "bare SDK server (floor)"
NO_STEP = "text (no step)"
"""What the floor's no-op answers: a text, no structured content."""


@dataclass
class Row:
    """One measured way of making the call: untimed ``prepare(i)``, timed ``call``."""

    what: str
    transport: str
    protocol: str
    """The protocol revision the client and server agreed on ("" in process)."""
    prepare: Callable[[int], Any]
    call: Callable[[Any], Awaitable[str]]
    expect: str
    """The status every measured call must answer (a hit that missed is no hit)."""
    samples: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)


def server_argv(label: str, argv: list[str], profile: Path | None) -> list[str]:
    """``argv`` for ``python``, under cProfile writing ``profile/label.prof`` if asked."""
    if profile is None:
        return argv
    return ["-m", "cProfile", "-o", str(profile / f"{label}.prof"), *argv]


def rlam_argv(folder: Path, *extra: str) -> list[str]:
    return ["-m", "rlam_jupyter", "mcp", "--store", str(folder / ".rlam"), "--run", "bench",
            "--actions", str(ACTIONS), *extra]  # fmt: skip


async def stdio_client(stack: AsyncExitStack, argv: list[str], mode: str) -> Client:
    params = StdioServerParameters(command=sys.executable, args=argv, env=dict(os.environ))
    client = Client(params, client_info=CLIENT, mode=mode, read_timeout_seconds=120)  # type: ignore[arg-type]
    return await stack.enter_async_context(client)


async def http_client(
    stack: AsyncExitStack, argv: list[str], mode: str, log: Path, token: str | None
) -> Client:
    """Start an HTTP server process (stopped with SIGINT when ``stack`` closes, so a
    profiled one writes its profile) and connect to the URL it prints to stderr."""
    with log.open("w") as err:
        process = subprocess.Popen([sys.executable, *argv], stderr=err, env=dict(os.environ))
    stack.callback(stop, process)
    url = wait_for_url(process, log)
    headers = {"Authorization": f"Bearer {token}"} if token else None
    http = await stack.enter_async_context(create_mcp_http_client(headers=headers))
    client = Client(
        streamable_http_client(url, http_client=http),
        client_info=CLIENT,
        mode=mode,  # type: ignore[arg-type]
        read_timeout_seconds=120,
    )
    return await stack.enter_async_context(client)


def wait_for_url(process: subprocess.Popen[bytes], log: Path, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = re.search(r"at (http://\S+/mcp)", log.read_text())
        if found:
            return found.group(1)
        if process.poll() is not None:
            break
        time.sleep(0.05)
    raise RuntimeError(f"{process.args} printed no URL:\n{log.read_text()}")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def remote(client: Client) -> Callable[[Any], Awaitable[str]]:
    async def call(arguments: dict[str, Any]) -> str:
        result = await client.call_tool("noop", arguments)
        if result.is_error:
            raise RuntimeError(f"the no-op call failed: {result.content}")
        return str((result.structured_content or {}).get("status", NO_STEP))

    return call


def in_process_rows(store: Path) -> list[Row]:
    """The call as ``rlam mcp`` handles it, minus SDK and transport: the whole
    :meth:`ActionCalls.call` and the answer, then the engine's ``execute`` alone."""
    from rlam_jupyter.engine.session import Session
    from rlam_jupyter.frontends.mcp.calls import ORIGIN, ActionCalls, Caller
    from rlam_jupyter.frontends.mcp.results import step_answer
    from rlam_jupyter.operations.agent.tools import ToolCall, to_proposal
    from rlam_jupyter.operations.bundle.reexecute import import_actions

    import_actions(str(ACTIONS))
    session = Session.create(store)
    calls = ActionCalls(session, run_name="bench-calls", seed=0)
    caller = Caller(CLIENT.name, CLIENT.version, request_id=None)
    engine_run = session.start("bench-engine", 0)

    async def through_calls(arguments: dict[str, Any]) -> str:
        result, proposal = calls.call("noop", arguments, caller)
        step_answer(result, proposal)
        return result.status

    def proposal(arguments: dict[str, Any]) -> Any:
        call = ToolCall("bench", "noop", json.dumps(arguments))
        return to_proposal(call, session.engine.registry, origin=ORIGIN)

    async def engine_only(prepared: Any) -> str:
        return session.engine.execute(engine_run, prepared).status

    def engine_miss(i: int) -> Any:
        return proposal(miss(4)(i))

    def engine_hit(i: int) -> Any:
        return proposal(hit(4)(i))

    where, label = "in process", "ActionCalls.call + answer (no SDK, no transport)"
    return [
        Row(f"{label}, new n", where, "", miss(3), through_calls, "succeeded"),
        Row(f"{label}, same n", where, "", hit(3), through_calls, "cached"),
        Row("Engine.execute alone, new n", where, "", engine_miss, engine_only, "succeeded"),
        Row("Engine.execute alone, same n", where, "", engine_hit, engine_only, "cached"),
    ]


def miss(stream: int) -> Callable[[int], dict[str, Any]]:
    """A new ``n`` every call (streams apart, so no row hits another's cache entry)."""
    return lambda i: {"n": stream * 1_000_000 + i}


def hit(stream: int) -> Callable[[int], dict[str, Any]]:
    """The same ``n`` every call: the first (a warm-up) misses, the rest hit."""
    return lambda _i: {"n": -stream - 1}


async def open_rows(stack: AsyncExitStack, tmp: Path, mode: str, profile: Path | None) -> list[Row]:
    """Start the four servers of one client mode, connect a client to each; their rows."""

    def argv(label: str, argv: list[str]) -> list[str]:
        return server_argv(f"{label}-{mode}", argv, profile)

    tmp.mkdir(parents=True)
    http = ["--http", "127.0.0.1:0", "--token", TOKEN]
    ours_stdio = await stdio_client(stack, argv("rlam-stdio", rlam_argv(tmp / "stdio")), mode)
    floor_stdio = await stdio_client(stack, argv("floor-stdio", [str(FLOOR)]), mode)
    ours_http = await http_client(
        stack, argv("rlam-http", rlam_argv(tmp / "http", *http)), mode, tmp / "rlam.log", TOKEN
    )
    floor_http = await http_client(
        stack, argv("floor-http", [str(FLOOR), "--http", "0"]), mode, tmp / "floor.log", None
    )
    rows = []
    for transport, ours, floor in (("stdio", ours_stdio, floor_stdio),
                                   ("http", ours_http, floor_http)):  # fmt: skip
        protocol = ours.protocol_version
        if floor.protocol_version != protocol:
            raise RuntimeError(f"{transport}: the floor speaks {floor.protocol_version}, "
                               f"rlam mcp {protocol}: not the same call")  # fmt: skip
        floor_call, ours_call = remote(floor), remote(ours)
        rows += [
            Row(BARE, transport, protocol, lambda _i: {"n": 0}, floor_call, NO_STEP),
            Row(
                f"{RLAM}, new n (cache miss)", transport, protocol, miss(0), ours_call, "succeeded"
            ),
            Row(f"{RLAM}, same n (cache hit)", transport, protocol, hit(0), ours_call, "cached"),
        ]
    return rows


async def measure(rows: list[Row], calls: int, warmup: int) -> None:
    order = list(rows)
    shuffle = random.Random(17).shuffle
    for i in range(warmup + calls):
        shuffle(order)
        for row in order:
            prepared = row.prepare(i)
            started = time.perf_counter()
            status = await row.call(prepared)
            elapsed = time.perf_counter() - started
            if i >= warmup:
                row.samples.append(elapsed)
                row.statuses[status] += 1


def table(rows: list[Row]) -> list[dict[str, Any]]:
    """One line per row; a server row's extra is its p50/p95 minus the floor's, same
    transport. Refuses rows whose calls did not all answer as expected."""
    floors = {(r.transport, r.protocol): percentiles(r.samples) for r in rows if r.what == BARE}
    lines = []
    for row in rows:
        if set(row.statuses) != {row.expect}:
            raise RuntimeError(f"{row.what} ({row.transport}): expected every call to be "
                               f"{row.expect!r}, got {dict(row.statuses)}")  # fmt: skip
        measured = percentiles(row.samples)
        line: dict[str, Any] = {
            "what": row.what,
            "transport": row.transport,
            "protocol": row.protocol,
            "answered": "/".join(sorted(row.statuses)),
            **measured,
        }
        floor = floors.get((row.transport, row.protocol))
        if row.what.startswith(RLAM) and floor is not None:
            extra = measured["p50_ms"] - floor["p50_ms"]
            line["extra_p50_ms"] = extra
            line["extra_p95_ms"] = measured["p95_ms"] - floor["p95_ms"]
            line["target"] = f"extra ≤ {TARGET_MS:g} ms p50"
            line["met"] = "yes" if extra <= TARGET_MS else "no"
        lines.append(line)
    return lines


def print_profiles(profile: Path, top: int = 25) -> None:
    import pstats

    for path in sorted(profile.glob("*.prof")):
        print(f"\n=== {path.name}: top {top} by own time")
        pstats.Stats(str(path)).sort_stats("tottime").print_stats(top)
        print(f"=== {path.name}: top {top} by cumulative time")
        pstats.Stats(str(path)).sort_stats("cumulative").print_stats(top)


def summary(lines: list[dict[str, Any]], args: argparse.Namespace, wall: float) -> list[str]:
    """The notes under the table: how it was measured, and the verdict on the target."""
    extras = [line for line in lines if "extra_p50_ms" in line]
    worst = max(extras, key=lambda line: line["extra_p50_ms"])
    verdict = "met" if worst["extra_p50_ms"] <= TARGET_MS else "not met"
    return [
        f"{args.calls} calls per row after {args.warmup} warm-up calls, all rows interleaved "
        f"in one run (wall time {wall:.0f} s); client modes {', '.join(args.modes)}: auto is "
        "the SDK's default (discovers the stateless 2026-07-28 revision), legacy the "
        "initialize handshake.",
        f"extra = rlam mcp − the bare SDK server, same transport and protocol; target "
        f"≤ {TARGET_MS:g} ms p50 on every transport: {verdict} (worst: {worst['what']}, "
        f"{worst['transport']} {worst['protocol']}, {worst['extra_p50_ms']:.2f} ms).",
    ]


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300, help="measured calls per row")
    parser.add_argument("--warmup", type=int, default=30, help="unmeasured calls per row first")
    parser.add_argument("--modes", nargs="+", default=["auto", "legacy"],
                        choices=["auto", "legacy"],
                        help="the client's connect modes: auto (the SDK's default: discovers "
                        "2026-07-28, stateless) and/or legacy (the initialize handshake)")  # fmt: skip
    parser.add_argument("--results", type=Path, default=RESULTS, metavar="DIR",
                        help="where mcp.json goes (default: benchmarks/results)")  # fmt: skip
    parser.add_argument("--profile", type=Path, default=None, metavar="DIR",
                        help="run the servers under cProfile into DIR; print, write nothing")  # fmt: skip
    args = parser.parse_args(argv)
    if args.calls < 1 or args.warmup < 1:
        parser.error("--calls and --warmup must be at least 1 (the first hit call misses)")
    if args.profile is not None:
        args.profile = args.profile.resolve()
        args.profile.mkdir(parents=True, exist_ok=True)

    async def run(tmp: Path) -> list[Row]:
        async with AsyncExitStack() as stack:
            rows = []
            for mode in dict.fromkeys(args.modes):
                rows += await open_rows(stack, tmp / mode, mode, args.profile)
            rows += in_process_rows(tmp / "in-process" / ".rlam")
            await measure(rows, args.calls, args.warmup)
            return rows

    with tempfile.TemporaryDirectory(prefix="rlam-bench-mcp-") as tmp:
        started = time.perf_counter()
        lines = table(anyio.run(run, Path(tmp)))
        wall = time.perf_counter() - started
    if args.profile is not None:
        print_profiles(args.profile)
        return lines
    notes = summary(lines, args, wall)
    extra = {"calls": args.calls, "warmup": args.warmup, "modes": args.modes}
    write("mcp", lines, {**extra, "target_ms": TARGET_MS, "notes": notes}, args.results)
    for note in notes:
        print(f"note: {note}")
    return lines


if __name__ == "__main__":
    main()
