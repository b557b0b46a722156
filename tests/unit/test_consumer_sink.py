"""restmq/core/dispatch.py Consumer.sink: a consumer waiting with nothing queued is written to at once from the
offering callback; when the sink refuses (the connection's buffer is full), deliveries queue as before, the
bound on what waits holds, and order is kept."""

from __future__ import annotations

import asyncio

import pytest

from restmq.core.dispatch import Consumer, Delivery

pytestmark = pytest.mark.unit


def delivery(n: int) -> Delivery:
    return Delivery(f"q:{n}", f"v{n}", 1)


class Sink:
    def __init__(self) -> None:
        self.written: list[list[str]] = []
        self.accepts = True

    def __call__(self, batch: list[Delivery]) -> bool:
        if self.accepts:
            self.written.append([d.key for d in batch])
        return self.accepts


async def waiting(consumer: Consumer) -> asyncio.Task[list[Delivery] | None]:
    task = asyncio.ensure_future(consumer.take())
    await asyncio.sleep(0)  # parked in take
    return task


async def test_a_waiting_consumer_is_written_to_at_once_and_a_batch_goes_in_one_write() -> None:
    consumer, sink = Consumer("q", "node/1/0", 0, buffer=3), Sink()
    consumer.sink = sink
    taking = await waiting(consumer)
    assert consumer.offer(delivery(1))
    consumer.offer_all([delivery(2), delivery(3)])
    assert sink.written == [["q:1"], ["q:2", "q:3"]]
    await asyncio.sleep(0)
    assert not taking.done()  # nothing queued: the transport's task was never woken
    consumer.close("bye")
    assert await taking is None


async def test_a_refusing_sink_queues_in_order_and_the_bound_holds() -> None:
    consumer, sink = Consumer("q", "node/1/0", 0, buffer=2), Sink()
    consumer.sink = sink
    taking = await waiting(consumer)
    sink.accepts = False  # the write buffer is full
    consumer.offer_all([delivery(1), delivery(2)])
    sink.accepts = True
    assert not consumer.offer(delivery(3))  # a third waiting would pass the bound: too slow
    assert consumer.closed is not None and consumer.closed.startswith("too slow")
    assert sink.written == []
    assert await taking is None  # what was queued is dropped: the stream ends at a prefix of what it was sent


async def test_deliveries_queue_behind_what_already_waits() -> None:
    consumer, sink = Consumer("q", "node/1/0", 0, buffer=10), Sink()
    consumer.sink = sink
    sink.accepts = False
    taking = await waiting(consumer)
    consumer.offer(delivery(1))
    sink.accepts = True
    consumer.offer(delivery(2))  # one waits already: written after it, by the transport
    assert sink.written == []
    assert [d.key for d in (await taking) or []] == ["q:1", "q:2"]


async def test_a_consumer_not_waiting_in_take_queues() -> None:
    """While the transport writes (its task is not parked in take), a direct write would overtake it."""
    consumer, sink = Consumer("q", "node/1/0", 0, buffer=10), Sink()
    consumer.sink = sink
    consumer.offer(delivery(1))
    assert sink.written == []
    assert [d.key for d in (await consumer.take()) or []] == ["q:1"]
