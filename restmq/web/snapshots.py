"""Snapshots shared by every caller of one process: computed at most once per `max_age` seconds per key.

Twenty open dashboards showing the same page cost one statistics read a second, not twenty: the first caller
after a snapshot got too old starts the computation, and everyone who asks meanwhile awaits that same one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

from starlette.datastructures import State

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


def _retrieve(task: asyncio.Task[object]) -> None:
    if not task.cancelled():
        task.exception()  # a failure nobody awaited any more is not "never retrieved"


class Snapshots(Generic[K, V]):
    def __init__(self, compute: Callable[[K], Awaitable[V]], max_age: float) -> None:
        self._compute = compute
        self.max_age = max_age
        self._entries: dict[K, tuple[float, asyncio.Task[V]]] = {}
        self._pruned = 0.0
        self.computed = 0  # how many snapshots were computed, for tests and curiosity

    async def get(self, key: K) -> V:
        """The snapshot of `key` started less than `max_age` seconds ago (or still being computed), else a new
        one. A failure is shared the same way: a backend outage is not asked again by every caller."""
        now = asyncio.get_running_loop().time()
        entry = self._entries.get(key)
        if entry is None or (entry[1].done() and now - entry[0] >= self.max_age):
            task = asyncio.ensure_future(self._compute(key))
            task.add_done_callback(_retrieve)
            self.computed += 1
            entry = self._entries[key] = (now, task)
            self._prune(now)
        # shielded: a caller that goes away (a closed dashboard) does not cancel it for the others
        return await asyncio.shield(entry[1])

    def _prune(self, now: float) -> None:
        """Forget snapshots nobody asked for lately (pages no dashboard shows any more)."""
        if now - self._pruned < self.max_age:
            return
        self._pruned = now
        stale = [k for k, (at, task) in self._entries.items() if task.done() and now - at >= 2 * self.max_age]
        for key in stale:
            del self._entries[key]


def shared(state: State, name: str, make: Callable[[], Snapshots[K, V]]) -> Snapshots[K, V]:
    """The application's Snapshots called `name`, made on first use (one per application and process)."""
    found: Snapshots[K, V] | None = getattr(state, name, None)
    if found is None:
        found = make()
        setattr(state, name, found)
    return found
