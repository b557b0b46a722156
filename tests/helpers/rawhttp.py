"""Raw HTTP/1.1 over an asyncio socket, for what a well-behaved client library will not do:
stall half-way through a body, hold a connection open without a request."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from urllib.parse import urlsplit


@contextlib.asynccontextmanager
async def raw_connection(base: str) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    parts = urlsplit(base)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()


async def read_response(reader: asyncio.StreamReader, timeout: float) -> tuple[int, dict[str, str], bytes]:
    """Status, headers (lower-case names) and body of one response with a Content-Length."""
    async with asyncio.timeout(timeout):
        status_line = await reader.readline()
        if not status_line:
            raise ConnectionError("the server closed the connection without a response")
        status = int(status_line.split()[1])
        headers: dict[str, str] = {}
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers, body


async def closed_by_server(reader: asyncio.StreamReader, timeout: float) -> bool:
    """True when the server closes the connection (EOF or reset) within `timeout` seconds."""
    try:
        async with asyncio.timeout(timeout):
            while await reader.read(65536):
                pass
    except TimeoutError:
        return False
    except ConnectionError:
        return True
    return True


async def trickle(writer: asyncio.StreamWriter, piece: bytes, interval: float) -> None:
    """Send `piece` every `interval` seconds, as a slow-body attacker does, until the server drops
    the connection (then the writes fail) or the task is cancelled."""
    try:
        while True:
            writer.write(piece)
            await writer.drain()
            await asyncio.sleep(interval)
    except (ConnectionError, OSError):
        return
