"""The deadline of the request being served (--backend-timeout): its backend work ends by then.

The web layer starts one per request (and one per WebSocket frame). Every storage call the request's own
task makes runs under it (restmq.storage.errors.backend_errors): a call still waiting for the backend
when the deadline comes is cancelled and becomes BackendUnavailable, whatever the engine does (frozen,
a network black hole) and whatever redis-py's socket timeout. A request that waits for something else
than the backend (a long-poll waiting for a message) renews it after its wait: the deadline bounds each
stretch of backend work, not the wait.

Tasks started while serving a request (stream dispatchers, pipelined senders) inherit the context but
not the deadline: it binds only the task that started it.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from restmq.errors import BackendUnavailable


@dataclass(slots=True)
class Deadline:
    task: asyncio.Task[object] | None
    at: float  # event-loop time
    budget: float  # seconds: --backend-timeout


_current: contextvars.ContextVar[Deadline | None] = contextvars.ContextVar("restmq_deadline", default=None)


@contextmanager
def started(budget: float) -> Iterator[None]:
    """Run the block (one request, or one WebSocket frame) under a deadline `budget` seconds away."""
    if budget <= 0:
        yield
        return
    loop = asyncio.get_running_loop()
    token = _current.set(Deadline(asyncio.current_task(), loop.time() + budget, budget))
    try:
        yield
    finally:
        _current.reset(token)


def renew() -> None:
    """A full budget again from now: after a wait that is not backend work (a long-poll's)."""
    deadline = _current.get()
    if deadline is not None and deadline.task is asyncio.current_task():
        deadline.at = asyncio.get_running_loop().time() + deadline.budget


@contextmanager
def bounded(node: str) -> Iterator[None]:
    """Cancel the block at the current task's deadline, and raise BackendUnavailable instead (a synchronous
    asyncio.timeout_at, so that the storage's `with backend_errors(...)` blocks need no change)."""
    deadline = _current.get()
    task = asyncio.current_task() if deadline is not None else None
    if deadline is None or task is None or deadline.task is not task:
        yield
        return
    loop = asyncio.get_running_loop()
    if loop.time() >= deadline.at:
        raise _late(node, deadline)
    cancelling = task.cancelling()
    fired = False

    def expire() -> None:
        nonlocal fired
        fired = True
        task.cancel()

    timer = loop.call_at(deadline.at, expire)
    try:
        yield
    except asyncio.CancelledError:
        if fired and task.uncancel() <= cancelling:  # our cancel alone: the deadline passed
            raise _late(node, deadline) from None
        raise
    except BaseException:
        if fired:  # the block failed otherwise as it was cancelled: take the cancel back
            task.uncancel()
        raise
    else:
        if fired:  # the answer came as the deadline passed (a cancel swallowed on the way): keep it
            task.uncancel()
    finally:
        timer.cancel()


def _late(node: str, deadline: Deadline) -> BackendUnavailable:
    return BackendUnavailable(f"backend {node} did not answer within {deadline.budget:g}s (--backend-timeout)")
