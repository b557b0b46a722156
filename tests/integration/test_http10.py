"""HTTP/1.0 clients on both servers (issue 17): HTTP/1.0 has no chunked transfer coding, so a streamed body (COMET,
SSE) is close-delimited: its bytes go out as they are, and the connection ends when the stream ends. Twisted's
`getPage`/`downloadPage` of the 2010 clients speak HTTP/1.0 and saw chunk-size lines inside their data. A reply
of known length keeps its Content-Length and ends the connection unless the client asked to keep it. HTTP/1.1
is unchanged: streams are chunked."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers.queues import add
from tests.helpers.rawhttp import closed_by_server, raw_connection
from tests.helpers.server import ServeProcess, serve
from tests.helpers.streams import wait_consumers

pytestmark = pytest.mark.integration


@pytest.fixture(params=["uvicorn", "granian"])
def served(request: pytest.FixtureRequest, redis_url: str, tmp_path: Path) -> Iterator[ServeProcess]:
    with serve(["--redis", redis_url, "--server", request.param], tmp_path, request.param) as process:
        yield process


def split_head(data: bytes) -> tuple[bytes, dict[str, str], bytes]:
    """The status line, the headers (lower-case names) and what follows them."""
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    return status_line.encode(), headers, body


async def read_until(reader: asyncio.StreamReader, wanted: bytes, timeout: float = 10.0) -> bytes:
    """Bytes as they arrive, up to and including the first `wanted` (granian sends a stream's head with its
    first body bytes)."""
    data = b""
    async with asyncio.timeout(timeout):
        while wanted not in data:
            piece = await reader.read(65536)
            assert piece, f"the connection ended before {wanted!r}: {data!r}"
            data += piece
    return data


async def stream_then_delete(served: ServeProcess, path: str, queue: str, version: str) -> tuple[dict[str, str], bytes]:
    """Open the stream `path` on `queue` with `version`, add a message once it is counted, delete the queue (which
    ends the stream), and read everything until the server closes the connection: its headers and body bytes."""
    host = served.url.removeprefix("http://")
    async with (
        httpx.AsyncClient(base_url=served.url, timeout=10) as client,
        raw_connection(served.url) as (
            reader,
            writer,
        ),
    ):
        writer.write(f"GET {path} {version}\r\nHost: {host}\r\n\r\n".encode())
        await writer.drain()
        await wait_consumers(client, served.url, queue, 1)
        await add(client, queue, "hello 1.0")
        status_line, headers, body = split_head(await read_until(reader, b"hello 1.0"))
        assert status_line.split()[1] == b"200", status_line
        assert (await client.delete(f"/q/{queue}")).status_code in (200, 204)
        async with asyncio.timeout(10):
            while piece := await reader.read(65536):  # the server ends the connection: EOF
                body += piece
    return headers, body


async def test_comet_to_an_http10_client_is_close_delimited_and_ends_with_the_stream(served: ServeProcess) -> None:
    headers, body = await stream_then_delete(served, "/c/old10", "old10", "HTTP/1.0")
    assert "transfer-encoding" not in headers, headers
    assert "content-length" not in headers, headers
    key = body.split(b'"key":"')[1].split(b'"')[0].decode()
    assert body == b'{"key":"%s","value":"hello 1.0"}\r\n' % key.encode(), body  # no chunk-size lines, no 0\r\n\r\n


async def test_sse_to_an_http10_client_is_close_delimited_and_ends_with_the_stream(served: ServeProcess) -> None:
    headers, body = await stream_then_delete(served, "/sse/old10sse", "old10sse", "HTTP/1.0")
    assert "transfer-encoding" not in headers, headers
    assert headers["content-type"].startswith("text/event-stream")
    assert body.startswith(b"retry: "), body
    events = body.split(b"\n\n")
    assert events[-1] == b"", body  # nothing but whole events: no chunk framing around or after them
    assert all(event.startswith((b"retry: ", b"id: ", b": heartbeat")) for event in events[:-1]), body


async def test_streams_to_an_http11_client_stay_chunked(served: ServeProcess) -> None:
    host = served.url.removeprefix("http://")
    async with (
        httpx.AsyncClient(base_url=served.url, timeout=10) as client,
        raw_connection(served.url) as (
            reader,
            writer,
        ),
    ):
        writer.write(f"GET /c/new11 HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        await writer.drain()
        await wait_consumers(client, served.url, "new11", 1)
        await add(client, "new11", "hello 1.1")
        _, headers, body = split_head(await read_until(reader, b"hello 1.1"))
        assert headers.get("transfer-encoding") == "chunked", headers
        size, rest = body.split(b"\r\n", 1)
        assert int(size, 16) == len(rest.split(b"\r\n")[0]) + 2, body  # a chunk: its size, then the line


@pytest.mark.parametrize("keep_alive", [False, True])
async def test_a_reply_of_known_length_to_http10_has_its_length_and_closes_unless_kept(
    served: ServeProcess, keep_alive: bool
) -> None:
    """Without `Connection: keep-alive` the server closes after the reply; with it, it may keep the connection
    (granian does) or close it (uvicorn does), and says which."""
    host = served.url.removeprefix("http://")
    asked = "Connection: keep-alive\r\n" if keep_alive else ""
    async with raw_connection(served.url) as (reader, writer):
        writer.write(f"GET /stats/ HTTP/1.0\r\nHost: {host}\r\n{asked}\r\n".encode())
        await writer.drain()
        status_line, headers, body = split_head(await read_until(reader, b"\r\n\r\n"))
        async with asyncio.timeout(10):
            body += await reader.readexactly(int(headers["content-length"]) - len(body))
        assert status_line.split()[1] == b"200", status_line
        assert "transfer-encoding" not in headers, headers
        assert body.startswith(b"{"), body
        kept = headers.get("connection", "").lower() == "keep-alive"
        if not keep_alive:
            assert not kept, headers
        closed = await closed_by_server(reader, 2.0)
        assert closed != kept, (headers, closed)
