"""Small HTTP and keyspace helpers for queue tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import redis

from restmq.storage import keys
from tests.helpers.wait import wait_for

Stats = dict[str, Any]
Message = dict[str, Any]  # {"key", "value", "count"} as GET /q/<queue> gives it


async def stats(http: httpx.AsyncClient, queue: str, *, base: str = "") -> Stats:
    """GET /stats/<queue> (on `base`, for a client that talks to several servers)."""
    reply = await http.get(f"{base}/stats/{queue}")
    assert reply.status_code == 200, reply.text
    result: Stats = reply.json()
    return result


async def wait_stats(
    http: httpx.AsyncClient, queue: str, predicate: Callable[[Stats], bool], what: str, timeout: float = 10.0
) -> Stats:
    """The queue's statistics once `predicate` holds for them (polled every 20 ms; the default timeout leaves
    room for a loaded machine: a passing test does not wait it out)."""

    async def check() -> Stats | None:
        current = await stats(http, queue)
        return current if predicate(current) else None

    found = await wait_for(check, timeout, 0.02, what)
    assert found is not None  # wait_for returns a truthy value
    return found


async def add(http: httpx.AsyncClient, queue: str, value: str, *, base: str = "", **fields: object) -> str:
    """POST /q/<queue> with a form (`fields`: delay, ttl, priority, ...); returns the new message key."""
    form = {"value": value, **{name: str(field) for name, field in fields.items()}}
    response = await http.post(f"{base}/q/{queue}", data=form)
    assert response.status_code == 200, response.text
    assert response.text.endswith("\r\n"), response.text
    return response.text.removesuffix("\r\n")


async def add_batch(http: httpx.AsyncClient, queue: str, values: list[Any]) -> list[str]:
    """POST /q/<queue> with a JSON array (any JSON values); returns the new keys, one per value."""
    response = await http.post(f"/q/{queue}", json=values)
    assert response.status_code == 200, response.text
    added: list[str] = response.json()["keys"]
    assert len(added) == len(values), added
    return added


async def take(http: httpx.AsyncClient, queue: str, **params: object) -> Message | None:
    """GET /q/<queue> (`params`: lease, wait, ...); the message, or None on 204. Without params the
    request takes the hot path (restmq/web/hot.py), with any it takes the router's."""
    reply = await http.get(f"/q/{queue}", params={name: str(param) for name, param in params.items()})
    if reply.status_code == 204:
        return None
    assert reply.status_code == 200, reply.text
    message: Message = reply.json()
    return message


async def lease(http: httpx.AsyncClient, queue: str, seconds: float) -> Message:
    """GET /q/<queue>?lease=<seconds>: the leased message (one must be there)."""
    message = await take(http, queue, lease=seconds)
    assert message is not None, f"nothing to lease in {queue}"
    return message


async def drain(http: httpx.AsyncClient, queue: str, count: int = 1, *, base: str = "") -> list[Message]:
    """Take from <queue> (`count` at a time) until 204; returns the messages in delivery order."""
    params = {"count": count} if count > 1 else {}  # none: the hot path
    messages: list[Message] = []
    while (response := await http.get(f"{base}/q/{queue}", params=params)).status_code == 200:
        body = response.json()
        messages += body if count > 1 else [body]
    assert response.status_code == 204, response.text
    return messages


async def drain_values(http: httpx.AsyncClient, queue: str, count: int = 1) -> list[str]:
    """The values `drain` takes, in delivery order."""
    return [message["value"] for message in await drain(http, queue, count)]


async def length(http: httpx.AsyncClient, queue: str) -> int:
    return int((await stats(http, queue))["length"])


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
