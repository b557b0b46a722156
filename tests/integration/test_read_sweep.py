"""Reads from the engine bounded by one sweep per event loop (storage/read_sweep.py) instead of a timer each: a read
that gets no reply is cut about the socket timeout after it began and fails as redis-py's own timeout would, on
whichever task it runs; reads that come back in time, and pub/sub reads with their own bound, are left alone."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from redis import exceptions as rexc
from redis.asyncio import Redis

from restmq.storage import read_sweep
from restmq.storage.packing import fast_connection_class

pytestmark = pytest.mark.integration


@pytest.fixture
def black_hole() -> Iterator[str]:
    """A server that accepts connections and reads what it is sent, but never answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            held.append(conn)

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"redis://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()
        for conn in held:
            conn.close()


def fast_client(url: str, socket_timeout: float) -> Redis:
    client = Redis.from_url(url, socket_timeout=socket_timeout, socket_connect_timeout=2.0, decode_responses=True)
    client.connection_pool.connection_class = fast_connection_class(client.connection_pool.connection_class)
    return client


async def test_a_read_without_a_reply_is_cut_near_the_socket_timeout(black_hole: str) -> None:
    client = fast_client(black_hole, socket_timeout=0.5)
    try:
        started = time.monotonic()
        # a task of its own, as the coalescing sender or the reaper: no request deadline binds it
        with pytest.raises(rexc.TimeoutError):
            await asyncio.wait_for(asyncio.ensure_future(client.ping()), 30)
        took = time.monotonic() - started
        assert 0.5 <= took < 0.5 + read_sweep.TICK + 5  # generous: a busy machine
        assert client.connection_pool._in_use_connections == set()
        idle = client.connection_pool._available_connections
        assert all(not c.is_connected for c in idle)  # the cut connection was dropped, not reused
    finally:
        await client.aclose()


async def test_reads_that_answer_in_time_are_not_cut(redis_url: str) -> None:
    client = fast_client(redis_url, socket_timeout=0.3)
    try:
        # several sweep ticks of steady traffic, each read well within its bound
        ends = time.monotonic() + 3 * read_sweep.TICK + 0.5
        while time.monotonic() < ends:
            assert await client.ping()
            await client.set("read-sweep", "x")
    finally:
        await client.aclose()


async def test_a_pub_sub_read_with_its_own_bound_is_not_cut(redis_url: str) -> None:
    client = fast_client(redis_url, socket_timeout=0.3)
    pubsub = client.pubsub()
    try:
        await pubsub.subscribe("read-sweep-channel")
        assert (await pubsub.get_message(timeout=1.0))["type"] == "subscribe"
        started = time.monotonic()
        assert await pubsub.get_message(timeout=1.0) is None  # waited its own second, past the socket timeout
        assert time.monotonic() - started >= 0.9
        await client.publish("read-sweep-channel", "hello")
        message = await pubsub.get_message(timeout=5.0)
        assert message is not None and message["data"] == "hello"
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await client.aclose()
