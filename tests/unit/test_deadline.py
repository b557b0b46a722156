"""The per-request backend deadline (restmq.core.deadline), on a real event loop (issue 14)."""

from __future__ import annotations

import asyncio
import time

import pytest

from restmq.core import deadline
from restmq.errors import BackendUnavailable


async def test_a_backend_call_still_waiting_at_the_deadline_becomes_unavailable() -> None:
    began = time.monotonic()
    with deadline.started(0.2), pytest.raises(BackendUnavailable) as raised, deadline.bounded("node-a"):
        await asyncio.Event().wait()  # a backend that never answers
    assert 0.15 < time.monotonic() - began < 2
    assert "0.2s" in raised.value.message and "node-a" in raised.value.message
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


async def test_the_deadline_covers_the_whole_request_not_each_call() -> None:
    with deadline.started(0.3):
        with deadline.bounded("node-a"):
            await asyncio.sleep(0.2)
        with pytest.raises(BackendUnavailable), deadline.bounded("node-a"):
            await asyncio.sleep(0.2)
        with pytest.raises(BackendUnavailable), deadline.bounded("node-a"):  # already passed: fails at once
            pass


async def test_renew_gives_a_full_budget_after_a_wait() -> None:
    with deadline.started(0.2):
        await asyncio.sleep(0.3)  # a long-poll's wait, not backend work
        deadline.renew()
        with deadline.bounded("node-a"):
            await asyncio.sleep(0.1)


async def test_calls_outside_a_request_and_in_tasks_it_starts_are_not_bound() -> None:
    with deadline.bounded("node-a"):
        await asyncio.sleep(0.05)

    async def background() -> str:
        with deadline.bounded("node-a"):
            await asyncio.sleep(0.3)
        return "done"

    with deadline.started(0.1):
        task = asyncio.create_task(background())  # inherits the context, not the deadline
    assert await task == "done"


async def test_a_cancel_from_elsewhere_stays_a_cancel() -> None:
    async def request() -> None:
        with deadline.started(5), deadline.bounded("node-a"):
            await asyncio.Event().wait()

    task = asyncio.create_task(request())
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_an_answer_in_time_leaves_no_timer_behind() -> None:
    with deadline.started(0.1):
        with deadline.bounded("node-a"):
            await asyncio.sleep(0)
    await asyncio.sleep(0.2)  # a timer left armed would cancel this task now
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]
