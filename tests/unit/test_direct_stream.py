"""restmq/cli/uvicorn_http.py: a streamed response's cycle is a DirectStream (a synchronous writer that refuses
while the write buffer is full, and a disconnect callback); a streamed body to an HTTP/1.0 request is
close-delimited and ends the connection."""

from __future__ import annotations

import asyncio
import logging

import pytest

from restmq.cli.uvicorn_http import OneWriteCycle
from restmq.cli.uvicorn_lean import LeanEvent, LeanFlowControl, Pipeline
from restmq.web.sse import HTTP_STREAM
from tests.unit.test_one_write import Transport

pytestmark = pytest.mark.unit

START = {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]}


def stream_cycle(transport: Transport, version: str = "1.1") -> OneWriteCycle:
    return OneWriteCycle(
        scope={"method": "GET", "type": "http", "http_version": version},  # type: ignore[typeddict-item]
        transport=transport,  # type: ignore[arg-type]
        flow=LeanFlowControl(transport),  # type: ignore[arg-type]
        logger=logging.getLogger("test"),
        access_logger=logging.getLogger("test"),
        access_log=False,
        default_headers=[],
        message_event=asyncio.Event(),
        expect_100_continue=False,
        keep_alive=version != "1.0",
        on_response=lambda: None,
    )


async def test_a_stream_writes_chunks_at_once_through_its_scope_and_refuses_while_the_buffer_is_full() -> None:
    transport = Transport()
    one = stream_cycle(transport)
    assert HTTP_STREAM not in one.scope
    await one.send(START)  # type: ignore[arg-type]
    direct = one.scope[HTTP_STREAM]  # type: ignore[literal-required]
    assert direct is one
    assert one.write_now(b"data: 1\n\n")
    assert transport.writes[-1] == b"9\r\ndata: 1\n\n\r\n"
    one.flow.pause_writing()  # the transport's buffer is over its high-water mark
    assert not one.write_now(b"data: 2\n\n")
    one.flow.resume_writing()
    assert one.write_now(b"data: 2\n\n")
    await one.send({"type": "http.response.body", "body": b"", "more_body": False})
    assert transport.writes[-1] == b"0\r\n\r\n"
    assert not one.write_now(b"data: 3\n\n")  # the response is complete


async def test_a_known_length_response_offers_no_direct_stream() -> None:
    one = stream_cycle(Transport())
    await one.send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    assert HTTP_STREAM not in one.scope


async def test_a_stream_to_http10_is_close_delimited_and_closes_the_connection_when_it_ends() -> None:
    transport = Transport()
    one = stream_cycle(transport, "1.0")
    await one.send(START)  # type: ignore[arg-type]
    assert b"transfer-encoding" not in transport.writes[0]
    assert transport.writes[0].endswith(b"connection: close\r\n\r\n")
    assert one.write_now(b'{"key":"q:1"}\r\n')
    await one.send({"type": "http.response.body", "body": b'{"key":"q:2"}\r\n', "more_body": True})
    assert not transport.closed
    await one.send({"type": "http.response.body", "body": b"", "more_body": False})
    assert transport.writes[1:] == [b'{"key":"q:1"}\r\n', b'{"key":"q:2"}\r\n']  # as they are: no chunk framing
    assert transport.closed and one.response_complete


async def test_on_disconnect_is_called_once_the_client_leaves_or_at_once_when_it_has() -> None:
    one = stream_cycle(Transport())
    calls: list[str] = []
    one.on_disconnect(lambda: calls.append("left"))
    assert calls == []
    one.disconnected = True
    one.client_left()
    one.client_left()
    assert calls == ["left"]
    one.on_disconnect(lambda: calls.append("late"))
    assert calls == ["left", "late"]


async def test_the_lean_stand_ins_behave_as_uvicorns() -> None:
    event = LeanEvent()
    waiting = asyncio.ensure_future(event.wait())
    await asyncio.sleep(0)
    assert not waiting.done() and not event.is_set()
    event.set()
    assert await waiting and event.is_set()
    event.clear()
    assert not event.is_set()
    flow = LeanFlowControl(Transport())  # type: ignore[arg-type]
    await flow.drain()  # not paused: returns at once
    flow.pause_writing()
    draining = asyncio.ensure_future(flow.drain())
    await asyncio.sleep(0)
    assert not draining.done()
    flow.resume_writing()
    await asyncio.wait_for(draining, 1)
    pipeline = Pipeline()
    pipeline.appendleft("first")
    pipeline.appendleft("second")
    assert pipeline.pop() == "first" and pipeline.pop() == "second" and not pipeline
