"""Push subscriptions on one Redis/Valkey server or a Redis Cluster (mixed into RedisStore).

A subscription is a hash in its queue's hash slot (keys.push_keys), next to a sorted set of the delivery slots in
flight; the scripts push_reserve, push_done and push_dead run there atomically. The set of queues with a
subscription (keys.PUSH_INDEX) is an index written after the hash, like the queue registry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from restmq.core.push import Outcome
from restmq.storage import keys
from restmq.storage.errors import backend_errors
from restmq.storage.scripts import Client

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from restmq.storage.node import T

# settings written by a save; the rest of the hash (counters, pause, rate bucket) is the delivery's
SETTINGS = ("url", "secret", "timeout", "max_in_flight", "rate", "max_attempts", "backoff_base", "backoff_cap")


class PushCommands:
    """The core.push.PushStore methods, for a class that has RedisStore's client and script runner."""

    client: Client
    name: str

    if TYPE_CHECKING:

        async def _run(self, script: str, keys_: Sequence[str], args: Sequence[Any]) -> Any: ...
        async def _retrying(self, call: Callable[[], Awaitable[T]]) -> T: ...
        async def _index(self, *, listed: Sequence[str] = (), timer: tuple[str, int] | None = None) -> None: ...

    async def save_push(self, queue: str, fields: Mapping[str, str]) -> None:
        sub, _ = keys.push_keys(queue)
        with backend_errors(self.name):
            # the rate bucket restarts full with the new rate; the pause ends (POST again resumes)
            await self.client.hdel(sub, "paused", "tokens", "tokens_at")
            await self.client.hset(sub, mapping={name: fields[name] for name in SETTINGS})
        await self._retrying(lambda: self.client.sadd(keys.PUSH_INDEX, queue))

    async def load_push(self, queue: str) -> dict[str, str] | None:
        sub, _ = keys.push_keys(queue)
        found = cast(dict[str, str], await self._retrying(lambda: self.client.hgetall(sub)))
        return found if found.get("url") else None

    async def list_push(self) -> dict[str, dict[str, str]]:
        queues = sorted(cast(set[str], await self._retrying(lambda: self.client.smembers(keys.PUSH_INDEX))))
        listed: dict[str, dict[str, str]] = {}
        for queue in queues:
            found = await self.load_push(queue)
            if found is not None:
                listed[queue] = found
        return listed

    async def delete_push(self, queue: str) -> bool:
        sub, slots = keys.push_keys(queue)
        with backend_errors(self.name):
            removed = int(await self.client.delete(sub))
            await self.client.delete(slots)
            await self.client.srem(keys.PUSH_INDEX, queue)
        return removed > 0

    async def reserve_push(self, queue: str, want: int, hold_ms: int, owner: str) -> tuple[list[str], int]:
        wait_ms, *slots = await self._run("push_reserve", keys.push_keys(queue), [want, hold_ms, owner])
        return [str(slot) for slot in slots], int(wait_ms)

    async def settle_push(self, queue: str, slots: Sequence[str], refund: int, outcome: Outcome) -> None:
        error = outcome.error
        attempted = outcome.delivered or outcome.failed
        status = "" if outcome.status is None and not attempted else outcome.status or "-"
        args = [
            len(slots),
            *slots,
            refund,
            outcome.delivered,
            outcome.failed,
            outcome.dead,
            status,
            "" if error is None else (error[:500] or "-"),
            "1" if outcome.pause else "",
            {True: "reset", False: "inc", None: ""}[outcome.success],
        ]
        await self._run("push_done", keys.push_keys(queue), args)

    async def dead_letter_push(self, queue: str, n: int, count: int, status: int | None, error: str) -> bool:
        dead = keys.dead_letter_queue(queue)
        qk, dk = keys.queue_keys(queue), keys.queue_keys(dead)
        args = [queue, dead, n, count, "" if status is None else status, error[:500]]
        outcome, listed = await self._run("push_dead", [*qk.message_keys, *dk.message_keys], args)
        if listed:
            await self._index(listed=[dead])
        return bool(outcome == "ok")
