"""`--syslog-port`: syslog over TCP and UDP on one port number, each message queued as JSON.

Every server process listens (SO_REUSEPORT: the kernel spreads TCP connections and UDP senders over the
workers), so a process holds its own connection limit. Messages go through a bounded buffer to one writer task
that adds them in batches, per queue; while the buffer is full TCP senders wait (their connection is not read)
and UDP datagrams are dropped and counted. While the backend is away, the writer retries and the buffer fills.
Nothing a sender does ends the listener: a bad frame is counted, logged (at most once a second) and skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import logging
import socket
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import orjson

from restmq.core.names import check_queue_name
from restmq.errors import BackendUnavailable, InvalidQueueName, RestMQError
from restmq.ingest import framing
from restmq.ingest.syslog import Malformed, parse

log = logging.getLogger("restmq.syslog")
AddBatch = Callable[[str, Sequence[str]], Awaitable[object]]
MAX_PENDING = 10_000  # messages buffered for the writer
READ_SIZE = 65536
FALLBACK_HOST = "_invalid"  # the queue suffix of messages whose host name cannot be part of a queue name
OUTCOMES = ("queued", "malformed", "oversize", "refused", "dropped", "failed")


@dataclass(frozen=True)
class SyslogConfig:
    host: str
    port: int
    queue_prefix: str = "syslogd:"
    max_line: int = 8192
    max_connections: int = 256
    max_batch: int = 1000
    max_value: int = 1024 * 1024  # bytes of a queued message (its JSON can outgrow the line: escapes)
    allow: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()  # empty: every source


def peer_name(address: str) -> str:
    """An IPv4 sender seen on a dual-stack socket (::ffff:a.b.c.d) as a.b.c.d."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


