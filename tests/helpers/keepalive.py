"""One keep-alive HTTP/1.1 connection, request after request, for tests that must see the server keep
a connection usable after an error answer (an ASGI server resets a connection its app failed on)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

from tests.helpers.rawhttp import raw_connection, read_response


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class KeepAlive:
    """Requests in turn on one socket; ConnectionError if the server closed or reset it."""

    def __init__(self, reader: Any, writer: Any, host: str) -> None:
        self.reader, self.writer, self.host = reader, writer, host
        self.requests = 0

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None, timeout: float = 30
    ) -> Answer:
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}", f"Content-Length: {len(body)}"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        await self.writer.drain()
        status, found, payload = await read_response(self.reader, timeout)
        self.requests += 1
        return Answer(status, found, payload)

    async def add(self, queue: str, value: str, headers: dict[str, str] | None = None) -> Answer:
        """A form POST /q/<queue> (the lean direct route)."""
        form = {"Content-Type": "application/x-www-form-urlencoded", **(headers or {})}
        return await self.request("POST", f"/q/{queue}", urlencode({"value": value}).encode(), form)


@contextlib.asynccontextmanager
async def keep_alive(base: str) -> AsyncIterator[KeepAlive]:
    parts = urlsplit(base)
    async with raw_connection(base) as (reader, writer):
        yield KeepAlive(reader, writer, parts.netloc)


def assert_unavailable(answer: Answer) -> None:
    """503 with Retry-After and the stable JSON error."""
    assert answer.status == 503, (answer.status, answer.body)
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["retry-after"] == "1"
    body = answer.json()
    assert body["code"] == "BACKEND_UNAVAILABLE"
    assert isinstance(body["error"], str) and body["error"]
