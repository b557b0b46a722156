"""Message attributes in the storage layer (issue 18): stored by add, moved with a dead letter and its redrive,
and removed with the message by every path that removes one; the queue's attribute document survives a purge."""

from __future__ import annotations

import pytest
import redis

from restmq.core.model import PopMode, SettleAction, SettleOutcome
from restmq.storage import keys
from restmq.storage.node import RedisStore

pytestmark = pytest.mark.integration


def origin_fields(client: redis.Redis, queue: str) -> int:
    return int(client.hlen(keys.queue_keys(queue).origin))


async def test_attributes_are_stored_and_removed_with_their_message(
    store: RedisStore, redis_client: redis.Redis
) -> None:
    added = await store.add("attrs", ["a", "b", "c", "d"], attributes=['{"x":1}', "", '{"x":3}', '{"x":4}'])
    first = added.first
    assert await store.message_attributes("attrs", [first, first + 1, first + 2]) == ['{"x":1}', None, '{"x":3}']
    taken = await store.pop("attrs", PopMode.TAKE)  # a take
    assert taken.messages[0].value == "a"
    leased = await store.pop("attrs", PopMode.LEASE, count=2, lease_ms=60_000)  # b, c: an ack removes c's
    acked = await store.settle("attrs", SettleAction.ACK, leased.messages[1].n, expected_count=1)
    assert acked.outcome is SettleOutcome.OK
    assert await store.delete("attrs", first + 3)  # a delete
    assert await store.message_attributes("attrs", [first, first + 2, first + 3]) == [None, None, None]
    assert origin_fields(redis_client, "attrs") == 0


async def test_attributes_follow_a_dead_letter_and_its_redrive(store: RedisStore, redis_client: redis.Redis) -> None:
    await store.update_settings("fragile", max_deliveries=1)
    added = await store.add("fragile", ["poison"], attributes=['{"k":"v"}'])
    leased = await store.pop("fragile", PopMode.LEASE, lease_ms=60_000)
    await store.settle("fragile", SettleAction.RELEASE, leased.messages[0].n, expected_count=1)  # dead-letters it
    assert await store.message_attributes("fragile", [added.first]) == [None]
    dead = await store.recent("fragile:dead", 10)
    assert [m.value for m in dead.messages] == ["poison"]
    assert await store.message_attributes("fragile:dead", [dead.messages[0].n]) == ['{"k":"v"}']
    assert await store.redrive("fragile:dead") == 1
    back = await store.pop("fragile", PopMode.TAKE)
    assert back.messages[0].value == "poison"
    assert origin_fields(redis_client, "fragile") == 0 and origin_fields(redis_client, "fragile:dead") == 0


async def test_the_attribute_document_survives_a_purge(store: RedisStore) -> None:
    await store.set_attributes("doc", '{"a":{}}')
    assert "doc" in await store.list_queues()
    await store.add("doc", ["x"], attributes=['{"m":1}'])
    assert await store.purge("doc") == 1
    assert await store.attributes("doc") == '{"a":{}}'
    await store.set_attributes("doc", None)
    assert await store.attributes("doc") is None