class SyslogListener:
    def __init__(self, config: SyslogConfig, add: AddBatch) -> None:
        self.config = config
        self._add = add
        self.counts: Counter[str] = Counter({outcome: 0 for outcome in OUTCOMES})
        self.refused_connections: Counter[str] = Counter({"limit": 0, "source": 0})
        self.connections = 0
        self._pending: dict[str, list[str]] = {}
        self._pending_count = 0
        self._has_work = asyncio.Event()
        self._has_room = asyncio.Event()
        self._has_room.set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self._udp: asyncio.DatagramTransport | None = None
        self._writer: asyncio.Task[None] | None = None
        self._closing = False
        self._complaints = _Complaints()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        tcp = _bound_socket(self.config.host, self.config.port, socket.SOCK_STREAM)
        udp = _bound_socket(self.config.host, self.config.port, socket.SOCK_DGRAM)
        self._server = await asyncio.start_server(self._connection, sock=tcp, limit=READ_SIZE)
        self._udp, _ = await loop.create_datagram_endpoint(lambda: _Datagrams(self), sock=udp)
        self._writer = asyncio.create_task(self._write(), name="restmq-syslog-writer")
        log.info("syslog: listening on %s port %d (TCP and UDP)", self.config.host, self.config.port)

    def stop_listening(self) -> None:
        """What a stop signal does first: no new connection or datagram, the open connections end."""
        self._closing = True
        if self._server is not None:
            self._server.close()
        if self._udp is not None:
            self._udp.close()
        for task in list(self._tasks):
            task.cancel()

    async def close(self) -> None:
        """Stop listening, end the connections, then queue what was read (bounded: the backend may be gone)."""
        self.stop_listening()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._writer is not None:
            self._has_work.set()
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(self._writer, timeout=5.0)
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), timeout=1.0)

    def admits(self, peer: str) -> bool:
        if not self.config.allow:
            return True
        try:
            ip = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(ip in network for network in self.config.allow)

    # -- receiving ------------------------------------------------------------------------------

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        address = writer.get_extra_info("peername")
        peer = peer_name(str(address[0])) if isinstance(address, tuple) else "unix"
        refusal = self._refusal(peer)
        if refusal or self._closing or task is None:
            if refusal:
                self.refused_connections[refusal] += 1
                self._complaints.note(refusal, f"connection from {peer} refused ({refusal})")
            writer.close()
            return
        self._tasks.add(task)
        self.connections += 1
        try:
            await self._read(reader, peer)
        except (ConnectionError, OSError):
            pass  # the sender went away: what it sent so far is queued
        finally:
            self.connections -= 1
            self._tasks.discard(task)
            writer.close()

    def _refusal(self, peer: str) -> str | None:
        if not self.admits(peer):
            return "source"
        if self.connections >= self.config.max_connections:
            return "limit"
        return None

    async def _read(self, reader: asyncio.StreamReader, peer: str) -> None:
        framer = framing.Framer(self.config.max_line)
        while True:
            data = await reader.read(READ_SIZE)
            frames = framer.feed(data) if data else framer.close()
            for kind, frame in frames:
                await self._room()
                self._frame(kind, frame, peer)
            if not data:
                return

    async def _room(self) -> None:
        while self._pending_count >= MAX_PENDING and not self._closing:
            await self._has_room.wait()

    def datagram(self, data: bytes, peer: str) -> None:
        if not self.admits(peer):
            self.counts["refused"] += 1
            self._complaints.note("source", f"datagram from {peer} refused (source)")
            return
        if self._pending_count >= MAX_PENDING or self._closing:
            self.counts["dropped"] += 1
            self._complaints.note("dropped", "buffer full, UDP messages dropped")
            return
        message = data.rstrip(b"\r\n\x00")
        if len(message) > self.config.max_line:
            self._frame(framing.OVERSIZE, b"", peer)
        elif message:
            self._frame(framing.MESSAGE, message, peer)

    def _frame(self, kind: str, frame: bytes, peer: str) -> None:
        """One frame from `peer`: parsed and buffered for the writer, or counted as what is wrong with it."""
        if kind == framing.OVERSIZE:
            self.counts[kind] += 1
            self._complaints.note(kind, f"oversize message from {peer} (over {self.config.max_line} bytes) skipped")
            return
        if kind != framing.MESSAGE:
            self.counts[kind] += 1
            self._complaints.note(kind, f"malformed frame from {peer} (not an octet count): {frame[:80]!r}")
            return
        received = datetime.datetime.now(datetime.UTC)
        try:
            record = parse(frame, received)
        except Malformed as exc:
            self.counts["malformed"] += 1
            self._complaints.note("malformed", f"malformed message from {peer} ({exc}): {frame[:80]!r}")
            return
        fields = {**record.fields, "peer": peer, "received": received.isoformat(timespec="milliseconds")}
        value = orjson.dumps(fields)
        if len(value) > self.config.max_value:  # here, not in the batch: one would fail its whole batch
            self.counts["oversize"] += 1
            self._complaints.note("oversize", f"message from {peer} over --max-value as JSON skipped")
            return
        self._buffer(self.queue_for(record.host or peer), value.decode())

    def queue_for(self, host: str) -> str:
        try:
            return check_queue_name(self.config.queue_prefix + host)
        except InvalidQueueName:
            return self.config.queue_prefix + FALLBACK_HOST

    def _buffer(self, queue: str, value: str) -> None:
        self._pending.setdefault(queue, []).append(value)
        self._pending_count += 1
        self._has_work.set()
        if self._pending_count >= MAX_PENDING:
            self._has_room.clear()

    # -- writing --------------------------------------------------------------------------------

    async def _write(self) -> None:
        while True:
            await self._has_work.wait()
            self._has_work.clear()
            batch, self._pending, self._pending_count = self._pending, {}, 0
            self._has_room.set()
            if batch:
                await asyncio.gather(*(self._store(queue, values) for queue, values in batch.items()))
            if self._closing and not self._pending:
                return

    async def _store(self, queue: str, values: list[str]) -> None:
        size = self.config.max_batch
        for start in range(0, len(values), size):
            chunk = values[start : start + size]
            delay = 0.05
            while True:
                try:
                    await self._add(queue, chunk)
                except BackendUnavailable as exc:
                    if self._closing:
                        self._failed(queue, chunk, exc)
                        break
                    self._complaints.note("backend", f"backend unavailable, retrying: {exc.message}")
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 1.0)
                    continue
                except RestMQError as exc:
                    self._failed(queue, chunk, exc)
                    break
                self.counts["queued"] += len(chunk)
                break

    def _failed(self, queue: str, chunk: list[str], exc: RestMQError) -> None:
        self.counts["failed"] += len(chunk)
        log.warning("syslog: %d message(s) for %s not queued: %s", len(chunk), queue, exc.message)


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, listener: SyslogListener) -> None:
        self.listener = listener

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        self.listener.datagram(data, peer_name(str(addr[0])))


class _Complaints:
    """Warnings about senders, at most one a second of each kind; the rest are counted into the next one."""

    def __init__(self) -> None:
        self._last: dict[str, float] = {}
        self._held: Counter[str] = Counter()

    def note(self, kind: str, text: str) -> None:
        now = time.monotonic()
        if now - self._last.get(kind, -1.0) < 1.0:
            self._held[kind] += 1
            return
        held, self._held[kind], self._last[kind] = self._held[kind], 0, now
        log.warning("syslog: %s%s", text, f" (and {held} more since the last warning)" if held else "")


def _bound_socket(host: str, port: int, kind: socket.SocketKind) -> socket.socket:
    """`host`:`port` bound with SO_REUSEPORT (every worker listens); dual-stack on ::."""
    family, _, proto, _, address = socket.getaddrinfo(host, port, type=kind)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(address)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock
