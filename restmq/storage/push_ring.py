"""Push subscriptions on a consistent-hash ring (mixed into ShardedStore).

A subscription lives on its queue's home node, like the queue's settings; while that node is down its queue is
not pushed (its messages wait, as they would for any consumer of that node). Listings ask every live node.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from restmq.core.push import Outcome

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from restmq.storage.node import RedisStore, T
    from restmq.storage.sharded import Node


class RingPushCommands:
    """The core.push.PushStore methods, for ShardedStore."""

    if TYPE_CHECKING:

        def _home(self, queue: str) -> Node: ...
        async def _on(self, node: Node, call: Callable[[RedisStore], Awaitable[T]]) -> T: ...
        async def _each(self, call: Callable[[RedisStore], Awaitable[T]], *, require_one: bool = True) -> list[T]: ...
        def _by_number(self, queue: str, n: int) -> list[Node]: ...

    async def save_push(self, queue: str, fields: Mapping[str, str]) -> None:
        await self._on(self._home(queue), lambda s: s.save_push(queue, fields))

    async def load_push(self, queue: str) -> dict[str, str] | None:
        return await self._on(self._home(queue), lambda s: s.load_push(queue))

    async def list_push(self) -> dict[str, dict[str, str]]:
        listed: dict[str, dict[str, str]] = {}
        for found in await self._each(lambda s: s.list_push()):
            for queue, fields in found.items():
                listed.setdefault(queue, fields)  # a former home's copy after the ring changed: the first wins
        return dict(sorted(listed.items()))

    async def delete_push(self, queue: str) -> bool:
        return any(await self._each(lambda s: s.delete_push(queue)))

    async def reserve_push(self, queue: str, want: int, hold_ms: int, owner: str) -> tuple[list[str], int]:
        return await self._on(self._home(queue), lambda s: s.reserve_push(queue, want, hold_ms, owner))

    async def settle_push(self, queue: str, slots: Sequence[str], refund: int, outcome: Outcome) -> None:
        await self._on(self._home(queue), lambda s: s.settle_push(queue, slots, refund, outcome))

    async def dead_letter_push(self, queue: str, n: int, count: int, status: int | None, error: str) -> bool:
        for node in self._by_number(queue, n):
            if await self._on(node, lambda s: s.dead_letter_push(queue, n, count, status, error)):
                return True
        return False
