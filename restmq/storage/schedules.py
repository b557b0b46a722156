"""Schedules in the backend: NodeSchedules on one server or a Redis Cluster, RingSchedules over a ring.

A schedule's hash lives in its queue's hash slot (keys.schedule_key), so that the tick claim and the add are one
script (lua/schedule_fire.lua). Each node indexes the schedules it holds in rmq:schedules (id -> queue): listing
reads every node's index, as queue listings do.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from restmq.core.schedule_store import Fired, FireStatus, StoredSchedule
from restmq.errors import BackendUnavailable
from restmq.storage import keys
from restmq.storage.errors import backend_errors

if TYPE_CHECKING:
    from restmq.storage.node import RedisStore
    from restmq.storage.sharded import ShardedStore

# A schedule's hash fields but its value: what the runners read (a value may be as large as a message's)
STATE_FIELDS = ("def", "paused", "last", "fired_at", "fired", "last_key")


class NodeSchedules:
    def __init__(self, store: RedisStore) -> None:
        self._store = store

    async def time_ms(self) -> int:
        async def read() -> int:
            seconds, micros = await self._store.client.time()
            return int(seconds) * 1000 + int(micros) // 1000

        return await self._store._retrying(read)

    async def create(self, schedule_id: str, queue: str, definition: str, value: str, start_ms: int, cap: int) -> bool:
        store = self._store
        if not await store._run("schedule_reserve", [keys.SCHEDULES], [schedule_id, queue, cap]):
            return False
        fields: list[str | int] = ["def", definition, "value", value, "paused", 0, "last", start_ms, "fired", 0]
        try:
            with backend_errors(store.name):
                await store.client.hset(keys.schedule_key(queue, schedule_id), items=fields)
        except BaseException:
            await self._unindex(schedule_id)
            raise
        return True

    async def _unindex(self, schedule_id: str) -> None:
        with backend_errors(self._store.name):
            await self._store.client.hdel(keys.SCHEDULES, schedule_id)

    async def _read(self, entries: Sequence[tuple[str, str]], *, values: bool = True) -> list[StoredSchedule]:
        """The hashes of (id, queue) index entries (without their values unless `values`); an entry whose hash is
        gone (a create cut short) is skipped."""
        if not entries:
            return []

        async def read() -> list[Any]:
            async with self._store.client.pipeline(transaction=False) as pipe:
                for schedule_id, queue in entries:
                    key = keys.schedule_key(queue, schedule_id)
                    pipe.hgetall(key) if values else pipe.hmget(key, STATE_FIELDS)
                return await pipe.execute()

        found = await self._store._retrying(read)
        if not values:
            found = [{k: v for k, v in zip(STATE_FIELDS, row, strict=True) if v is not None} for row in found]
        return [(state.pop("def"), state) for state in found if "def" in state]

    async def load_all(self, *, values: bool = True) -> list[StoredSchedule]:
        index = cast(dict[str, str], await self._store._retrying(lambda: self._store.client.hgetall(keys.SCHEDULES)))
        return await self._read(sorted(index.items()), values=values)

    async def _queue_of(self, schedule_id: str) -> str | None:
        return cast(
            str | None, await self._store._retrying(lambda: self._store.client.hget(keys.SCHEDULES, schedule_id))
        )

    async def load(self, schedule_id: str) -> StoredSchedule | None:
        queue = await self._queue_of(schedule_id)
        if queue is None:
            return None
        found = await self._read([(schedule_id, queue)])
        return found[0] if found else None

    async def set_paused(self, schedule_id: str, paused: bool) -> bool:
        queue = await self._queue_of(schedule_id)
        if queue is None:
            return False
        key = keys.schedule_key(queue, schedule_id)
        return bool(await self._store._run("schedule_pause", [key], ["1" if paused else "0"]))

    async def delete(self, schedule_id: str) -> bool:
        queue = await self._queue_of(schedule_id)
        if queue is None:
            return False
        with backend_errors(self._store.name):
            removed = await self._store.client.delete(keys.schedule_key(queue, schedule_id))
        await self._unindex(schedule_id)  # after the hash: a delete cut short leaves an entry that is skipped
        return bool(removed)

    async def fire(self, queue: str, schedule_id: str, tick_ms: int, tick_text: str) -> Fired:
        store = self._store
        qk = keys.queue_keys(queue)
        script_keys = [*qk.message_keys, keys.schedule_key(queue, schedule_id)]
        # A repeat after a broken connection is harmless: the tick is claimed already, the repeat adds nothing.
        reply = await store._retrying(
            lambda: store.scripts.run("schedule_fire", script_keys, [qk.channel, tick_ms, tick_text, store.key_base])
        )
        status = FireStatus(int(reply[0]))
        if status is FireStatus.FIRED and int(reply[3]):
            await store._index(listed=[queue])
        return Fired(status, int(reply[1]), int(reply[2]))


class RingSchedules:
    """Schedules on a ring: created on their queue's home node, found on whichever node holds them."""

    def __init__(self, ring: ShardedStore) -> None:
        self._ring = ring

    async def time_ms(self) -> int:
        return await self._ring._first(self._ring.nodes, lambda s: s.schedules.time_ms())

    async def create(self, schedule_id: str, queue: str, definition: str, value: str, start_ms: int, cap: int) -> bool:
        home = self._ring._home(queue)
        return await self._ring._on(
            home, lambda s: s.schedules.create(schedule_id, queue, definition, value, start_ms, cap)
        )

    async def load_all(self, *, values: bool = True) -> list[StoredSchedule]:
        every_node = await self._ring._each(lambda s: s.schedules.load_all(values=values))
        return [found for held in every_node for found in held]

    async def load(self, schedule_id: str) -> StoredSchedule | None:
        for found in await self._ring._each(lambda s: s.schedules.load(schedule_id)):
            if found is not None:
                return found
        return None

    async def set_paused(self, schedule_id: str, paused: bool) -> bool:
        return any(await self._ring._each(lambda s: s.schedules.set_paused(schedule_id, paused)))

    async def delete(self, schedule_id: str) -> bool:
        return any(await self._ring._each(lambda s: s.schedules.delete(schedule_id)))

    async def fire(self, queue: str, schedule_id: str, tick_ms: int, tick_text: str) -> Fired:
        """On the node holding the schedule: its queue's home first (where it was created), then the others."""
        error: BackendUnavailable | None = None
        for node in self._ring._walk(queue):
            if not node.healthy:
                continue
            try:
                fired = await self._ring._on(node, lambda s: s.schedules.fire(queue, schedule_id, tick_ms, tick_text))
            except BackendUnavailable as exc:
                error = exc
                continue
            if fired.status is not FireStatus.MISSING:
                return fired
        if error is not None:
            raise error
        return Fired(FireStatus.MISSING, 0)
