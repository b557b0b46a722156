"""Open streams follow their token: when it is revoked or expires, they are closed.

A REST request is authorized when it arrives, and Access caches token records for 5 seconds, so a
revocation reaches REST within 5 s. A stream (COMET, SSE, WebSocket) is authorized once, when it
opens; this watch keeps it to the same bound. Every INTERVAL seconds it closes the streams of tokens
whose expiry has passed (known from the record, no lookup) and reads the others' records afresh:
one batched lookup for every distinct token of this process's streams, however many streams share
a token. That read also refreshes Access's cache, so WebSocket commands see the revocation at the
same moment. Each server process runs its own watch: `restmq token revoke` writes straight into the
backend, so every process must notice by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field

from restmq.core.dispatch import Consumer
from restmq.core.tokens import TokenRecord
from restmq.errors import BackendUnavailable
from restmq.web.auth import Access

log = logging.getLogger("restmq.tokens")

INTERVAL = 2.0  # seconds between checks: well inside the 5 s a revocation takes to reach REST
REVOKED = "token revoked"
EXPIRED = "token expired"
POLICY_CLOSES = (REVOKED, EXPIRED)  # close reasons a WebSocket reports as 1008 (policy violation)


@dataclass
class _Watched:
    record: TokenRecord  # as it was when the streams opened
    consumers: set[Consumer] = field(default_factory=set)


class TokenWatch:
    def __init__(self, access: Access, interval: float = INTERVAL) -> None:
        self._access = access
        self._interval = interval
        self._tokens: dict[str, _Watched] = {}
        self._task: asyncio.Task[None] | None = None
        self._unavailable = False

    def watch(self, record: TokenRecord, consumer: Consumer) -> None:
        """Close `consumer` (with REVOKED or EXPIRED) once `record`'s token is revoked or expires."""
        watched = self._tokens.setdefault(record.id, _Watched(record))
        watched.consumers.add(consumer)
        consumer.on_close(lambda: self._forget(record.id, consumer))

    def _forget(self, token_id: str, consumer: Consumer) -> None:
        watched = self._tokens.get(token_id)
        if watched is not None:
            watched.consumers.discard(consumer)
            if not watched.consumers:
                del self._tokens[token_id]

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="restmq-token-watch")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.check()
            except BackendUnavailable as exc:  # streams stay as they are until the backend answers
                if not self._unavailable:
                    log.warning("token watch: %s", exc.message)
                self._unavailable = True
            except Exception:
                log.exception("token watch failed")

    async def check(self) -> None:
        """Close the streams of expired tokens, then of those revoked since they opened."""
        now = time.time()
        for token_id, watched in list(self._tokens.items()):
            if watched.record.expired(now):
                self._close(token_id, EXPIRED)
        if not self._tokens:
            return
        ids = list(self._tokens)
        current = await self._access.refresh(ids)
        self._unavailable = False
        for token_id in ids:
            still = self._tokens.get(token_id)  # streams may have ended during the lookup
            record = current.get(token_id)
            if still is not None and (record is None or record.digest != still.record.digest):
                self._close(token_id, REVOKED)

    def _close(self, token_id: str, reason: str) -> None:
        watched = self._tokens.pop(token_id, None)
        if watched is None:
            return
        what = reason.removeprefix("token ")
        log.warning("token %s %s: closing its %d stream(s)", token_id, what, len(watched.consumers))
        for consumer in list(watched.consumers):
            consumer.close(reason, discard=True)
