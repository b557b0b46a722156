"""Small readers for the streaming transports, for tests: COMET lines, SSE events, WebSocket frames.

Each reader runs in a background task of the test's event loop and records what arrives, so a
test can publish and then wait (with a timeout) until the reader has seen what it expects.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.helpers.queues import stats
from tests.helpers.server import ServeProcess, free_port
from tests.helpers.wait import wait_for

STREAM_TIMEOUT = httpx.Timeout(10.0, read=None)


class Reader:
    """What one streaming connection received: decoded messages, the end of the stream, errors."""

    kind = "?"

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.ended = asyncio.Event()
        self.error: BaseException | None = None
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    @property
    def keys(self) -> list[str]:
        return [m["key"] for m in self.messages]

    async def _start(self, timeout: float = 10.0) -> None:
        self._task = asyncio.create_task(self._guarded())
        ready = asyncio.create_task(self._ready.wait())
        try:
            await asyncio.wait({ready, self._task}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ready.cancel()
        if not self._ready.is_set():
            if self._task.done():
                self._task.result()
                raise AssertionError(f"{self.kind} stream ended before it started: {self.error!r}")
            raise AssertionError(f"{self.kind} stream did not start within {timeout:g}s")

    async def _guarded(self) -> None:
        try:
            await self._run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the server went away: the test decides whether that is expected
            self.error = exc
        finally:
            self.ended.set()

    async def _run(self) -> None:
        raise NotImplementedError

    async def wait_count(self, n: int, timeout: float = 10.0) -> None:
        async def enough() -> bool:
            if self.ended.is_set() and len(self.messages) < n:
                raise AssertionError(f"{self.kind} stream ended after {len(self.messages)} of {n}: {self.error!r}")
            return len(self.messages) >= n

        await wait_for(enough, timeout, what=f"{self.kind} consumer to receive {n} messages (has {len(self.messages)})")

    async def wait_ended(self, timeout: float = 5.0) -> None:
        try:
            await asyncio.wait_for(self.ended.wait(), timeout)
        except TimeoutError:
            raise AssertionError(f"{self.kind} stream still open after {timeout:g}s") from None

    async def close(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class HTTPStreamReader(Reader):
    """A streamed HTTP response read block by block: `separator` ends a block, `_block` takes it."""

    separator = b"\r\n"

    def __init__(self, url: str, params: Mapping[str, str] | None, headers: dict[str, str]) -> None:
        super().__init__()
        self.url = url
        self.params = dict(params or {})
        self.headers = headers
        self.raw = bytearray()
        self.response: httpx.Response | None = None

    async def _run(self) -> None:
        async with httpx.AsyncClient(timeout=STREAM_TIMEOUT) as client:
            async with client.stream("GET", self.url, params=self.params, headers=self.headers) as response:
                self.response = response
                self._ready.set()
                if response.status_code != 200:
                    await response.aread()
                    return
                pending = b""
                async for chunk in response.aiter_raw():
                    self.raw += chunk
                    pending += chunk
                    while self.separator in pending:
                        block, pending = pending.split(self.separator, 1)
                        self._block(block)

    def _block(self, block: bytes) -> None:
        raise NotImplementedError


class CometReader(HTTPStreamReader):
    """GET /c/<queue>: `\\r\\n`-terminated lines, JSON objects (or JSONP calls with callback=)."""

    kind = "comet"

    def __init__(self, url: str, params: Mapping[str, str] | None = None) -> None:
        super().__init__(url, params, {})
        self.lines: list[bytes] = []

    def _block(self, block: bytes) -> None:
        self.lines.append(block)
        if "callback" not in self.params:
            self.messages.append(orjson.loads(block))


@dataclass
class SSEEvent:
    id: str | None = None
    event: str | None = None
    data: str | None = None
    retry: int | None = None


class SSEReader(HTTPStreamReader):
    """GET /sse/<queue> (or /c/<queue> with Accept: text/event-stream): events per the SSE format."""

    kind = "sse"
    separator = b"\n\n"

    def __init__(self, url: str, params: Mapping[str, str] | None = None, last_event_id: str | None = None) -> None:
        headers = {"Accept": "text/event-stream"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        super().__init__(url, params, headers)
        self.events: list[SSEEvent] = []  # every dispatched block: retry, named events, messages
        self.comments = 0

    def _block(self, block: bytes) -> None:
        self._dispatch(block.decode())

    def _dispatch(self, block: str) -> None:
        event = SSEEvent()
        seen = False
        for line in block.split("\n"):
            if line.startswith(":"):
                self.comments += 1
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            seen = True
            if name == "id":
                event.id = value
            elif name == "event":
                event.event = value
            elif name == "data":
                event.data = value if event.data is None else event.data + "\n" + value
            elif name == "retry":
                event.retry = int(value)
        if not seen:
            return
        self.events.append(event)
        if event.event is None and event.data is not None:
            message = orjson.loads(event.data)
            assert event.id == message["key"], f"SSE id {event.id!r} is not the message key {message['key']!r}"
            self.messages.append(message)


class WSReader(Reader):
    """GET /ws/<queue>: message frames go to `messages`, replies to commands (and errors) to `replies`."""

    kind = "ws"

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url
        self.replies: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self.connection: ClientConnection | None = None

    async def _run(self) -> None:
        async with connect(self.url, open_timeout=10, ping_interval=None, max_size=None) as ws:
            self.connection = ws
            self._ready.set()
            try:
                async for frame in ws:
                    data = orjson.loads(frame)
                    if isinstance(data, dict) and ("queue" in data or "error" in data):
                        self.replies.put_nowait(data)
                    else:
                        self.messages.append(data)
            except ConnectionClosed:
                pass
            finally:
                if ws.close_code is not None:
                    self.close_code, self.close_reason = ws.close_code, ws.close_reason

    async def command(self, frame: dict[str, Any] | str, timeout: float = 10.0) -> dict[str, Any]:
        """Send one client frame and return the server's reply frame."""
        assert self.connection is not None
        await self.connection.send(frame if isinstance(frame, str) else orjson.dumps(frame).decode())
        return await asyncio.wait_for(self.replies.get(), timeout)


