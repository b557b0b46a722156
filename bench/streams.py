"""Streaming benchmark, RestMQ against nginx + nchan: SSE publish-to-consumer latency, SSE and WebSocket fan-out at
saturation, idle connection memory.

    .venv/bin/python bench/streams.py                      # full run, both contenders (a few minutes)
    .venv/bin/python bench/streams.py --quick              # small counts, a few seconds a test
    .venv/bin/python bench/streams.py --contender restmq   # one contender only (restmq | nchan | both)

Starts its own embedded engine with one `python -m restmq serve` (one worker) and, when the contender is asked for,
nginx + nchan with one worker (bench/nchan.py; Debian: apt-get install -y nginx-light libnginx-mod-nchan). Writes
bench/results/streams.json and prints a markdown table with one column per contender. The load generator (this
process, asyncio on uvloop with raw sockets) shares the machine's cores with the servers and the engine; its CPU is
in the table. Within each test the contenders run back to back, their order swapped from one test to the next.

- RestMQ: publish `POST /q/<queue>` (form `value=...`, or a JSON array: a batch); consume `GET /sse/<queue>`
  (broadcast, the default policy) or `GET /ws/<queue>` (one JSON text frame `{"key":..,"value":..}` a message).
- nchan: publish `POST /pub/<channel>` (the raw body is one message; no batches); consume `GET /sub/<channel>` as
  EventSource (`data:` is the raw body) or WebSocket (one text frame a message).

1. latency: 100 SSE consumers on one queue / channel; a publisher sends `<sent ns>.<due ns>` (perf_counter) at a
   steady 1,000 msg/s (single POSTs over 8 keep-alive connections); each consumer parses every event: latency =
   receive time - send time (same process, same clock). Also from the due time: that adds the wait for a free
   publisher connection, which grows when the server answers POSTs late (no coordinated omission).
2. fan-out: 100 (and 1,000) SSE consumers; N messages of 100 bytes published as fast as possible (RestMQ: JSON
   batches of 100 on one connection; nchan: single POSTs over 8 keep-alive connections; and a round where RestMQ
   publishes single POSTs too); deliveries/s until every consumer has all N. N is at most 1,000, RestMQ's
   per-connection mailbox: a consumer with more messages waiting to be written is disconnected as too slow.
3. WebSocket fan-out: as 2. with WebSocket consumers (raw RFC 6455 frames parsed here, no compression).
4. idle memory: N idle SSE subscribers (subscribed, nothing published); RSS of the server process (RestMQ) or of
   the nginx worker (nchan) before and after.

Three rounds of each test (one of idle memory and of the 1,000-consumer fan-out); the median round is reported.
The consumers are asyncio Protocols (no task wake-up per read): nchan writes every message to every subscriber
on its own, so a heavier client would measure itself rather than nchan.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import datetime
import json
import os
import re
import resource
import signal
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvloop
from common import (
    STREAM_LIMITS,
    Server,
    busy_seconds,
    command_line,
    cpu_seconds,
    machine,
    raise_open_files_limit,
    restmq_serve,
    rss_kib,
    start_server,
)
from nchan import NchanServer, available, start_nchan

from restmq.storage.engine import EmbeddedEngine

BENCH = Path(__file__).resolve().parent
OPEN_CONCURRENCY = 200  # connections being opened at once (below uvicorn's listen backlog of 2048)
PUBLISHERS = 8  # keep-alive connections for single-message POSTs
BATCH = 100  # messages per RestMQ batch POST
LATENCY_TARGET = 2.0  # RestMQ SSE p99 at most this times nchan's
SATURATION_TARGET = 0.5  # RestMQ fan-out deliveries/s at least this times nchan's
RATE_KEPT = 0.98  # the latency target holds only if the publisher kept at least this share of the rate
CONTENDERS = ("restmq", "nchan")
BUSY = 0.2  # cores used by other processes during a test above which the report warns
Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]  # a publisher's keep-alive connection


# -- the contenders ---------------------------------------------------------------------------


def _request(method: str, path: str, body: bytes, content_type: str) -> bytes:
    return (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


@dataclass(frozen=True)
class Target:
    """One contender as the tests see it."""

    name: str
    port: int
    pid: int  # the process serving the connections: CPU and RSS
    engine_pid: int | None  # RestMQ's storage engine (CPU); nchan keeps messages in its own shared memory
    sse_prefix: str  # + channel: the SSE path
    ws_prefix: str | None  # + channel: the WebSocket path
    publish: Callable[[str, bytes], bytes]  # channel, message -> one raw HTTP request publishing it
    batch: Callable[[str, list[bytes]], bytes] | None  # channel, messages -> one request publishing them all
    value_re: re.Pattern[bytes]  # the two published timestamps (`<sent>.<due>`), in an SSE event
    subscribers: Callable[[], int]  # streaming connections open now (blocking: call in a thread)
    check: Callable[[], None]  # raises when the server died


def restmq_target(server: Server) -> Target:
    def publish(queue: str, value: bytes) -> bytes:
        return _request("POST", f"/q/{queue}", b"value=" + value, "application/x-www-form-urlencoded")

    def batch(queue: str, values: list[bytes]) -> bytes:
        return _request("POST", f"/q/{queue}", json.dumps([v.decode() for v in values]).encode(), "application/json")

    def subscribers() -> int:
        with urllib.request.urlopen(server.url("/metrics"), timeout=30) as response:
            text = response.read().decode()
        line = next(x for x in text.splitlines() if x.startswith("restmq_process_streams"))
        return int(float(line.split()[-1]))

    return Target(
        "restmq",
        server.port,
        server.proc.pid,
        server.engine_pid,
        "/sse/",
        "/ws/",
        publish,
        batch,
        re.compile(rb'"value":"(\d+)\.(\d+)"'),
        subscribers,
        server.check,
    )


def nchan_target(server: NchanServer) -> Target:
    def publish(channel: str, value: bytes) -> bytes:
        return _request("POST", f"/pub/{channel}", value, "text/plain")

    return Target(
        "nchan",
        server.port,
        server.pid,
        None,
        "/sub/",
        "/sub/",
        publish,
        None,
        re.compile(rb"^data: (\d+)\.(\d+)$", re.MULTILINE),
        server.subscribers,
        server.check,
    )


# -- raw HTTP/1.1 and WebSocket client --------------------------------------------------------


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:] if x)}
    if "content-length" in headers:
        return status, await reader.readexactly(int(headers["content-length"]))
    body = b""
    if headers.get("transfer-encoding", "").lower() == "chunked":
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            body += (await reader.readexactly(size + 2))[:-2]
        await reader.readuntil(b"\r\n")
    return status, body


async def close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(writer.wait_closed(), 2)


class Stream(asyncio.Protocol):
    """One SSE ("sse") or WebSocket ("ws") consumer connection, on raw asyncio callbacks: no task wake-up per read,
    so that the load generator costs as little as possible per delivery. Counts message events (SSE: `data:`
    lines, every message being one line; WebSocket: the last frames of text or binary messages) once the response
    head (and for SSE the first event: RestMQ's `retry:`, nchan's `: hi`) went by; with value_re, also the latency
    of each message: receive time - the perf_counter_ns() it carries."""

    def __init__(self, kind: str, value_re: re.Pattern[bytes] | None = None) -> None:
        loop = asyncio.get_running_loop()
        self.kind = kind
        self.value_re = value_re
        self.transport: asyncio.Transport | None = None
        self.head: asyncio.Future[bytes] = loop.create_future()  # the response head, then (SSE) the first event
        self.done: asyncio.Future[None] = loop.create_future()  # `expected` messages, or the connection lost
        self.closed: asyncio.Future[None] = loop.create_future()
        self.state = "head"
        self.buf = b""
        self.count = 0
        self.expected = 1 << 62
        self.latencies: list[int] = []  # ns from the POST being sent
        self.late: list[int] = []  # ns from the time the schedule had the POST due
        self.done_at: float | None = None
        self.eof = False

    def expect(self, n: int) -> None:
        self.expected = n
        self._check_done()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports only quack like Transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        if not self.head.done():
            self.head.set_result(b"connection closed")
        for future in (self.done, self.closed):
            if not future.done():
                future.set_result(None)

    def data_received(self, data: bytes) -> None:
        if self.state == "head":
            self.buf += data
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head, data, self.buf = self.buf[: end + 4], self.buf[end + 4 :], b""
            ok = head.startswith(b"HTTP/1.1 200" if self.kind == "sse" else b"HTTP/1.1 101")
            self.state = "first" if ok and self.kind == "sse" else "body"
            if not ok or self.kind == "ws":
                self.head.set_result(head)
                return
        if self.state == "first":
            self.buf += data
            end = self.buf.find(b"\n\n")
            if end < 0:
                return
            first, data, self.buf = self.buf[: end + 2], self.buf[end + 2 :], b""
            self.state = "body"
            self.head.set_result(first)
        if data:
            if self.kind == "ws":
                self._frames(data)
            elif self.value_re is not None:
                self._timed_events(data)
            else:
                # `\ndata: ` may straddle two reads: count in the last 6 bytes before plus this read
                self.count += (self.buf + data).count(b"\ndata: ")
                self.buf = data[-6:]
            self._check_done()

    def _timed_events(self, data: bytes) -> None:
        now = time.perf_counter_ns()
        self.buf += data
        cut = self.buf.rfind(b"\n\n")  # events before the last blank line are whole
        if cut >= 0:
            assert self.value_re is not None
            block, self.buf = self.buf[: cut + 2], self.buf[cut + 2 :]
            stamps = self.value_re.findall(block)
            self.latencies.extend(now - int(sent) for sent, _ in stamps)
            self.late.extend(now - int(due) for _, due in stamps)
            self.count += len(stamps)

    def _frames(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        at, end = 0, len(buf)
        while end - at >= 2:
            first, size, head = buf[at], buf[at + 1] & 0x7F, 2
            if size == 126:
                size, head = int.from_bytes(buf[at + 2 : at + 4]), 4
            elif size == 127:
                size, head = int.from_bytes(buf[at + 2 : at + 10]), 10
            if end - at < head + size:
                break
            if first & 0x80 and (first & 0x0F) in (0, 1, 2):  # the last frame of a text or binary message
                self.count += 1
            at += head + size
        self.buf = buf[at:]

    def _check_done(self) -> None:
        if self.count >= self.expected and not self.done.done():
            self.done_at = time.perf_counter()
            self.done.set_result(None)

    async def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(self.closed), 2)


async def open_stream(
    target: Target, channel: str, kind: str, value_re: re.Pattern[bytes] | None = None, timeout: float = 30.0
) -> Stream:
    """A consumer connection whose response head (and, for SSE, first event: the subscriber is registered then on
    both contenders) was read."""
    if kind == "sse":
        path, extra = target.sse_prefix + channel, "Accept: text/event-stream\r\n"
    else:
        assert target.ws_prefix is not None
        path = target.ws_prefix + channel
        key = base64.b64encode(os.urandom(16)).decode()
        extra = (
            f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n"
        )
    loop = asyncio.get_running_loop()
    _, stream = await loop.create_connection(lambda: Stream(kind, value_re), "127.0.0.1", target.port)
    try:
        assert stream.transport is not None
        stream.transport.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}\r\n".encode())
        head = await asyncio.wait_for(asyncio.shield(stream.head), timeout)
        if stream.state != "body" or b"data:" in head:
            raise RuntimeError(f"{kind} connect failed: {head.splitlines()[0].decode(errors='replace')}")
    except BaseException:
        await stream.close()
        raise
    return stream


async def open_many(
    target: Target, channel: str, n: int, kind: str, streams: list[Stream], value_re: re.Pattern[bytes] | None = None
) -> list[str]:
    """Open up to n consumers into `streams`; stop at the first failures and return their errors."""
    sem = asyncio.Semaphore(OPEN_CONCURRENCY)
    errors: list[str] = []

    async def one() -> None:
        async with sem:
            if errors:
                return
            try:
                streams.append(await open_stream(target, channel, kind, value_re))
            except Exception as exc:  # EMFILE, 503 too many streams, timeouts ...
                errors.append(f"{type(exc).__name__}: {exc}")

    await asyncio.gather(*(one() for _ in range(n)))
    return errors


async def close_all(streams: list[Stream]) -> None:
    await asyncio.gather(*(s.close() for s in streams))
    streams.clear()


async def wait_subscribers(target: Target, n: int, timeout: float = 60.0) -> int:
    """Poll the server's count of open streams until it is n (or the timeout passes); the last count."""
    deadline = time.monotonic() + timeout
    while (count := await asyncio.to_thread(target.subscribers)) != n and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    return count


# -- probes -----------------------------------------------------------------------------------


def cpu_now(target: Target) -> tuple[float, ...]:
    me = resource.getrusage(resource.RUSAGE_SELF)
    engine = cpu_seconds(target.engine_pid) if target.engine_pid else 0.0
    return cpu_seconds(target.pid), engine, me.ru_utime + me.ru_stime, busy_seconds()


def cores(before: tuple[float, ...], after: tuple[float, ...], wall: float) -> dict[str, float]:
    """Cores used by the server, the engine, this client and (others) every other process on the machine."""
    server, engine, client, busy = (b - a for a, b in zip(before, after, strict=True))
    used = {"server": server, "engine": engine, "client": client, "others": max(0.0, busy - server - engine - client)}
    return {f"{k}_cores": round(u / wall, 2) for k, u in used.items()}


def pct(sorted_values: list[float], p: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(p / 100 * len(sorted_values)))]


async def cancel_all(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


# -- the tests (each takes a Target and returns a plain dict) ----------------------------------


async def idle_memory(target: Target, n: int) -> dict[str, Any]:
    """RSS of the serving process before and after n idle SSE subscribers (subscribed; no message published)."""
    streams: list[Stream] = []
    try:
        await open_many(target, "bench-idle-warm", 100, "sse", streams)  # warm-up: first allocations
        await close_all(streams)
        await wait_subscribers(target, 0)
        before = rss_kib(target.pid)
        t0 = time.perf_counter()
        errors = await open_many(target, "bench-idle", n, "sse", streams)
        opened_in = time.perf_counter() - t0
        opened = len(streams)
        registered = await wait_subscribers(target, opened)
        target.check()
        after = rss_kib(target.pid)
        per = (after - before) / opened if opened else float("nan")
        print(f"  {target.name}: {opened:,}/{n:,} open ({registered:,} on the server), RSS {before:,} -> {after:,} KiB")
        return {
            "requested": n,
            "opened": opened,
            "server_streams": registered,
            "open_seconds": round(opened_in, 2),
            "errors": errors[:5],
            "error_count": len(errors),
            "rss_before_kib": before,
            "rss_after_kib": after,
            "kib_per_connection": round(per, 2),
        }
    finally:
        await close_all(streams)
        await wait_subscribers(target, 0)


async def latency(target: Target, consumers: int = 100, rate: int = 1000, seconds: int = 10) -> dict[str, Any]:
    """Publish-to-consumer latency of SSE consumers while one channel gets `rate` single-message POSTs a second."""
    channel, total = f"bench-latency-{time.monotonic_ns()}", rate * seconds
    streams: list[Stream] = []
    posters: list[Conn] = []
    workers: list[asyncio.Task[None]] = []
    try:
        errors = await open_many(target, channel, consumers, "sse", streams, target.value_re)
        if errors:
            raise RuntimeError(f"{target.name} latency: could not open the consumers: {errors[0]}")
        await wait_subscribers(target, consumers)
        for s in streams:
            s.expect(total)
        todo: asyncio.Queue[float | None] = asyncio.Queue()
        lags: list[float] = []
        failed: list[str] = []

        async def post_worker(conn: Conn) -> None:
            reader, writer = conn
            while (due := await todo.get()) is not None:
                sent = time.perf_counter_ns()
                lags.append(sent / 1e9 - due)
                writer.write(target.publish(channel, b"%d.%d" % (sent, int(due * 1e9))))
                status, body = await read_response(reader)
                if status >= 300:
                    failed.append(f"{status} {body[:200]!r}")

        for _ in range(PUBLISHERS):  # a few connections so that one slow response does not hold the rate back
            posters.append(await asyncio.open_connection("127.0.0.1", target.port))
        workers += [asyncio.create_task(post_worker(c)) for c in posters]
        before = cpu_now(target)
        t0 = time.perf_counter()
        period = 1 / rate
        for i in range(total):
            due = t0 + i * period
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)  # the publishing schedule itself, not a wait for a condition
            todo.put_nowait(due)
        for _ in workers:
            todo.put_nowait(None)
        await asyncio.gather(*workers)
        published = time.perf_counter() - t0
        _, pending = await asyncio.wait([s.done for s in streams], timeout=10)
        wall = time.perf_counter() - t0
        used = cores(before, cpu_now(target), wall)
        target.check()
        lat = sorted(x / 1e6 for s in streams for x in s.latencies)
        late = sorted(x / 1e6 for s in streams for x in s.late)
        received = sum(s.count for s in streams)
        result = {
            "consumers": consumers,
            "rate": rate,
            "seconds": seconds,
            "published": total - len(failed),
            "publish_errors": failed[:5],
            "publish_seconds": round(published, 3),
            "publish_rate": round(total / published, 1),
            "publish_lag_max_ms": round(max(lags) * 1000, 2),
            "received": received,
            "expected": consumers * total,
            "unfinished_consumers": len(pending),
            "closed_consumers": sum(s.eof for s in streams),
            "deliveries_per_s": round(received / published, 1),
            "p50_ms": round(pct(lat, 50), 3) if lat else None,
            "p99_ms": round(pct(lat, 99), 3) if lat else None,
            "max_ms": round(lat[-1], 3) if lat else None,
            "scheduled_p50_ms": round(pct(late, 50), 3) if late else None,
            "scheduled_p99_ms": round(pct(late, 99), 3) if late else None,
            "scheduled_max_ms": round(late[-1], 3) if late else None,
            **used,
        }
        print(f"  {target.name}: {json.dumps(result)}", flush=True)
        return result
    finally:
        await cancel_all(workers)
        await close_all(streams)
        for _, writer in posters:
            await close(writer)
        await wait_subscribers(target, 0)


async def publish_all(target: Target, channel: str, messages: int, batched: bool) -> tuple[str, int]:
    """Publish `messages` values of 100 bytes as fast as possible: in batches on one connection (RestMQ only) or in
    single POSTs over PUBLISHERS keep-alive connections. How it published and the requests it took."""
    values = [f"{n:06d}".ljust(100, "m").encode() for n in range(messages)]
    if batched and target.batch is not None:
        requests = [target.batch(channel, values[i : i + BATCH]) for i in range(0, messages, BATCH)]
        how, connections = f"JSON batches of {BATCH}, 1 connection", 1
    else:
        requests = [target.publish(channel, v) for v in values]
        how, connections = f"single POSTs, {PUBLISHERS} connections", PUBLISHERS
    conns = [await asyncio.open_connection("127.0.0.1", target.port) for _ in range(connections)]
    todo = iter(requests)

    async def worker(conn: Conn) -> None:
        reader, writer = conn
        for request in todo:
            writer.write(request)
            status, body = await read_response(reader)
            if status >= 300:
                raise RuntimeError(f"{target.name}: publishing failed: {status} {body[:200]!r}")

    try:
        await asyncio.gather(*(worker(c) for c in conns))
    finally:
        for _, writer in conns:
            await close(writer)
    return how, len(requests)


