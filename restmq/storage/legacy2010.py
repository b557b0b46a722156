"""Reads the data a RestMQ 2010 server left in its Redis (read only: nothing there is changed).

The 2010 keyspace (src/restmq/core.py of gleicon/restmq):

=====================  ======  ===============================================================
key                    type    holds
=====================  ======  ===============================================================
QUEUESET               SET     every queue name ever added to
<q>:UUID               STRING  the last message number of <q> (INCR)
<q>:<n>                STRING  message n's value (deleted by a consuming GET/DEL, may expire)
<q>:queue              LIST    keys <q>:<n> waiting, newest at the head (LPUSH), taken at the tail (RPOP)
queuestat::<q>         STRING  1 started, 0 stopped (its `%s:%s` of `queuestat:` gives the double colon)
<q>:queuepolicy        STRING  1 broadcast, 2 roundrobin
<q>:<n>:refcount       STRING  soft-GET count of message n
=====================  ======  ===============================================================
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import redis.asyncio as redis
from redis.exceptions import ConnectionError, RedisError, TimeoutError

from restmq.storage.keys import LEGACY_QUEUES, QUEUES
from restmq.storage.urls import redact

QUEUESET = "QUEUESET"
STATUSES = {b"1": "start", b"0": "stop"}
POLICIES = {b"1": "broadcast", b"2": "roundrobin"}


class SourceError(Exception):
    """The 2010 Redis cannot be read: unreachable, or not a RestMQ 2010 database."""


class SourceUnreachable(SourceError):
    """The 2010 Redis did not answer."""


def _failure(shown: str, exc: RedisError) -> SourceError:
    kind = SourceUnreachable if isinstance(exc, ConnectionError | TimeoutError) else SourceError
    return kind(f"cannot read {shown}: {exc}")


@dataclass(frozen=True)
class LegacyQueue:
    name: str
    length: int  # keys waiting in <q>:queue
    status: str | None  # start | stop; None when not set
    policy: str | None  # broadcast | roundrobin; None when not set (2010 then streamed as broadcast)
    odd: tuple[str, ...] = ()  # settings that hold neither value, described


@dataclass(frozen=True)
class LegacyMessage:
    key: str  # <q>:<n> as 2010 named it
    number: int | None  # n, or None for a list entry that is not a key of this queue
    value: str | None  # None: the value is gone (deleted or expired), or is not UTF-8 text
    ttl_ms: int  # what is left of its expiry; 0 when it has none
    binary: bool = False  # the value is there but is not UTF-8 text (this RestMQ's values are text)


class Legacy2010Source:
    def __init__(self, url: str) -> None:
        self.shown = redact(url)
        self._client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=30)

    async def close(self) -> None:
        await self._client.aclose()

    async def queues(self) -> list[LegacyQueue]:
        """Every 2010 queue, by name; SourceError when the source is unreachable or not a 2010 database."""
        try:
            await self._check_layout()
            names = sorted(self._text(raw) for raw in await self._client.smembers(QUEUESET))
            return [await self._queue(name) for name in names]
        except RedisError as exc:
            raise _failure(self.shown, exc) from None

    async def messages(self, queue: str, batch: int = 500) -> AsyncIterator[list[LegacyMessage]]:
        """The waiting messages of `queue`, oldest first, `batch` at a time (one LRANGE: a snapshot)."""
        try:
            keys = [self._text(raw) for raw in reversed(await self._client.lrange(f"{queue}:queue", 0, -1))]
            for start in range(0, len(keys), batch):
                chunk = keys[start : start + batch]
                pipe = self._client.pipeline(transaction=False)
                pipe.mget(chunk)
                for key in chunk:
                    pipe.pttl(key)
                values, *ttls = await pipe.execute()
                yield [_message(queue, k, v, t) for k, v, t in zip(chunk, values, ttls, strict=True)]
        except RedisError as exc:
            raise _failure(self.shown, exc) from None

    async def _check_layout(self) -> None:
        kind = self._text(await self._client.type(QUEUESET))
        if kind == "set":
            return
        if kind != "none":
            raise SourceError(f"{QUEUESET} in {self.shown} is a {kind}, not a set: not a RestMQ 2010 database")
        if await self._client.exists(QUEUES, LEGACY_QUEUES):
            raise SourceError(f"{self.shown} holds this RestMQ's own queues, not RestMQ 2010 ones")
        size = await self._client.dbsize()
        if size == 0:
            raise SourceError(f"{self.shown} is empty: nothing to import (is it the database 2010 used, --redis-db?)")
        raise SourceError(f"{self.shown} has no {QUEUESET} among its {size} keys: not a RestMQ 2010 database")

    async def _queue(self, name: str) -> LegacyQueue:
        pipe = self._client.pipeline(transaction=False)
        pipe.llen(f"{name}:queue")
        pipe.get(f"queuestat::{name}")
        pipe.get(f"{name}:queuepolicy")
        length, status, policy = await pipe.execute()
        odd = []
        if status is not None and status not in STATUSES:
            odd.append(f"status {status!r} (neither 1 nor 0)")
        if policy is not None and policy not in POLICIES:
            odd.append(f"policy {policy!r} (neither 1 nor 2)")
        return LegacyQueue(name, length, STATUSES.get(status), POLICIES.get(policy), tuple(odd))

    @staticmethod
    def _text(raw: bytes | str) -> str:
        return raw if isinstance(raw, str) else raw.decode("utf-8", errors="backslashreplace")


def _message(queue: str, key: str, value: bytes | None, ttl_ms: int) -> LegacyMessage:
    tail = key.removeprefix(f"{queue}:")
    number = int(tail) if tail != key and tail.isascii() and tail.isdigit() else None
    try:
        text = value.decode() if value is not None else None
    except UnicodeDecodeError:
        return LegacyMessage(key, number, None, 0, binary=True)
    return LegacyMessage(key, number, text, max(ttl_ms, 0))
