"""restmq.AsyncClient against a real server: the methods, consume() and streams."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from restmq.client import (
    AsyncClient,
    BadRequestError,
    LeaseStale,
    Message,
    MessageNotFound,
)
from tests.helpers.wait import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
async def client(server: str) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(server, timeout=10) as opened:
        yield opened


async def consumers(client: AsyncClient, queue: str, n: int) -> None:
    async def counted() -> bool:
        return (await client.stats(queue)).consumers == n

    await wait_for(counted, 10, 0.02, f"{n} streaming consumers of {queue}")


async def test_every_method(client: AsyncClient) -> None:
    assert await client.add("a", "one") == "a:1"
    assert await client.add_batch("a", ["two", {"three": 3}], priority=0) == ["a:2", "a:3"]
    assert await client.add_batch("a", []) == []
    assert await client.add("a", "dup", idempotency_key="k") == await client.add("a", "dup", idempotency_key="k")
    assert (await client.take("a")) == Message("a", "a:1", "one", 1)
    soft = await client.soft_get("a")
    assert soft is not None and soft.key == "a:2" and soft.count == 1
    leased = await client.lease("a", 30)
    assert leased is not None and leased.key == "a:2" and leased.count == 2 and leased.lease == 30
    assert await client.extend(leased, 30) == 2
    assert await client.release(leased, delay=0) == 2
    again = await client.get("a", lease=30)
    assert again is not None and again.count == 3
    with pytest.raises(LeaseStale):
        await client.ack(leased)
    assert await client.ack(again) == 3
    with pytest.raises(MessageNotFound):
        await client.ack(again)
    rest = await client.get("a", count=10)
    assert [m.key for m in rest] == ["a:3", "a:4"]
    assert await client.take("a", count=3) == [] and await client.take("a") is None
    assert await client.lease("a", 5, count=2) == []
    key = await client.add("a", "gone")
    assert await client.delete_message(key) is True
    assert await client.get("a", wait=0.2) is None
    assert "a" in await client.queues()
    assert await client.set_policy("a", "roundrobin") == "roundrobin" == await client.policy("a")
    control = await client.set_control("a", status="stop", max_deliveries=2)
    assert (control.status, control.max_deliveries) == ("stop", 2)
    assert (await client.control("a")).status == "stop"
    await client.set_control("a", status="start")
    await client.add_batch("a", ["x", "y"])
    assert await client.purge("a") == 2
    assert (await client.stats("a")).counters["added"] == 7
    await client.add("a", "listed")
    assert any(s.queue == "a" and s.length == 1 for s in (await client.stats_all()).queues)
    assert await client.redrive("a") == 0
    assert await client.ready() is True and (await client.health())["status"] == "ok"
    with pytest.raises(BadRequestError) as caught:
        await client.get("a", count=0)
    assert caught.value.code == "PARAMETER_INVALID"


async def test_consume_acks_handled_and_retries_failures(client: AsyncClient) -> None:
    await client.add_batch("jobs", [f"job{i}" for i in range(20)])
    seen: list[str] = []
    failed_once: set[str] = set()

    async def handler(message: Message) -> None:
        if message.value == "job7" and message.value not in failed_once:
            failed_once.add(message.value)
            raise RuntimeError("transient")
        seen.append(message.value)

    stats = await client.consume(
        "jobs", handler, concurrency=4, lease=10, wait=0.2, backoff=0.1, max_messages=21, handle_signals=False
    )
    assert (stats.handled, stats.failed) == (20, 1)
    assert sorted(seen) == sorted(f"job{i}" for i in range(20))
    queue = await client.stats("jobs")
    assert (queue.length, queue.leased, queue.delayed) == (0, 0, 0)


async def test_consume_stops_on_the_stop_event(client: AsyncClient) -> None:
    stop = asyncio.Event()
    handled: list[str] = []

    def handler(message: Message) -> None:  # a plain function works too
        handled.append(message.value)
        if len(handled) == 3:
            stop.set()

    await client.add_batch("stop", ["1", "2", "3"])
    stats = await asyncio.wait_for(
        client.consume("stop", handler, wait=0.2, stop=stop, handle_signals=False), timeout=10
    )
    assert stats.handled == 3 and handled == ["1", "2", "3"]


async def test_stream_broadcast(client: AsyncClient) -> None:
    received: list[Message] = []

    async def read() -> None:
        async with client.stream("news") as stream:
            async for message in stream:
                received.append(message)
                if len(received) == 5:
                    return

    reader = asyncio.create_task(read())
    await consumers(client, "news", 1)
    for i in range(5):
        await client.add("news", f"n{i}")
    await asyncio.wait_for(reader, 10)
    assert [m.value for m in received] == [f"n{i}" for i in range(5)]
    assert all(not m.leased for m in received)


async def test_stream_lease_mode_acks_after_the_body_and_releases_on_error(client: AsyncClient) -> None:
    await client.set_policy("rr", "roundrobin")
    await client.add_batch("rr", ["a", "b"])
    values: list[str] = []
    async with client.stream("rr", lease=30) as stream:
        async for message in stream:
            assert message.leased and message.count == 1
            values.append(message.value)
            if len(values) == 2:
                break
    assert values == ["a", "b"]
    stats = await client.stats("rr")
    assert (stats.length, stats.leased, stats.counters["acked"]) == (0, 0, 2)

    await client.add("rr", "boom")
    with pytest.raises(RuntimeError):
        async with client.stream("rr", lease=30) as stream:
            async for message in stream:
                raise RuntimeError(message.value)
    redelivered = await client.take("rr", wait=5)
    assert redelivered is not None and redelivered.value == "boom" and redelivered.count >= 2


async def test_stream_manual_settle(client: AsyncClient) -> None:
    await client.set_policy("manual", "roundrobin")
    await client.add("manual", "m")
    async with client.stream("manual", lease=30) as stream:
        async for message in stream:
            await stream.release(message, delay=30)  # auto-ack leaves it alone now
            break
    stats = await client.stats("manual")
    assert stats.delayed == 1 and stats.counters["acked"] == 0


async def test_stream_without_reconnect_ends_when_the_queue_is_purged(client: AsyncClient) -> None:
    received: list[str] = []

    async def read() -> None:
        async with client.stream("gone", reconnect=False) as stream:
            async for message in stream:
                received.append(message.value)

    reader = asyncio.create_task(read())
    await consumers(client, "gone", 1)
    await client.add("gone", "last")
    await wait_for(lambda: asyncio.sleep(0, bool(received)), 10, what="the message")
    await client.purge("gone")  # closes the queue's streams
    await asyncio.wait_for(reader, 10)
    assert received == ["last"]


async def test_stream_refuses_a_bad_queue_name(client: AsyncClient) -> None:
    with pytest.raises(BadRequestError):
        client.stream("bad name")
