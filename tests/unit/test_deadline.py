"""The per-request backend deadline (restmq.core.deadline), on a real event loop (issue 14)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator

import pytest

from restmq.core import deadline
from restmq.errors import BackendUnavailable, DeadlinePassed

pytestmark = pytest.mark.unit


@contextlib.contextmanager
def request(budget: float) -> Iterator[None]:
    token = deadline.start(budget)
    try:
        yield
    finally:
        deadline.finish(token)


def cancels_pending() -> int:
    task = asyncio.current_task()
    assert task is not None
    return task.cancelling()


async def test_a_backend_call_still_waiting_at_the_deadline_becomes_unavailable() -> None:
    began = time.monotonic()
    with request(0.2), pytest.raises(BackendUnavailable) as raised, deadline.bounded("node-a"):
        await asyncio.Event().wait()  # a backend that never answers
    assert 0.15 < time.monotonic() - began < 2
    assert "0.2s" in raised.value.message and "node-a" in raised.value.message
    assert cancels_pending() == 0


async def test_the_deadline_covers_the_whole_request_not_each_call() -> None:
    with request(0.3):
        with deadline.bounded("node-a"):
            await asyncio.sleep(0.2)
        with pytest.raises(BackendUnavailable) as late, deadline.bounded("node-a"):
            await asyncio.sleep(0.2)
        assert not isinstance(late.value, DeadlinePassed)  # this node did not answer in time
        with pytest.raises(DeadlinePassed), deadline.bounded("node-b"):  # no time left: node-b is not to blame
            pass


async def test_renew_gives_a_full_budget_after_a_wait() -> None:
    with request(0.2):
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

    with request(0.1):
        task = asyncio.create_task(background())  # inherits the context, not the deadline
    assert await task == "done"


async def test_concurrent_requests_each_have_their_own_deadline() -> None:
    async def call(budget: float, took: float) -> str:
        with request(budget):
            try:
                with deadline.bounded("node-a"):
                    await asyncio.sleep(took)
            except BackendUnavailable:
                return "late"
        return "answered"

    results = await asyncio.gather(call(0.1, 0.5), call(1.0, 0.3), call(0.2, 5))
    assert list(results) == ["late", "answered", "late"]


async def test_a_cancel_from_elsewhere_stays_a_cancel() -> None:
    async def bound_forever() -> None:
        with request(5), deadline.bounded("node-a"):
            await asyncio.Event().wait()

    task = asyncio.create_task(bound_forever())
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_an_answer_in_time_leaves_no_cancel_behind() -> None:
    with request(0.1):
        with deadline.bounded("node-a"):
            await asyncio.sleep(0)
        await asyncio.sleep(0.3)  # past the deadline, outside any backend call: nothing cancels this
    assert cancels_pending() == 0


async def test_no_budget_means_no_deadline() -> None:
    with request(0), deadline.bounded("node-a"):
        await asyncio.sleep(0.1)


async def test_once_the_answer_has_begun_each_call_gets_the_whole_budget() -> None:
    with request(0.2):
        deadline.answering()  # e.g. a dashboard's event stream, still in the request's task
        for _ in range(3):
            await asyncio.sleep(0.15)  # between events
            with deadline.bounded("node-a"):
                await asyncio.sleep(0.1)
        with pytest.raises(BackendUnavailable), deadline.bounded("node-a"):
            await asyncio.sleep(1)


async def test_time_limit_cuts_a_block_that_runs_late_into_a_timeout_error() -> None:
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        with deadline.time_limit(0.1):
            await asyncio.sleep(5)
    assert time.monotonic() - started < 2
    with deadline.time_limit(5):  # in time: nothing happens, and nothing is left behind
        await asyncio.sleep(0)
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0
    await asyncio.sleep(0.15)  # a later sweep does not cancel the task


async def test_time_limit_leaves_a_cancel_from_elsewhere_a_cancel() -> None:
    async def read() -> None:
        with deadline.time_limit(5):
            await asyncio.sleep(5)

    task = asyncio.create_task(read())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
