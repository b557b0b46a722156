"""Small HTTP and keyspace helpers for queue tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import redis

from restmq.storage import keys
from tests.helpers.wait import wait_for

Stats = dict[str, Any]


async def stats(http: httpx.AsyncClient, queue: str) -> Stats:
    """GET /stats/<queue>."""
    reply = await http.get(f"/stats/{queue}")
    assert reply.status_code == 200, reply.text
    result: Stats = reply.json()
    return result


async def wait_stats(
    http: httpx.AsyncClient, queue: str, predicate: Callable[[Stats], bool], what: str, timeout: float = 5.0
) -> Stats:
    """The queue's statistics once `predicate` holds for them (polled every 20 ms)."""

    async def check() -> Stats | None:
        current = await stats(http, queue)
        return current if predicate(current) else None

    found: Stats = await wait_for(check, timeout, 0.02, what)  # type: ignore[assignment]
    return found


async def add(http: httpx.AsyncClient, queue: str, value: str, **fields: Any) -> str:
    """POST /q/<queue> with a form; returns the new message key."""
    response = await http.post(f"/q/{queue}", data={"value": value, **fields})
    assert response.status_code == 200, response.text
    return response.text.removesuffix("\r\n")


async def add_batch(http: httpx.AsyncClient, queue: str, values: list[str]) -> list[str]:
    response = await http.post(f"/q/{queue}", json=values)
    assert response.status_code == 200, response.text
    added: list[str] = response.json()["keys"]
    return added


async def drain(http: httpx.AsyncClient, queue: str) -> list[dict[str, Any]]:
    """Pop with GET /q/<queue> until 204; returns the messages in delivery order."""
    messages = []
    while (response := await http.get(f"/q/{queue}")).status_code == 200:
        messages.append(response.json())
    assert response.status_code == 204, response.text
    return messages


async def length(http: httpx.AsyncClient, queue: str) -> int:
    response = await http.get(f"/stats/{queue}")
    assert response.status_code == 200, response.text
    return int(response.json()["length"])


def stored_keys(client: redis.Redis, queue: str) -> set[str]:
    """Every Redis key of one queue (SCAN, never KEYS); the dead-letter queue's keys are not included."""
    prefix = keys.queue_keys(queue).meta.removesuffix("meta")  # rmq:{q}: or rmq:{q}|dead:
    return {k if isinstance(k, str) else k.decode() for k in client.scan_iter(match=prefix + "*", count=1000)}


def subscribers(client: redis.Redis, queue: str) -> int:
    """Server processes subscribed to the queue's event channel (a long-poll or stream is in place)."""
    channel = keys.queue_keys(queue).channel
    reply = client.pubsub_shardnumsub(channel)
    counts = {name if isinstance(name, str) else name.decode(): n for name, n in reply}
    return int(counts.get(channel, 0))
