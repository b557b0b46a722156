"""Light stand-ins for the per-connection objects of uvicorn's HTTP protocol that an idle stream holds.

Thousands of streams stay open and idle; each asyncio.Event holds a 760-byte deque of waiters (and an
instance dict), and uvicorn keeps two of them plus a pipelining deque per connection, most of which is
never used. These do the same with a few slots, creating a waiter only when someone waits.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.flow_control import FlowControl


class Pipeline(list[Any]):
    """uvicorn's queue of pipelined requests (appendleft, then pop: oldest first), as a list: an empty deque
    holds a 64-slot block, an empty list nothing. Rarely more than one request waits."""

    __slots__ = ()

    def appendleft(self, item: Any) -> None:
        self.insert(0, item)


class LeanFlowControl(FlowControl):
    """uvicorn's flow control, whose writable event exists only while writes are paused."""

    def __init__(self, transport: asyncio.Transport) -> None:  # no super(): it makes the event
        self._transport = transport
        self.read_paused = False
        self.write_paused = False
        self._writable: asyncio.Event | None = None

    async def drain(self) -> None:
        if self._writable is not None:
            await self._writable.wait()

    def pause_writing(self) -> None:
        if not self.write_paused:
            self.write_paused = True
            self._writable = asyncio.Event()

    def resume_writing(self) -> None:
        if self.write_paused:
            self.write_paused = False
            writable, self._writable = self._writable, None
            if writable is not None:
                writable.set()


class LeanEvent:
    """What uvicorn's request cycle uses of an asyncio.Event (set, clear, is_set, wait), holding a future only
    while something waits."""

    __slots__ = ("_flag", "_waiters")

    def __init__(self, flag: bool = False) -> None:
        self._flag = flag
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        return self._flag

    def set(self) -> None:
        self._flag = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._flag = False

    async def wait(self) -> bool:
        if self._flag:
            return True
        waiter = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        try:
            await waiter
        finally:
            if self._waiters is not None and waiter in self._waiters:
                self._waiters.remove(waiter)
        return True
