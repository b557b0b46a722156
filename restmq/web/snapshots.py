"""Snapshots shared by every caller of one process: computed at most once per key and tick of a clock.

Twenty open dashboards showing the same page cost one statistics read a second, not twenty: their streams all
wake at the same ticks of the process's clock (whole multiples of the interval), the first to ask for a tick
starts the computation, and everyone who asks for that tick awaits the same one. A computation that outlasts its
tick serves the next ticks too, rather than piling up more of them on a slow backend.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

from starlette.datastructures import State

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


def _retrieve(task: asyncio.Task[object]) -> None:
    if not task.cancelled():
        task.exception()  # a failure nobody awaits any more is not "never retrieved"


class Snapshots(Generic[K, V]):
    def __init__(self, compute: Callable[[K], Awaitable[V]], interval: float) -> None:
        self._compute = compute
        self.interval = interval
        self._entries: dict[K, tuple[int, asyncio.Task[V]]] = {}
        self._pruned = 0
        self.computed = 0  # snapshots computed so far

    def tick(self) -> int:
        """The current tick: which interval of the process's clock this is."""
        return math.floor(asyncio.get_running_loop().time() / self.interval)

    def until(self, tick: int) -> float:
        """Seconds until `tick` begins (0 or less when it has)."""
        return tick * self.interval - asyncio.get_running_loop().time()

    async def get(self, key: K, tick: int | None = None) -> V:
        """The snapshot of `key` for `tick` (default: now): computed by the first caller, shared with the others.
        A failure is shared the same way (a backend outage is not asked again by every caller)."""
        tick = self.tick() if tick is None else tick
        entry = self._entries.get(key)
        if entry is None or (entry[0] < tick and entry[1].done()):
            task = asyncio.ensure_future(self._compute(key))
            task.add_done_callback(_retrieve)
            self.computed += 1
            entry = self._entries[key] = (tick, task)
            self._prune(tick)
        # shielded: a caller that goes away (a closed dashboard) does not cancel it for the others
        return await asyncio.shield(entry[1])

    def _prune(self, tick: int) -> None:
        """Forget the snapshots of keys nobody asked for in the last ticks (pages no dashboard shows any more)."""
        if tick == self._pruned:
            return
        self._pruned = tick
        stale = [key for key, (seen, task) in self._entries.items() if task.done() and seen < tick - 1]
        for key in stale:
            del self._entries[key]


def shared(state: State, name: str, make: Callable[[], Snapshots[K, V]]) -> Snapshots[K, V]:
    """The application's Snapshots called `name`, made on first use (one per application and process)."""
    found: Snapshots[K, V] | None = getattr(state, name, None)
    if found is None:
        found = make()
        setattr(state, name, found)
    return found
