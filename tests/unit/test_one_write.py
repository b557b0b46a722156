"""restmq/cli/uvicorn_http.py: a response of known length leaves in one write, others as uvicorn writes them."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from uvicorn.protocols.http.flow_control import FlowControl

from restmq.cli.uvicorn_http import OneWriteCycle

pytestmark = pytest.mark.unit


class Transport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def writelines(self, chunks: Any) -> None:
        self.writes.append(b"".join(chunks))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True


def cycle(transport: Transport, method: str = "GET", body_complete: bool = True) -> OneWriteCycle:
    one = OneWriteCycle(
        scope={"method": method, "type": "http"},  # type: ignore[typeddict-item]
        transport=transport,  # type: ignore[arg-type]
        flow=FlowControl(transport),  # type: ignore[arg-type]
        logger=logging.getLogger("test"),
        access_logger=logging.getLogger("test"),
        access_log=False,
        default_headers=[],
        message_event=asyncio.Event(),
        expect_100_continue=False,
        keep_alive=True,
        on_response=lambda: None,
    )
    one.more_body = not body_complete  # uvicorn clears it once the request's body has all arrived
    return one


async def answer(
    transport: Transport, method: str, status: int, headers: list[tuple[bytes, bytes]], *bodies: bytes
) -> None:
    one = cycle(transport, method)
    await one.send({"type": "http.response.start", "status": status, "headers": headers})
    for i, body in enumerate(bodies):
        await one.send({"type": "http.response.body", "body": body, "more_body": i < len(bodies) - 1})


async def test_a_response_of_known_length_is_one_write() -> None:
    transport = Transport()
    await answer(transport, "GET", 200, [(b"content-length", b"5")], b"hello")
    assert len(transport.writes) == 1
    assert transport.writes[0].startswith(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n")
    assert transport.writes[0].endswith(b"\r\n\r\nhello")


async def test_a_204_is_one_write_and_a_head_answer_is_written_at_once() -> None:
    transport = Transport()
    await answer(transport, "GET", 204, [], b"")
    assert transport.writes == [b"HTTP/1.1 204 No Content\r\n\r\n"]
    head = Transport()
    await answer(head, "HEAD", 200, [(b"content-length", b"5")], b"")  # HEAD writes no body: the head goes alone
    assert head.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n"]


async def test_a_streamed_response_writes_its_head_before_any_body() -> None:
    transport = Transport()
    one = cycle(transport)
    await one.send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
    assert transport.writes == [
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
    ]
    await one.send({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True})
    assert len(transport.writes) == 2


async def test_a_cycle_cut_after_its_head_closes_the_real_transport() -> None:
    transport = Transport()
    one = cycle(transport)
    await one.send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"5")]})
    one.transport.close()  # what uvicorn does when the app fails after starting its answer
    assert transport.closed and transport.writes == []


async def test_a_response_before_the_whole_request_body_says_connection_close() -> None:
    """The connection ends after it (the rest of the body is dropped): a keep-alive client must not reuse it."""
    transport = Transport()
    one = cycle(transport, "POST", body_complete=False)
    await one.send({"type": "http.response.start", "status": 401, "headers": [(b"content-length", b"2")]})
    await one.send({"type": "http.response.body", "body": b"no"})
    assert transport.writes == [b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 2\r\nconnection: close\r\n\r\nno"]
    assert not one.keep_alive