def ws_url(base: str, queue: str, query: str = "") -> str:
    return base.replace("http://", "ws://", 1) + f"/ws/{queue}" + (f"?{query}" if query else "")


@contextlib.asynccontextmanager
async def opened(reader: Reader, timeout: float = 10.0) -> AsyncIterator[Any]:
    """Start `reader`, yield it, and close it on the way out."""
    try:
        await reader._start(timeout)
        yield reader
    finally:
        await reader.close()


def comet(base: str, queue: str, **params: str) -> contextlib.AbstractAsyncContextManager[CometReader]:
    return opened(CometReader(f"{base}/c/{queue}", params))


def sse(
    base: str, queue: str, *, path: str = "sse", last_event_id: str | None = None, **params: str
) -> contextlib.AbstractAsyncContextManager[SSEReader]:
    return opened(SSEReader(f"{base}/{path}/{queue}", params, last_event_id))


def ws(base: str, queue: str, query: str = "") -> contextlib.AbstractAsyncContextManager[WSReader]:
    return opened(WSReader(ws_url(base, queue, query)))


def open_reader(kind: str, base: str, queue: str) -> contextlib.AbstractAsyncContextManager[Any]:
    """A reader of transport `kind` ("comet", "sse", "sse-c" for SSE on /c, or "ws")."""
    if kind == "comet":
        return comet(base, queue)
    if kind == "sse":
        return sse(base, queue)
    if kind == "sse-c":
        return sse(base, queue, path="c")
    if kind == "ws":
        return ws(base, queue)
    raise ValueError(kind)


# -- waiting for consumers ----------------------------------------------------------------------


async def wait_consumers(client: httpx.AsyncClient, base: str, queue: str, n: int, timeout: float = 10.0) -> None:
    """Wait until /stats/<queue> counts `n` streaming consumers (summed over every server process)."""
    seen: list[int] = []

    async def counted() -> bool:
        seen.append((await stats(client, queue, base=base))["consumers"])
        return seen[-1] == n

    try:
        await wait_for(counted, timeout, 0.02, f"{n} consumers of {queue}")
    except AssertionError as exc:
        raise AssertionError(f"{exc} (last saw {seen[-1:]})") from None


# -- several `restmq serve` processes on one backend ---------------------------------------------


@contextlib.contextmanager
def serve_nodes(redis_url: str, tmp_path: Path, n: int) -> Iterator[list[ServeProcess]]:
    """`n` `restmq serve --redis <redis_url>` processes sharing one backend, started side by side."""

    def start(i: int, attempt: int = 0) -> ServeProcess:
        return ServeProcess(["--redis", redis_url], free_port(), tmp_path / f"node{i}-{attempt}.log")

    processes = [start(i) for i in range(n)]
    try:
        for i in range(n):
            for attempt in range(1, 4):
                try:
                    processes[i].wait_ready()
                    break
                except AssertionError as exc:  # free_port() is only free until someone else binds it
                    if "address already in use" not in str(exc) or attempt == 3:
                        raise
                    processes[i].stop()
                    processes[i] = start(i, attempt)
        yield processes
    finally:
        for process in processes:  # ask all to stop first, then wait for each
            if process.proc.poll() is None:
                process.proc.send_signal(signal.SIGTERM)
        for process in processes:
            process.stop()
