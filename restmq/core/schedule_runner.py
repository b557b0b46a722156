"""The schedule runner: a background task in every server process that publishes due ticks.

It sleeps until the next tick of any schedule, or until a change is announced (any process's create, pause,
resume or delete), then asks the engine to publish each due tick. The engine claims a tick and adds its message
in one step (lua/schedule_fire.lua), so however many runners wake for a tick, one message is published. "Now"
is the engine's clock, read by every runner alike: clocks of server hosts never matter.

Policy (docs/schedules.md): only the latest due tick is published. A tick missed while no server ran is
published once when one starts; the ticks before it are skipped, not replayed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import replace

from restmq.core.schedule_service import EVENTS
from restmq.core.schedule_store import FireStatus
from restmq.core.schedules import Schedule, iso_tick, load
from restmq.core.store import Store
from restmq.core.waiters import Waiters
from restmq.errors import BackendUnavailable

log = logging.getLogger("restmq.schedules")

RELOAD_EVERY = 30.0  # seconds: schedules read again even without an event (one lost while a node was down)
RETRY_EARLY = 0.2  # seconds: a tick refused as not due (a ring node's clock behind the one read) is asked again
BACKOFF = 1.0  # seconds after a failed round
RELOAD_GAP = 0.2  # seconds between reloads at least: a burst of changes (a thousand creates) costs few reloads
FIRE_BATCH = 200  # due ticks asked for at once (the storage layer pipelines them)


class ScheduleRunner:
    def __init__(self, store: Store, waiters: Waiters, *, reload_every: float = RELOAD_EVERY) -> None:
        self._store = store
        self._waiters = waiters
        self._reload_every = reload_every
        self._schedules: list[Schedule] = []
        self._looks: dict[str, int] = {}  # schedule id -> when (engine ms) to look at it again
        self._loaded_at = -reload_every - 1.0
        self._dirty = True
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.fired = 0  # ticks this process published

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="restmq-schedules")

    async def close(self) -> None:
        if self._task is not None:
            task, self._task = self._task, None
            while not task.done():  # again: Python 3.11's wait_for can swallow a cancel
                task.cancel()
                await asyncio.wait({task}, timeout=0.1)
        self._waiters.remove(EVENTS, self._on_event)

    def _on_event(self, event: str) -> None:
        if event.startswith("sync:"):  # an echo of the subscription's confirmation
            return
        self._dirty = True  # "changed", or "missed" after a reconnect
        self._wake.set()

    async def _run(self) -> None:
        subscribed, failing = False, False
        while True:
            try:
                if not subscribed:
                    await self._waiters.add(EVENTS, self._on_event)
                    subscribed = True
                self._wake.clear()  # before the round: a change announced during it wakes the next at once
                delay = await self._round()
                if failing:
                    log.info("schedules: backend is back")
                failing = False
            except BackendUnavailable as exc:
                if not failing:
                    log.warning("schedules: %s", exc.message)
                failing, delay = True, BACKOFF
            except Exception:
                log.exception("schedule round failed")
                delay = BACKOFF
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    async def _round(self) -> float:
        """Publish what is due; the seconds until the next tick (or the next periodic reload)."""
        since = time.monotonic() - self._loaded_at
        if (self._dirty and since >= RELOAD_GAP) or since > self._reload_every:
            self._dirty = False  # before the read: a change announced during it reads again
            self._schedules = [load(*stored) for stored in await self._store.schedules.load_all(values=False)]
            self._loaded_at = time.monotonic()
        now = await self._store.schedules.time_ms()
        wait_ms = (RELOAD_GAP if self._dirty else self._reload_every) * 1000
        kept, due, looks = [], [], {}
        for schedule in self._schedules:
            # Nothing can be due before the next tick seen last time (a definition never changes, and pauses,
            # resumes and other processes' fires only move `last` on): skip the cron arithmetic until then.
            look = self._looks.get(schedule.id, now)
            if schedule.paused:
                kept.append(schedule)
            elif look <= now:
                due.append(schedule)
            else:
                kept.append(schedule)
                looks[schedule.id] = look
                wait_ms = min(wait_ms, look - now)
        for start in range(0, len(due), FIRE_BATCH):  # concurrent calls: one pipelined round trip per batch
            batch = due[start : start + FIRE_BATCH]
            for schedule, early in await asyncio.gather(*(self._fire_due(s, now) for s in batch)):
                look = now + round(RETRY_EARLY * 1000) if early else schedule.next_tick(now)
                kept.append(schedule)
                looks[schedule.id] = look
                wait_ms = min(wait_ms, look - now)
        self._schedules, self._looks = kept, looks
        return max(wait_ms, 1) / 1000

    async def _fire_due(self, schedule: Schedule, now: int) -> tuple[Schedule, bool]:
        """Publish the schedule's latest due tick unless it is published already: the schedule as it stands
        after, and True when the engine found the tick not yet due (to be asked again soon)."""
        tick = schedule.latest_tick(now)
        if tick is None or tick <= schedule.last_tick_ms:
            return schedule, False
        fired = await self._store.schedules.fire(schedule.queue, schedule.id, tick, iso_tick(tick))
        if fired.status is FireStatus.MISSING or fired.status is FireStatus.PAUSED:
            self._dirty = True  # deleted or paused by another process: read them all again
            return replace(schedule, paused=True), False
        if fired.status is FireStatus.FIRED:
            self.fired += 1
            log.debug("schedule %s published tick %s as %s:%d", schedule.id, tick, schedule.queue, fired.n)
        return replace(schedule, last_tick_ms=max(schedule.last_tick_ms, fired.last_tick_ms)), fired.last_tick_ms < tick
