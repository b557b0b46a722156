"""The ScheduleStore protocol: what schedules ask of a backend (Store.schedules).

A stored schedule is its definition (JSON: restmq.core.schedules.Schedule.definition) and its tick state, the
fields of its hash: value, paused, last, fired_at, fired, last_key. Backend failures raise BackendUnavailable.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Protocol

StoredSchedule = tuple[str, dict[str, str]]


class FireStatus(Enum):
    FIRED = 1  # this call published the tick
    NOT_DUE = 0  # published already (by any process), or not yet due by the engine's clock
    MISSING = -1  # the schedule was deleted
    PAUSED = -2


@dataclass(frozen=True)
class Fired:
    status: FireStatus
    last_tick_ms: int  # the schedule's last tick as the engine knows it after the call
    n: int = 0  # the message's number when FIRED


class ScheduleStore(Protocol):
    async def time_ms(self) -> int:
        """The engine's clock (on a ring: the first live node's), in ms: the one clock every process reads."""
        ...

    async def create(self, schedule_id: str, queue: str, definition: str, value: str, start_ms: int, cap: int) -> bool:
        """Store a new schedule beside its queue; False (and nothing stored) when the node already holds `cap`."""
        ...

    async def load_all(self, *, values: bool = True) -> list[StoredSchedule]:
        """Every schedule of every reachable node; without their values (state["value"]) unless `values`."""
        ...

    async def load(self, schedule_id: str) -> StoredSchedule | None: ...

    async def set_paused(self, schedule_id: str, paused: bool) -> bool:
        """Pause or resume; False when there is no such schedule. A resume counts ticks from now: the ticks that
        fell while it was paused are not published."""
        ...

    async def delete(self, schedule_id: str) -> bool: ...

    async def fire(self, queue: str, schedule_id: str, tick_ms: int, tick_text: str) -> Fired:
        """Publish the tick `tick_ms` of the schedule unless it, or a later one, was published already: the claim
        and the add are one atomic step in the queue's hash slot, so each tick is published once whatever the
        number of processes calling."""
        ...