async def fanout(
    target: Target,
    consumers: int = 100,
    messages: int = 1000,
    kind: str = "sse",
    batched: bool = True,
    timeout: float = 120.0,
) -> dict[str, Any]:
    """Deliveries/s to `consumers` SSE ("sse") or WebSocket ("ws") consumers of one channel, publishing as fast as
    possible (batched: RestMQ's JSON batches; nchan has single POSTs only)."""
    channel = f"bench-fanout-{kind}-{time.monotonic_ns()}"
    streams: list[Stream] = []
    try:
        t_open = time.perf_counter()
        errors = await open_many(target, channel, consumers, kind, streams)
        if errors:
            raise RuntimeError(f"{target.name} fan-out: opened {len(streams)} of {consumers} consumers: {errors[0]}")
        registered = await wait_subscribers(target, consumers)
        if registered != consumers:
            raise RuntimeError(f"{target.name} fan-out: {registered} of {consumers} consumers registered")
        open_seconds = time.perf_counter() - t_open
        for s in streams:
            s.expect(messages)
        before = cpu_now(target)
        t0 = time.perf_counter()
        how, requests = await publish_all(target, channel, messages, batched)
        published = time.perf_counter() - t0
        _, pending = await asyncio.wait([s.done for s in streams], timeout=timeout)
        wall = time.perf_counter() - t0
        used = cores(before, cpu_now(target), wall)
        target.check()
        finished = [s.done_at for s in streams if s.done_at is not None]
        received = sum(min(s.count, messages) for s in streams)
        elapsed = (max(finished) - t0) if len(finished) == len(streams) else wall
        result = {
            "transport": kind,
            "consumers": consumers,
            "messages": messages,
            "publishing": how,
            "publish_requests": requests,
            "open_seconds": round(open_seconds, 2),
            "publish_seconds": round(published, 3),
            "received": received,
            "expected": consumers * messages,
            "complete_consumers": len(finished),
            "closed_consumers": sum(s.eof for s in streams),
            "unfinished_consumers": len(pending),
            "seconds_until_all": round(elapsed, 3),
            "first_finished_s": round(min(finished) - t0, 3) if finished else None,
            "median_finished_s": round(statistics.median(finished) - t0, 3) if finished else None,
            "deliveries_per_s": round(received / elapsed, 1),
            **used,
        }
        print(f"  {target.name}: {json.dumps(result)}", flush=True)
        return result
    finally:
        await close_all(streams)
        await wait_subscribers(target, 0)


