"""REST and SSE against the peer, with clients that cost the relay's cores little.

Run: ``.venv/bin/python bench/rest.py [--rounds N] [--seconds S] [--quick]``.

Issue 15's targets for the HTTP path: "REST with 8 concurrent senders: at least 2x
the peer's pipelined rate in the same run; SSE send->receive p50 at most the peer's".
``bench/server.py`` drives relaybus with httpx, whose client side costs about as
much CPU per request as the server's on this 2-core machine, so its figures are as
much the client's as the relay's. Here, in interleaved rounds of one run:

1. **REST**: ``wrk`` (Debian's package, a C load generator; ``apt install wrk``)
   with 8 keep-alive connections and 2 threads posts ``{"sender": "alice", "to":
   "bob", "body": <64 bytes>}`` to ``POST /v1/messages`` for ``--seconds``; any
   non-2xx answer fails the run. Figures: requests/s and the server's CPU per
   request (``/proc``). Each request is one message stored, committed and acknowledged.
2. **SSE**: bob holds ``GET /v1/stream`` on a raw keep-alive socket (chunked
   frames parsed by hand); alice posts on raw keep-alive sockets, a prebuilt request
   each. Sequential: post one, wait until bob's stream has it, post the next (p50/p99
   of post-to-arrival); pipelined: 8 connections post ``--pipelined`` messages, the
   rate is first post to last arrival.
3. **The peer**, agent-relay 1.6.0 (``bench/peers/agent_relay.py``: its daemon on its
   Unix socket, data on disk, its own Node client): the same two-agent workload.

Prints each round and the medians with the ratios against the targets. The relay is
``python -m relaybus serve --port 0`` at its default log level (an access-log line
per request) on a fresh relay directory, stopped by its pid at the end. All traffic
is loopback; every loop is bounded in count and every wait in time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import uvloop

if __package__ in (None, ""):  # run as a script: import the benchmarks as a package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (  # noqa: E402
    TwoAgentRound,
    TwoAgentSummary,
    announced_server,
    answer_head,
    cpu_seconds,
)
from bench.peers import agent_relay  # noqa: E402
from bench.server import BODY, CONCURRENCY, TIMEOUT, Arrivals, Server  # noqa: E402

#: ``asyncio.wait``'s "return when the first is done".
FIRST = asyncio.FIRST_COMPLETED
#: The JSON body of every send.
SEND = json.dumps({"sender": "alice", "to": "bob", "body": BODY}).encode()


@contextlib.contextmanager
def relay_server(checkout: Path, folder: Path) -> Iterator[Server]:
    """``relaybus serve --port 0`` of ``checkout`` (its own ``.venv``) on a fresh relay
    directory in ``folder``, stopped by its pid after the block."""
    folder.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYBUS_")}
    env["RELAYBUS_DIR"] = str(folder / ".relay")
    python = str(checkout / ".venv" / "bin" / "python")
    command = [python, "-m", "relaybus", "serve", "--port", "0"]
    with announced_server(command, folder, env, TIMEOUT) as (url, pid):
        yield Server(url=url, pid=pid)


# -- a raw HTTP/1.1 keep-alive connection -------------------------------------------


class RawConnection:
    """One keep-alive HTTP/1.1 connection to the relay that sends prebuilt requests and
    reads answers with a ``Content-Length`` (what uvicorn sends for JSON): a few
    microseconds of this process's CPU a request, where httpx spends about a millisecond."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, url: str) -> RawConnection:
        parts = urlsplit(url)
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        return cls(reader, writer)

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        """Send ``raw`` (a whole request); return the status and the body.

        Raises:
            RuntimeError: the answer has no ``Content-Length``.
        """
        self.writer.write(raw)
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), TIMEOUT)
        status, length = answer_head(head)
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


