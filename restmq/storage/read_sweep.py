"""The socket timeout of reads from the engine, kept by one sweep per event loop instead of a timer per read.

redis-py bounds every reply it reads with its own `asyncio.timeout(socket_timeout)`: a timer armed and cancelled per
read, about a seventh of the storage client's CPU per engine call (docs/performance.md, item 28). Here a read
registers its connection and deadline in a dict, and a sweep, scheduled only while reads are in flight, aborts the
transport of a connection whose read is past its deadline. The read then fails as redis-py's own timeout would: the
connection is dropped and TimeoutError raised (a broken call, which RedisStore sends once more on a fresh
connection). This binds every task alike, the coalescing sender, the reaper and the stream dispatchers included,
which a request's deadline (core/deadline.py) does not.

A late read is cut between its deadline and TICK after it; the socket timeout is 10 s.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError
from redis.exceptions import TimeoutError as ReadTimeout

TICK = 0.25  # seconds between looks at the reads in flight


class _ReadSweep:
    """The reads of one event loop with their deadlines; the connection of a late one is aborted."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.reads: dict[AbstractConnection, float] = {}  # connection -> when its read is cut (event-loop time)
        self.cut: set[AbstractConnection] = set()
        self.armed = False

    def add(self, connection: AbstractConnection, seconds: float) -> None:
        self.reads[connection] = self.loop.time() + seconds
        if not self.armed:
            self.armed = True
            self.loop.call_later(TICK, self.sweep)

    def sweep(self) -> None:
        now = self.loop.time()
        for connection, at in list(self.reads.items()):
            if at <= now:
                del self.reads[connection]
                self.cut.add(connection)
                transport = getattr(connection._writer, "transport", None)
                if transport is not None:
                    transport.abort()  # the pending read ends with a ConnectionError at once
        self.armed = bool(self.reads)
        if self.armed:
            self.loop.call_later(TICK, self.sweep)


_sweep: _ReadSweep | None = None  # the serving loop's (a process serves from one loop)


def _sweep_of(loop: asyncio.AbstractEventLoop) -> _ReadSweep:
    global _sweep
    if _sweep is None or _sweep.loop is not loop:
        _sweep = _ReadSweep(loop)
    return _sweep


class SweptReads(AbstractConnection):
    async def read_response(
        self,
        disable_decoding: bool = False,
        timeout: float | None = None,
        *,
        disconnect_on_error: bool = True,
        push_request: bool | None = False,
    ) -> Any:
        if timeout is not None or not self.socket_timeout:  # a read with its own bound (pub/sub): redis-py's way
            return await super().read_response(
                disable_decoding, timeout, disconnect_on_error=disconnect_on_error, push_request=push_request
            )
        sweep = _sweep_of(asyncio.get_running_loop())
        sweep.add(self, self.socket_timeout)
        try:
            return await super().read_response(
                disable_decoding, math.inf, disconnect_on_error=disconnect_on_error, push_request=push_request
            )
        except ConnectionError:
            if self in sweep.cut:
                raise ReadTimeout("Timeout reading from socket") from None
            raise
        finally:
            if sweep.reads.pop(self, None) is None:
                sweep.cut.discard(self)