# -- running and reporting --------------------------------------------------------------------


@dataclass(frozen=True)
class Test:
    title: str
    run: Callable[[Target], Awaitable[dict[str, Any]]]
    key: str  # the figure whose median round is reported
    rounds: int


def plan(args: argparse.Namespace) -> dict[str, Test]:
    n, c, big, r = args.messages, args.consumers, args.large_consumers, args.rounds
    return {
        "idle": Test(f"idle memory: {args.idle:,} SSE connections", lambda t: idle_memory(t, args.idle), "", 1),
        "latency": Test(
            f"SSE latency: {args.latency_consumers} consumers, {args.rate:,} msg/s for {args.seconds} s",
            lambda t: latency(t, args.latency_consumers, args.rate, args.seconds),
            "p99_ms",
            r,
        ),
        "fanout": Test(
            f"SSE fan-out: {c:,} consumers, {n:,} messages (RestMQ: batches)",
            lambda t: fanout(t, c, n, "sse", True, args.timeout),
            "deliveries_per_s",
            r,
        ),
        "fanout_single": Test(
            f"SSE fan-out: {c:,} consumers, {n:,} messages, single POSTs",
            lambda t: fanout(t, c, n, "sse", False, args.timeout),
            "deliveries_per_s",
            r,
        ),
        "fanout_large": Test(
            f"SSE fan-out: {big:,} consumers, {n:,} messages (RestMQ: batches)",
            lambda t: fanout(t, big, n, "sse", True, args.timeout),
            "deliveries_per_s",
            1,
        ),
        "fanout_ws": Test(
            f"WebSocket fan-out: {c:,} consumers, {n:,} messages (RestMQ: batches)",
            lambda t: fanout(t, c, n, "ws", True, args.timeout),
            "deliveries_per_s",
            r,
        ),
    }