def post_request(url: str, path: str, body: bytes) -> bytes:
    """A whole ``POST`` request of ``body`` (JSON) to ``path`` on ``url``'s host."""
    host = urlsplit(url).netloc
    return (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def post_ok(conn: RawConnection, raw: bytes) -> None:
    """Post ``raw``; fail unless the relay answered 201."""
    status, body = await conn.request(raw)
    if status != 201:
        raise RuntimeError(f"send: {status} {body[:200]!r}")


@contextlib.asynccontextmanager
async def raw_stream(url: str, token: str, arrivals: Arrivals) -> AsyncIterator[None]:
    """``GET /v1/stream`` with ``token`` on a raw socket, past its ready frame, counting
    the ``message.sent`` frames into ``arrivals`` until the block ends.

    Raises:
        RuntimeError: the stream did not open (not a 200 with chunked frames).
    """
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    writer.write(
        f"GET /v1/stream HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        f"Authorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n".encode()
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
    if int(head[9:12]) != 200 or b"chunked" not in head.lower():
        writer.close()
        raise RuntimeError(f"the stream did not open: {head[:300]!r}")
    ready = asyncio.Event()

    async def read() -> None:
        pending = b""
        while True:  # one chunk: its size in hex, CRLF, the bytes, CRLF
            size = int((await reader.readuntil(b"\r\n"))[:-2], 16)
            if size == 0:
                return
            pending += (await reader.readexactly(size + 2))[:-2]
            *frames, pending = pending.split(b"\n\n")
            for frame in frames:
                kind = re.search(rb"(?m)^event: (\S+)", frame)
                if kind is None:
                    continue  # a ping
                if kind.group(1) == b"message.sent":
                    arrivals.arrived()
                elif kind.group(1) == b"ready":
                    ready.set()

    reading = asyncio.ensure_future(read())
    try:
        waiting = asyncio.ensure_future(ready.wait())
        done, _ = await asyncio.wait([waiting, reading], timeout=TIMEOUT, return_when=FIRST)
        if waiting not in done:
            waiting.cancel()
            raise RuntimeError("the stream sent no ready frame")
        yield
    finally:
        reading.cancel()
        with contextlib.suppress(asyncio.CancelledError, asyncio.IncompleteReadError):
            await reading
        writer.close()


# -- 1: REST with wrk ----------------------------------------------------------------

#: wrk's script: the same POST on every request.
WRK_SCRIPT = """wrk.method = "POST"
wrk.body = [[{body}]]
wrk.headers["Content-Type"] = "application/json"
"""


@dataclass(frozen=True)
class Load:
    """A wrk run: requests per second and the server's CPU per request (ms)."""

    rate: float
    server_cpu_ms: float


def wrk_load(server: Server, script: Path, seconds: float) -> Load:
    """``POST /v1/messages`` from wrk, :data:`CONCURRENCY` connections, for ``seconds``.

    Raises:
        RuntimeError: wrk failed, or the relay answered anything but 2xx.
    """
    cpu0 = cpu_seconds(server.pid)
    done = subprocess.run(
        ["wrk", "-t2", f"-c{CONCURRENCY}", f"-d{seconds:g}s", "-s", str(script),
         f"{server.url}/v1/messages"],
        capture_output=True, text=True, timeout=seconds + TIMEOUT, check=False,
    )  # fmt: skip
    cpu = cpu_seconds(server.pid) - cpu0
    out = done.stdout
    if done.returncode != 0 or "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk: exit {done.returncode}\n{out}{done.stderr}")
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    rate = float(re.search(r"Requests/sec:\s*([\d.]+)", out).group(1))  # type: ignore[union-attr]
    return Load(rate, 1000 * cpu / total)


# -- 2: SSE ---------------------------------------------------------------------------


async def sse_round(server: Server, token: str, sequential: int, pipelined: int) -> TwoAgentRound:
    """The two-agent workload with raw ``POST /v1/messages`` in and bob's raw SSE out."""
    raw = post_request(server.url, "/v1/messages", SEND)
    inbox = Arrivals()
    conns = [await RawConnection.open(server.url) for _ in range(CONCURRENCY)]
    try:
        async with raw_stream(server.url, token, inbox):
            base = inbox.count
            latencies: list[float] = []
            start = time.perf_counter()
            for i in range(sequential):
                t0 = time.perf_counter()
                await post_ok(conns[0], raw)
                await inbox.wait_for(base + i + 1)
                latencies.append((inbox.last - t0) * 1000)
            sequential_s = time.perf_counter() - start
            left = [pipelined]

            async def worker(conn: RawConnection) -> None:
                while left[0] > 0:
                    left[0] -= 1
                    await post_ok(conn, raw)

            t0 = time.perf_counter()
            await asyncio.gather(*(worker(c) for c in conns))
            await inbox.wait_for(base + sequential + pipelined)
            pipelined_s = inbox.last - t0
    finally:
        for conn in conns:
            conn.close()
    return TwoAgentRound(latencies, sequential_s, pipelined, pipelined_s)


async def register(server: Server, names: list[str]) -> dict[str, str]:
    """Register ``names`` (open mode); returns each agent's token."""
    conn = await RawConnection.open(server.url)
    tokens = {}
    try:
        for name in names:
            body = json.dumps({"id": name}).encode()
            status, answer = await conn.request(post_request(server.url, "/v1/agents", body))
            if status not in (200, 201):
                raise RuntimeError(f"register {name}: {status} {answer[:200]!r}")
            tokens[name] = json.loads(answer)["token"]
    finally:
        conn.close()
    return tokens


# -- the run ---------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", type=Path, help="another checkout (with .venv) to compare")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (5)")
    parser.add_argument("--seconds", type=float, default=8.0, help="each wrk run (8)")
    parser.add_argument("--sequential", type=int, default=500, help="per round (500)")
    parser.add_argument("--pipelined", type=int, default=1000, help="per round (1000)")
    parser.add_argument("--quick", action="store_true", help="1 round, small numbers")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.seconds, args.sequential, args.pipelined = 1, 2.0, 100, 200
    if shutil.which("wrk") is None:
        sys.exit("bench/rest.py: wrk is not installed (Debian: apt install wrk)")
    try:
        package = agent_relay.install()
    except agent_relay.PeerUnavailable as err:
        sys.exit(f"bench/rest.py: the peer is unavailable: {err}")
    checkouts = {"relaybus": Path(__file__).resolve().parents[1]}
    if args.before:
        checkouts = {"before": args.before.resolve(), "after": checkouts["relaybus"]}
    loads: dict[str, list[Load]] = {name: [] for name in checkouts}
    sse: dict[str, list[TwoAgentRound]] = {name: [] for name in checkouts}
    theirs: list[TwoAgentRound] = []
    with (
        tempfile.TemporaryDirectory(prefix="relaybus-rest-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        root = Path(tmp)
        script = root / "post.lua"
        script.write_text(WRK_SCRIPT.format(body=SEND.decode()), encoding="utf-8")
        servers = {
            name: stack.enter_context(relay_server(checkout, root / name))
            for name, checkout in checkouts.items()
        }
        peer = stack.enter_context(agent_relay.daemon(package))
        tokens = {name: uvloop.run(register(s, ["alice", "bob"])) for name, s in servers.items()}
        for server in servers.values():
            wrk_load(server, script, 1.0)  # warm-up: connections, code paths
        for n in range(args.rounds):  # interleaved: each round sees the same noise
            for name, server in servers.items():
                loads[name].append(wrk_load(server, script, args.seconds))
                sse[name].append(
                    uvloop.run(
                        sse_round(server, tokens[name]["bob"], args.sequential, args.pipelined)
                    )
                )
                mine = TwoAgentSummary.of(sse[name][-1:])
                print(
                    f"round {n + 1} {name}: REST {loads[name][-1].rate:6.0f} req/s "
                    f"({loads[name][-1].server_cpu_ms:.2f} ms server CPU each); SSE p50 "
                    f"{mine.p50_ms:.2f} ms, pipelined {mine.pipelined_rate:.0f} msg/s",
                    flush=True,
                )
            theirs += agent_relay.run_rounds(
                package, peer.socket, sequential=args.sequential, pipelined=args.pipelined
            )
            other = TwoAgentSummary.of(theirs[-1:])
            print(
                f"round {n + 1} peer: p50 {other.p50_ms:.2f} ms, "
                f"pipelined {other.pipelined_rate:.0f} msg/s",
                flush=True,
            )
    peer_s = TwoAgentSummary.of(theirs)
    print(f"\nmedians of {args.rounds} interleaved rounds")
    print(
        f"peer agent-relay {agent_relay.VERSION} (data on disk): p50 {peer_s.p50_ms:.2f} ms, "
        f"p99 {peer_s.p99_ms:.2f} ms, pipelined {peer_s.pipelined_rate:.0f} msg/s"
    )
    for name in checkouts:
        rest = statistics.median(x.rate for x in loads[name])
        cpu = statistics.median(x.server_cpu_ms for x in loads[name])
        ours = TwoAgentSummary.of(sse[name])
        print(
            f"{name}: REST (wrk, {CONCURRENCY} connections) {rest:.0f} req/s, {cpu:.2f} ms "
            f"server CPU each; SSE (raw POST in, raw stream out) p50 {ours.p50_ms:.2f} ms, "
            f"p99 {ours.p99_ms:.2f} ms, pipelined {ours.pipelined_rate:.0f} msg/s"
        )
        print(
            f"{name}: REST / peer pipelined {rest / peer_s.pipelined_rate:.2f}x (target >= 2.00x);"
            f" SSE p50 / peer p50 {ours.p50_ms / peer_s.p50_ms:.2f}x (target <= 1.00x)"
        )


if __name__ == "__main__":
    main()
