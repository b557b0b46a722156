"""The deadline of the request being served (--backend-timeout): its backend work ends by then.

The web layer starts one per request (and one per WebSocket frame). Every storage call the request's own
task makes runs under it (restmq.storage.errors.backend_errors): a call still waiting for the backend
when the deadline comes is cancelled and becomes BackendUnavailable, whatever the engine does (frozen,
a network black hole) and whatever redis-py's socket timeout. A request that waits for something else
than the backend (a long-poll waiting for a message) renews it after its wait: the deadline bounds each
stretch of backend work, not the wait. Once a request's answer has begun, what backend work its task
still does (a dashboard's event stream) is bound call by call, each call getting the whole budget.

Tasks started while serving a request (stream dispatchers, pipelined senders) inherit the context but
not the deadline: it binds only the task that started it.

A timer per call would cost more than the rest of a lean request's own work, so one sweep per event loop
looks at the calls in flight every TICK while there are any: a late call is cut at most TICK after its
deadline.
"""

from __future__ import annotations

import asyncio
import contextvars
from dataclasses import dataclass
from types import TracebackType

from restmq.errors import BackendUnavailable, DeadlinePassed

TICK = 0.05  # seconds between looks at the calls in flight


@dataclass(slots=True)
class Deadline:
    task: asyncio.Task[object] | None
    at: float  # event-loop time
    budget: float  # seconds: --backend-timeout
    per_call: bool = False  # the answer has begun: each call gets the whole budget


_current: contextvars.ContextVar[Deadline | None] = contextvars.ContextVar("restmq_deadline", default=None)
Token = contextvars.Token[Deadline | None]


class _Sweep:
    """The backend calls of one event loop that run under a deadline; those past it are cancelled."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.calls: dict[asyncio.Task[object], float] = {}  # task -> when its call is cut (event-loop time)
        self.armed = False

    def add(self, task: asyncio.Task[object], at: float) -> None:
        self.calls[task] = at
        if not self.armed:
            self.armed = True
            self.loop.call_later(TICK, self.sweep)

    def sweep(self) -> None:
        now = self.loop.time()
        for task, at in list(self.calls.items()):
            if at <= now:
                del self.calls[task]  # gone from calls: the call's end knows its cancel came from here
                task.cancel()
        self.armed = bool(self.calls)
        if self.armed:
            self.loop.call_later(TICK, self.sweep)


_sweep: _Sweep | None = None  # the serving loop's (a process serves from one loop)


def _sweep_of(loop: asyncio.AbstractEventLoop) -> _Sweep:
    global _sweep
    if _sweep is None or _sweep.loop is not loop:
        _sweep = _Sweep(loop)
    return _sweep


def start(budget: float) -> Token | None:
    """Put the current task's backend work (one request, or one WebSocket frame) under a deadline `budget`
    seconds away (none when `budget` is 0); finish() with the token when it is answered."""
    if budget <= 0:
        return None
    return _current.set(Deadline(asyncio.current_task(), asyncio.get_running_loop().time() + budget, budget))


def finish(token: Token | None) -> None:
    if token is not None:
        _current.reset(token)


def answering() -> None:
    """The request's answer has begun: from now on each backend call of its task gets the whole budget."""
    deadline = _current.get()
    if deadline is not None:
        deadline.per_call = True


def renew() -> None:
    """A full budget again from now: after a wait that is not backend work (a long-poll's)."""
    deadline = _current.get()
    if deadline is not None and deadline.task is asyncio.current_task():
        deadline.at = asyncio.get_running_loop().time() + deadline.budget


class bounded:  # lower case: used like a function, `with bounded(node):`
    """Cut the block at the current task's deadline and raise BackendUnavailable instead (an
    asyncio.timeout_at that the storage's synchronous `with backend_errors(...)` blocks can use)."""

    __slots__ = ("cancelling", "deadline", "node", "sweep", "task")

    def __init__(self, node: str) -> None:
        self.node = node
        self.task: asyncio.Task[object] | None = None

    def __enter__(self) -> None:
        deadline = _current.get()
        if deadline is None:
            return
        task = asyncio.current_task()
        if task is None or deadline.task is not task:
            return  # a task the request started: not bound by its deadline
        sweep = _sweep_of(task.get_loop())
        if task in sweep.calls:
            return  # nested: the outer block is bound already
        now = sweep.loop.time()
        if deadline.per_call:
            at = now + deadline.budget
        elif now < deadline.at:
            at = deadline.at
        else:
            raise DeadlinePassed(
                f"no time left for backend {self.node} within {deadline.budget:g}s (--backend-timeout)"
            )
        self.task, self.deadline, self.sweep, self.cancelling = task, deadline, sweep, task.cancelling()
        sweep.add(task, at)

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        task = self.task
        if task is None or self.sweep.calls.pop(task, None) is not None:
            return  # not bound, or finished before the deadline
        # The sweep cancelled the task: a CancelledError of ours alone means the deadline passed. Any other
        # end (an answer that came as the deadline passed, another error) takes the cancel back.
        if task.uncancel() <= self.cancelling and kind is asyncio.CancelledError:
            budget = self.deadline.budget
            raise BackendUnavailable(
                f"backend {self.node} did not answer within {budget:g}s (--backend-timeout)"
            ) from None


class time_limit:  # lower case: used like asyncio.timeout, `with time_limit(30):`
    """Cut the current task's block after `seconds` (at most TICK later) and raise TimeoutError instead:
    asyncio.timeout without a timer of its own. Not inside a `bounded` block of the same task (the sweep
    holds one cut per task): a request reads its body before its backend work."""

    __slots__ = ("cancelling", "seconds", "sweep", "task")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __enter__(self) -> None:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("time_limit needs a task")
        self.task, self.sweep, self.cancelling = task, _sweep_of(task.get_loop()), task.cancelling()
        if task in self.sweep.calls:
            raise RuntimeError("time_limit inside a bounded block of the same task")
        self.sweep.add(task, self.sweep.loop.time() + self.seconds)

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self.sweep.calls.pop(self.task, None) is not None:
            return  # done in time
        if self.task.uncancel() <= self.cancelling and kind is asyncio.CancelledError:
            raise TimeoutError from None