def median_round(rounds: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """The round whose `key` is the median (the lower middle one of an even count), with every round's `key`."""
    good = [x for x in rounds if x.get(key) is not None]
    if not key or not good:
        return rounds[0]
    ranked = sorted(good, key=lambda x: x[key])
    return {**ranked[(len(ranked) - 1) // 2], "rounds": [x.get(key) for x in rounds]}


async def run_all(targets: list[Target], args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Every test on every target, back to back, alternating which contender goes first from one round (and test)
    to the next. Idle memory comes first, on fresh processes: freed memory is not reused yet. The caller raises
    the open-file limit (`raise_open_files_limit`) before it starts the servers."""
    results: dict[str, dict[str, Any]] = {}
    turn = 0
    only = set(args.only.split(",")) if getattr(args, "only", None) else None
    for name, test in plan(args).items():
        if only is not None and name not in only:
            continue
        print(test.title, flush=True)
        rounds: dict[str, list[dict[str, Any]]] = {t.name: [] for t in targets}
        for _ in range(test.rounds):
            for target in targets if turn % 2 == 0 else targets[::-1]:
                try:
                    rounds[target.name].append(await test.run(target))
                except Exception as exc:  # one contender failing a test does not lose the other figures
                    target.check()
                    print(f"  {target.name} failed: {exc}", flush=True)
                    rounds[target.name].append({"error": f"{type(exc).__name__}: {exc}"})
            turn += 1
        results[name] = {t: median_round(r, test.key) for t, r in rounds.items()}
    return results


def _cpu(r: dict[str, Any], name: str) -> str:
    engine = r["engine_cores"] if name == "restmq" else "-"
    return f"{r['server_cores']} / {engine} / {r['client_cores']} / {r['others_cores']}"


def _rounds(r: dict[str, Any], _: str) -> str:
    each = r.get("rounds") or []
    shown = [f"{x:,.0f}" if isinstance(x, float) and x >= 1000 else str(x) for x in each]
    return f"median of {len(each)}: {' / '.join(shown)}" if len(each) > 1 else "1 round"


def _got(r: dict[str, Any]) -> str:
    ok = "yes" if r["received"] == r["expected"] else "**no**"
    return f"{r['received']:,} / {r['expected']:,} (all: {ok})"


ROWS: dict[str, list[tuple[str, Callable[[dict[str, Any], str], str]]]] = {
    "latency": [
        ("load", lambda r, _: f"{r['consumers']} consumers, {r['rate']:,} msg/s for {r['seconds']} s"),
        ("publish-to-consumer p50 / p99 / max", lambda r, _: f"{r['p50_ms']} / {r['p99_ms']} / {r['max_ms']} ms"),
        ("p99 of each round (ms)", _rounds),
        (
            "from the scheduled time p50 / p99 / max",
            lambda r, _: f"{r['scheduled_p50_ms']} / {r['scheduled_p99_ms']} / {r['scheduled_max_ms']} ms",
        ),
        ("deliveries/s", lambda r, _: f"{r['deliveries_per_s']:,.0f}"),
        ("received / expected", lambda r, _: _got(r)),
        ("consumers closed by the server", lambda r, _: f"{r['closed_consumers']}"),
        (
            "achieved publish rate, max publisher lag",
            lambda r, _: f"{r['publish_rate']:,.0f}/s, {r['publish_lag_max_ms']} ms",
        ),
        ("CPU cores server / engine / client / others", _cpu),
    ],
    "fanout": [
        ("load", lambda r, _: f"{r['consumers']:,} consumers × {r['messages']:,} msgs"),
        ("publishing", lambda r, _: f"{r['publishing']}: {r['publish_seconds']} s"),
        ("deliveries/s", lambda r, _: f"{r['deliveries_per_s']:,.0f}"),
        ("deliveries/s of each round", _rounds),
        (
            "time until all have all (first / median)",
            lambda r, _: f"{r['seconds_until_all']} s ({r['first_finished_s']} / {r['median_finished_s']})",
        ),
        ("received / expected", lambda r, _: _got(r)),
        ("consumers closed by the server", lambda r, _: f"{r['closed_consumers']}"),
        ("CPU cores server / engine / client / others", _cpu),
    ],
    "idle": [
        (
            "connections open / requested",
            lambda r, _: (
                f"{r['opened']:,} / {r['requested']:,} (server: {r['server_streams']:,})"
                + (f"; {r['error_count']:,} errors: {r['errors'][0]}" if r["error_count"] else "")
            ),
        ),
        ("server RSS before → after", lambda r, _: f"{r['rss_before_kib']:,} → {r['rss_after_kib']:,} KiB"),
        ("per connection", lambda r, _: f"{r['kib_per_connection']} KiB"),
    ],
}
TITLES = {
    "latency": "SSE latency",
    "fanout": "SSE fan-out",
    "fanout_single": "SSE fan-out, single POSTs",
    "fanout_large": "SSE fan-out, many consumers",
    "fanout_ws": "WebSocket fan-out",
    "idle": "Idle memory",
}


def targets_met(results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's targets against nchan: RestMQ's SSE p99 and saturation deliveries/s."""
    out: list[dict[str, Any]] = []
    lat = results.get("latency", {})
    r, n = lat.get("restmq", {}), lat.get("nchan", {})
    if r.get("p99_ms") is not None and n.get("p99_ms"):
        ratio = r["p99_ms"] / n["p99_ms"]
        notes = [] if r["received"] == r["expected"] else ["RestMQ did not deliver every message"]
        if r["publish_rate"] < RATE_KEPT * r["rate"]:  # answering POSTs late, it fell behind the schedule
            notes.append(
                f"RestMQ took only {r['publish_rate']:,.0f} msg/s (p99 from the schedule "
                f"{r['scheduled_p99_ms']:,.0f} ms, nchan's {n['scheduled_p99_ms']:,.0f} ms)"
            )
        out.append(
            {
                "target": f"SSE p99 at {r['rate']:,} msg/s to {r['consumers']} consumers ≤ {LATENCY_TARGET}x nchan's",
                "restmq": r["p99_ms"],
                "nchan": n["p99_ms"],
                "ratio": round(ratio, 2),
                "met": ratio <= LATENCY_TARGET and not notes,
                "note": "; ".join(notes),
            }
        )
    for test, how in (("fanout", "RestMQ publishing batches"), ("fanout_single", "both single POSTs, for reference")):
        r, n = results.get(test, {}).get("restmq", {}), results.get(test, {}).get("nchan", {})
        if r.get("deliveries_per_s") and n.get("deliveries_per_s"):
            ratio = r["deliveries_per_s"] / n["deliveries_per_s"]
            out.append(
                {
                    "target": f"SSE fan-out deliveries/s to {r['consumers']} consumers ≥ {SATURATION_TARGET}x nchan's"
                    f" ({how})",
                    "restmq": round(r["deliveries_per_s"]),
                    "nchan": round(n["deliveries_per_s"]),
                    "ratio": round(ratio, 2),
                    "met": ratio >= SATURATION_TARGET,
                    "note": "",
                }
            )
    return out


def table(results: dict[str, dict[str, Any]], names: list[str]) -> str:
    lines = [f"| test | metric | {' | '.join(names)} |", f"|---|---|{'---|' * len(names)}"]
    for test, per in results.items():
        rows = ROWS["fanout" if test.startswith("fanout") else test]
        failed = {name: per.get(name, {}).get("error") for name in names}
        for number, (metric, show) in enumerate(rows):
            cells = [
                (f"failed: {failed[x]}" if number == 0 else "-")
                if failed[x]
                else (show(per[x], x) if x in per else "-")
                for x in names
            ]
            lines.append(f"| {TITLES[test]} | {metric} | {' | '.join(cells)} |")
    return "\n".join(lines)


def contention(results: dict[str, dict[str, Any]]) -> str:
    """A warning when other processes used more than BUSY cores during some test: those figures are noisy."""
    busy = [
        f"{TITLES[test]} ({name}: {r['others_cores']})"
        for test, per in results.items()
        for name, r in per.items()
        if r.get("others_cores", 0) > BUSY
    ]
    return f"\nOther processes used more than {BUSY} cores during: {', '.join(busy)}.\n" if busy else ""


def targets_table(met: list[dict[str, Any]]) -> str:
    if not met:
        return "(no target compared: both contenders are needed)"
    lines = ["| target | restmq | nchan | ratio | met? |", "|---|--:|--:|--:|---|"]
    for m in met:
        verdict = ("yes" if m["met"] else "**no**") + (f" ({m['note']})" if m["note"] else "")
        lines.append(f"| {m['target']} | {m['restmq']:,} | {m['nchan']:,} | {m['ratio']}x | {verdict} |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line's settings, defaults filled in (`--quick`: small counts)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--contender", choices=("restmq", "nchan", "both"), help="default: both when nchan is installed"
    )
    parser.add_argument("--quick", action="store_true", help="small counts: a few seconds a test")
    parser.add_argument("--server", default="uvicorn", choices=("uvicorn", "granian"), help="RestMQ's HTTP server")
    parser.add_argument("--messages", type=int, help="fan-out messages (default 1,000, quick 200; RestMQ max 1,000)")
    parser.add_argument("--consumers", type=int, help="fan-out consumers (default 100)")
    parser.add_argument("--large-consumers", type=int, help="the many-consumers fan-out (default 1,000, quick 300)")
    parser.add_argument("--latency-consumers", type=int, default=100, help="latency test consumers (default 100)")
    parser.add_argument("--rate", type=int, default=1000, help="latency test messages/s (default 1,000)")
    parser.add_argument("--seconds", type=int, help="latency test duration (default 10, quick 2)")
    parser.add_argument("--idle", type=int, help="idle connections (default 10,000, quick 1,000)")
    parser.add_argument("--rounds", type=int, help="rounds of each test but idle and the large fan-out (3, quick 1)")
    parser.add_argument("--timeout", type=float, default=120.0, help="fan-out: seconds to wait for all")
    parser.add_argument("--only", help="comma-separated tests to run (idle, latency, fanout, fanout_single, ...)")
    parser.add_argument("--output", type=Path, default=BENCH / "results/streams.json")
    args = parser.parse_args(argv)
    args.messages = args.messages or (200 if args.quick else 1000)
    args.consumers = args.consumers or 100
    args.large_consumers = args.large_consumers or (300 if args.quick else 1000)
    args.seconds = args.seconds or (2 if args.quick else 10)
    args.idle = args.idle or (1000 if args.quick else 10_000)
    args.rounds = args.rounds or (1 if args.quick else 3)
    return args


def suite_args(quick: bool = False) -> argparse.Namespace:
    """The settings `run_all` takes, as the command line's defaults: for a suite that starts the servers itself."""
    return parse_args(["--quick"] if quick else [])


def main() -> int:
    args = parse_args()
    problem = available()
    if args.contender is None:
        args.contender = "both" if problem is None else "restmq"
        if problem:
            print(f"nchan skipped: {problem}", file=sys.stderr)
    elif args.contender != "restmq" and problem:
        print(f"bench/streams.py --contender {args.contender}: {problem}", file=sys.stderr)
        return 2
    names = list(CONTENDERS) if args.contender == "both" else [args.contender]
    hard = raise_open_files_limit()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that the finally blocks below run
    started = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    load_before = os.getloadavg()
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="restmq-streams-")))
        targets: list[Target] = []
        if "restmq" in names:
            engine = EmbeddedEngine(tmp / "engine")
            stack.callback(engine.stop)
            url = engine.start()
            assert engine.pid is not None
            serve = restmq_serve(url, args.server, *STREAM_LIMITS)
            server = start_server(stack, "restmq", serve, tmp, "/ready", engine.pid)
            targets.append(restmq_target(server))
            print(f"engine {url}, restmq :{server.port} (pid {server.proc.pid})", flush=True)
        if "nchan" in names:
            nchan = start_nchan(stack, tmp)
            targets.append(nchan_target(nchan))
            print(f"nginx + nchan :{nchan.port} (worker pid {nchan.pid})", flush=True)
        print(f"RLIMIT_NOFILE {hard}", flush=True)
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            results = runner.run(run_all(targets, args))
    met = targets_met(results)
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    data = {
        "command": command_line("bench/streams.py"),
        "started": started,
        "machine": machine(),
        "settings": {**settings, "nofile_limit": hard, "cores": os.cpu_count()},
        "contenders": names,
        "load_average_before": load_before,
        "load_average_at_end": os.getloadavg(),
        "targets": met,
        "results": results,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(data, indent=2) + "\n")
    print(f"\n{table(results, names)}\n\n{targets_table(met)}\n{contention(results)}")
    print(
        f"The load generator (this process: asyncio + uvloop, raw sockets) shares the {os.cpu_count()} cores with the "
        "servers and the engine; client CPU is in the table. nchan has no engine: its messages stay in nginx's memory."
    )
    print(f"wrote {os.path.relpath(args.output)}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit("interrupted (every process the benchmark started has been stopped)")
