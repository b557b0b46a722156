"""ScheduleService: create, list, pause, resume and delete schedules (what the HTTP handlers call).

Every change is announced on the schedules' event channel, so that the runner of every server process reloads
at once (restmq/core/schedule_runner.py).
"""

from __future__ import annotations

import contextlib

from restmq.config import Limits
from restmq.core import schedules
from restmq.core.schedules import Schedule
from restmq.core.store import Store
from restmq.errors import BackendUnavailable, BadRequest, NotFound

# The channel of schedule changes: a pseudo-queue name ("|" never occurs in a queue name), so that the events
# travel like a queue's (sharded pub/sub, every ring node) without ever meeting one.
EVENTS = "|schedules"
CHANGED = "changed"


def not_found() -> NotFound:
    return NotFound("no such schedule", code="SCHEDULE_NOT_FOUND")


class ScheduleService:
    def __init__(self, store: Store, limits: Limits, *, cap: int = schedules.MAX_SCHEDULES) -> None:
        self.store = store
        self.limits = limits
        self.cap = cap

    async def now_ms(self) -> int:
        return await self.store.schedules.time_ms()

    async def create(self, body: object) -> Schedule:
        """A new schedule from a request body (400 on any broken rule); its ticks count from now."""
        now = await self.now_ms()
        schedule = schedules.parse(body, max_value=self.limits.max_value, now_ms=now)
        stored = await self.store.schedules.create(
            schedule.id, schedule.queue, schedule.definition(), schedule.value, now, self.cap
        )
        if not stored:
            raise BadRequest(f"too many schedules: at most {self.cap} per backend node", code="SCHEDULES_FULL")
        await self.notify()
        return schedule

    async def list(self) -> list[Schedule]:
        found = [schedules.load(*stored) for stored in await self.store.schedules.load_all()]
        return sorted({s.id: s for s in found}.values(), key=lambda s: (s.queue, s.created_ms, s.id))

    async def get(self, schedule_id: str) -> Schedule:
        stored = await self.store.schedules.load(schedules.check_id(schedule_id))
        if stored is None:
            raise not_found()
        return schedules.load(*stored)

    async def set_paused(self, schedule_id: str, paused: bool) -> Schedule:
        if not await self.store.schedules.set_paused(schedules.check_id(schedule_id), paused):
            raise not_found()
        await self.notify()
        return await self.get(schedule_id)

    async def delete(self, schedule_id: str) -> None:
        if not await self.store.schedules.delete(schedules.check_id(schedule_id)):
            raise not_found()
        await self.notify()

    async def notify(self) -> None:
        """Tell every process's runner (a lost event only delays its reload: runners reload periodically too)."""
        with contextlib.suppress(BackendUnavailable):
            await self.store.publish(EVENTS, CHANGED)
