"""The worker loop behind :meth:`AsyncClient.consume`: lease, handle, then ack (on the next lease) or release with
backoff."""

from __future__ import annotations

import asyncio
import logging
from threading import Lock
from typing import TYPE_CHECKING

from restmq.client import _aio_flavor, _calls
from restmq.client._aio_flavor import Handler
from restmq.client.errors import ClientError
from restmq.client.models import ConsumeStats, Message

if TYPE_CHECKING:
    from restmq.client.aio import AsyncClient

log = logging.getLogger("restmq.client")


class AsyncWorker:
    """The shared state of one consume() run; each worker runs :meth:`run`."""

    def __init__(
        self,
        client: AsyncClient,
        queue: str,
        handler: Handler,
        lease: float,
        wait: float,
        backoff: float,
        max_backoff: float,
        max_messages: int | None,
        stop: asyncio.Event | None,
    ) -> None:
        self.client, self.queue, self.handler = client, queue, handler
        self.lease, self.wait, self.backoff, self.max_backoff = lease, wait, backoff, max_backoff
        self.max_messages = max_messages
        self.stop = stop or asyncio.Event()
        self.stats = ConsumeStats()
        self._lock = Lock()  # the blocking client's workers are threads; never held across an await
        self._started = 0

    def _claim(self) -> bool:
        with self._lock:
            if self.max_messages is not None and self._started >= self.max_messages:
                self.stop.set()
                return False
            self._started += 1
            if self.max_messages is not None and self._started >= self.max_messages:
                self.stop.set()  # this is the last one: nothing new is leased after it
            return True

    def _count(self, field: str) -> None:
        with self._lock:
            setattr(self.stats, field, getattr(self.stats, field) + 1)

    async def run(self) -> None:
        done: list[Message] = []  # handled: their acks ride on this worker's next lease
        try:
            await self._lease_and_handle(done)
        finally:
            for message in done:  # stopping: no next lease to carry them
                if await self._settle(message):
                    self._count("handled")

    async def _lease_and_handle(self, done: list[Message]) -> None:
        failures = 0
        while not self.stop.is_set():
            acked: dict[str, str] = {}
            try:
                message = await self.client.lease(self.queue, self.lease, wait=self.wait, ack=done, acked=acked)
            except ClientError as exc:  # the acks stay in `done`, for the next lease
                self._count("errors")
                failures += 1
                delay = _calls.jittered_delay(failures, 0.5, 10.0)
                log.warning("consume %s: %s; retrying in %.1fs", self.queue, exc, delay)
                await _aio_flavor.wait_event(self.stop, delay)
                continue
            failures = 0
            self._count_acks(done, acked)
            done.clear()
            if message is None:
                continue
            if self.stop.is_set() or not self._claim():
                await self._settle(message, release_after=0.0)
                return
            if await self._handle(message):
                done.append(message)

    def _count_acks(self, done: list[Message], acked: dict[str, str]) -> None:
        for message in done:
            outcome = acked.get(message.key)
            if outcome == "ok":
                self._count("handled")
            else:
                self._count("errors")
                log.warning("consume %s: acking %s failed: %s", self.queue, message.key, outcome)

    async def _handle(self, message: Message) -> bool:
        """Run the handler: True when it succeeded (the message is to be acked), else it is released."""
        try:
            await _aio_flavor.call_handler(self.handler, message)
        except Exception:
            self._count("failed")
            delay = _calls.retry_delay(max(message.count, 1), self.backoff, self.max_backoff)
            log.exception("consume %s: handler failed on %s; released, retry in %gs", self.queue, message.key, delay)
            await self._settle(message, release_after=delay)
            return False
        return True

    async def _settle(self, message: Message, *, release_after: float | None = None) -> bool:
        """Ack `message`, or release it to come back after `release_after` seconds; False when that failed."""
        try:
            if release_after is None:
                await self.client.ack(message)
            else:
                await self.client.release(message, delay=release_after)
            return True
        except ClientError as exc:
            self._count("errors")
            log.warning("consume %s: settling %s failed: %s", self.queue, message.key, exc)
            return False
