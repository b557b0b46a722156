"""A stateful model of one queue with priorities, message groups and leases, checked step by step against RedisStore.

Hypothesis drives random sequences of add (plain or to a message group) / lease / take / peek / ack / release /
stale ack / expire (reaper or next pop) / delete / restart against the real store on the session engine, and
compares every delivery and the queue's numbers with a small in-Python model. Lease expiry is forced, never
waited for: the test rewrites lease deadlines in the queue's `leased` zset to the past, so the
model always knows which leases have run out.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, ClassVar, TypeVar, cast

import pytest
import redis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from restmq.core.model import Message, PopMode, SettleAction, SettleOutcome
from restmq.storage import keys
from restmq.storage.node import RedisStore

pytestmark = pytest.mark.integration

Q = "model"
LEASE_MS = 60_000  # never runs out during a run: expiry is forced by the `expire_*` rules
T = TypeVar("T")


class LeaseModel(RuleBasedStateMachine):
    url: ClassVar[str]

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.sync = redis.Redis.from_url(self.url, decode_responses=True)
        self.sync.flushall()
        self.store = RedisStore.from_url(self.url)
        self.qk = keys.queue_keys(Q)
        self.values: dict[int, str] = {}  # n -> value, every message ever added
        self.priority: dict[int, int] = {}
        self.counts: dict[int, int] = {}  # n -> deliveries so far
        self.bands: dict[int, list[int]] = {p: [] for p in range(10)}  # ready messages, in delivery order
        self.leased: dict[int, int] = {}  # n -> the count of its current delivery
        self.overdue: set[int] = set()  # leased, deadline forced into the past, not yet taken back
        self.finished: set[int] = set()  # acked or taken: gone for good
        self.taken: set[str] = set()  # values delivered by take
        self.next_value = 0
        # message groups (docs/semantics.md): a group's head is ready or leased, its later messages wait parked
        self.group_of: dict[int, str] = {}
        self.heads: dict[str, int] = {}
        self.parked: dict[str, list[int]] = {}
        self.pushed: set[int] = set()  # ready messages put back at the head (release, expired lease)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        self.run(self.store.close())
        self.loop.close()
        self.sync.close()

    # -- the model ------------------------------------------------------------------------------

    def ready(self) -> list[int]:
        return [n for p in range(9, -1, -1) for n in self.bands[p]]

    def take_back_overdue(self) -> None:
        """What housekeeping does: overdue leases go to the head of their priority, in key order."""
        for p in range(10):
            back = sorted(n for n in self.overdue if self.priority[n] == p)
            self.bands[p][:0] = back
        for n in self.overdue:
            del self.leased[n]
        self.pushed |= self.overdue
        self.overdue.clear()

    def remove_ready(self, n: int) -> None:
        self.bands[self.priority[n]].remove(n)
        self.pushed.discard(n)

    def finish(self, n: int) -> None:
        """n leaves the queue for good: if it headed a group, the group's next message becomes ready at its place
        in the insertion order (behind the messages put back at the head)."""
        self.finished.add(n)
        group = self.group_of.get(n)
        if group is None or self.heads.get(group) != n:
            return
        if not self.parked[group]:
            del self.heads[group], self.parked[group]
            return
        m = self.heads[group] = self.parked[group].pop(0)
        band = self.bands[0]
        at = next((i for i, k in enumerate(band) if k not in self.pushed and k > m), len(band))
        band.insert(at, m)

    def waiting(self) -> list[int]:
        return [n for ns in self.parked.values() for n in ns]

    def check_delivery(self, got: list[Message], expected: list[int]) -> None:
        assert [m.n for m in got] == expected, ("delivery order", [m.n for m in got], expected)
        for m in got:
            self.counts[m.n] += 1
            assert m.value == self.values[m.n]
            assert m.count == self.counts[m.n], ("count", m.n, m.count, self.counts[m.n])

    # -- rules ----------------------------------------------------------------------------------

    @rule(size=st.integers(1, 3), priority=st.sampled_from([0, 0, 0, 1, 5, 9]), group=st.sampled_from([None, "a", "b"]))
    def add(self, size: int, priority: int, group: str | None) -> None:
        batch = [f"v{self.next_value + i}" for i in range(size)]
        self.next_value += size
        if group is not None:
            priority = 0  # a group takes no priority
            result = self.run(self.store.add(Q, batch, group=group))
        else:
            result = self.run(self.store.add(Q, batch, priority=priority))
        numbers = list(range(result.first, result.last + 1))
        assert len(numbers) == size and not result.duplicate
        for n, value in zip(numbers, batch, strict=True):
            assert n not in self.values
            self.values[n] = value
            self.priority[n] = priority
            self.counts[n] = 0
            if group is not None:
                self.group_of[n] = group
                if group in self.heads:
                    self.parked[group].append(n)
                    continue
                self.heads[group], self.parked[group] = n, []
            self.bands[priority].append(n)

    @rule(count=st.integers(1, 3))
    def lease(self, count: int) -> None:
        self.take_back_overdue()
        expected = self.ready()[:count]
        got = self.run(self.store.pop(Q, PopMode.LEASE, count, LEASE_MS)).messages
        self.check_delivery(got, expected)
        for n in expected:
            self.remove_ready(n)
            self.leased[n] = self.counts[n]

    @rule(count=st.integers(1, 3))
    def take(self, count: int) -> None:
        self.take_back_overdue()
        expected: list[int] = []
        while len(expected) < count and self.ready():  # each take may make its group's next message ready
            n = self.ready()[0]
            expected.append(n)
            self.remove_ready(n)
            self.finish(n)
        got = self.run(self.store.pop(Q, PopMode.TAKE, count)).messages
        self.check_delivery(got, expected)
        for m in got:
            assert m.value not in self.taken, f"{m.value} taken twice"
            self.taken.add(m.value)

    @rule()
    def peek(self) -> None:
        self.take_back_overdue()
        got = self.run(self.store.pop(Q, PopMode.PEEK, 1)).messages
        self.check_delivery(got, self.ready()[:1])  # stays at the head

    @precondition(lambda self: self.leased)
    @rule(data=st.data(), with_count=st.booleans())
    def ack(self, data: st.DataObject, with_count: bool) -> None:
        n = data.draw(st.sampled_from(sorted(self.leased)))
        expected = self.leased[n] if with_count else None
        result = self.run(self.store.settle(Q, SettleAction.ACK, n, expected_count=expected))
        if n in self.overdue:
            assert result.outcome is SettleOutcome.NOT_LEASED
            return
        assert (result.outcome, result.count) == (SettleOutcome.OK, self.counts[n])
        del self.leased[n]
        self.finish(n)

    @rule(data=st.data(), count=st.integers(1, 3))
    def ack_and_lease(self, data: st.DataObject, count: int) -> None:
        """Acks carried on a lease (GET ?lease=&ack=): each ack as settle would answer it, then the lease."""
        pool = sorted(self.leased) + sorted(self.finished)[:3]
        picked = data.draw(st.lists(st.sampled_from(pool), max_size=3)) if pool else []
        acks = [(n, data.draw(st.sampled_from([None, self.counts[n], self.counts[n] + 1]))) for n in picked]
        result = self.run(self.store.ack_lease(Q, acks, count, LEASE_MS))
        for (n, expected), got in zip(acks, result.acked, strict=True):
            if n not in self.leased:  # acked or taken before, or earlier in this call
                want = SettleOutcome.MISSING
            elif expected is not None and expected != self.counts[n]:
                want = SettleOutcome.STALE
            elif n in self.overdue:
                want = SettleOutcome.NOT_LEASED
            else:
                want = SettleOutcome.OK
                del self.leased[n]
                self.finish(n)
            assert got.outcome is want, ("ack on a lease", n, expected, got.outcome, want)
        self.take_back_overdue()
        delivered = self.ready()[:count]
        self.check_delivery(result.messages, delivered)
        for n in delivered:
            self.remove_ready(n)
            self.leased[n] = self.counts[n]

    @precondition(lambda self: self.leased)
    @rule(data=st.data(), action=st.sampled_from([SettleAction.ACK, SettleAction.RELEASE, SettleAction.EXTEND]))
    def stale_settle(self, data: st.DataObject, action: SettleAction) -> None:
        n = data.draw(st.sampled_from(sorted(self.leased)))
        wrong = data.draw(st.sampled_from([self.counts[n] - 1, self.counts[n] + 1]))
        result = self.run(self.store.settle(Q, action, n, expected_count=wrong, ms=LEASE_MS))
        assert (result.outcome, result.count) == (SettleOutcome.STALE, self.counts[n])

    @precondition(lambda self: self.leased)
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        n = data.draw(st.sampled_from(sorted(self.leased)))
        result = self.run(self.store.settle(Q, SettleAction.RELEASE, n, expected_count=self.leased[n]))
        if n in self.overdue:
            assert result.outcome is SettleOutcome.NOT_LEASED
            return
        assert result.outcome is SettleOutcome.OK
        del self.leased[n]
        self.bands[self.priority[n]].insert(0, n)
        self.pushed.add(n)

    @precondition(lambda self: len(self.finished) < len(self.values))
    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        """Delete by key (the JSON protocol's del): wherever the message is, ready, parked or leased."""
        n = data.draw(st.sampled_from(sorted(set(self.values) - self.finished)))
        assert self.run(self.store.delete(Q, n)) is True
        if n in self.leased:
            del self.leased[n]
            self.overdue.discard(n)
        elif n in self.ready():
            self.remove_ready(n)
        group = self.group_of.get(n)
        if group is not None and self.heads[group] != n:
            self.parked[group].remove(n)
        self.finish(n)

    @precondition(lambda self: self.leased)
    @rule(data=st.data())
    def extend(self, data: st.DataObject) -> None:
        n = data.draw(st.sampled_from(sorted(self.leased)))
        result = self.run(self.store.settle(Q, SettleAction.EXTEND, n, ms=LEASE_MS))
        if n in self.overdue:
            assert result.outcome is SettleOutcome.NOT_LEASED
            return
        assert result.outcome is SettleOutcome.OK

    @precondition(lambda self: len(self.overdue) < len(self.leased))
    @rule(data=st.data())
    def expire(self, data: st.DataObject) -> None:
        """Some leases run out (their deadline moves into the past); nothing takes them back yet."""
        live = sorted(set(self.leased) - self.overdue)
        chosen = data.draw(st.lists(st.sampled_from(live), min_size=1, unique=True))
        self.sync.zadd(self.qk.leased, {str(n): 1 for n in chosen})
        self.overdue.update(chosen)

    @rule()
    def reap(self) -> None:
        """The reaper's sweep (its index entry due, its lock free) takes back every overdue lease."""
        self.sync.zadd(keys.TIMERS, {Q: 1})
        self.sync.delete(keys.REAPER_LOCK)
        moved = self.run(self.store.reap())
        assert moved == len(self.overdue)
        self.take_back_overdue()

    @rule()
    def restart(self) -> None:
        self.run(self.store.close())
        self.store = RedisStore.from_url(self.url)

    @rule()
    def drain(self) -> None:
        """Every lease runs out and everything is taken: each value added and not finished comes back once."""
        if self.leased:
            self.sync.zadd(self.qk.leased, {str(n): 1 for n in self.leased})
            self.overdue.update(self.leased)
        while self.ready() or self.leased:
            self.take(3)
        assert self.finished == set(self.values)
        assert self.run(self.store.pop(Q, PopMode.TAKE, 10)).messages == []

    # -- invariants -----------------------------------------------------------------------------

    @invariant()
    def numbers_agree(self) -> None:
        (stats,) = self.run(self.store.stats([Q]))
        assert stats.length == len(self.ready()) + len(self.waiting()), ("length", stats.length, self.ready())
        assert stats.leased == len(self.leased), ("leased", stats.leased, self.leased)
        assert stats.delayed == 0 and stats.dead == 0
        # no message lost: each one is ready, leased or finished, and only one of those
        ready, leased, parked = set(self.ready()) | set(self.waiting()), set(self.leased), set(self.waiting())
        assert not (ready & leased) and not (ready & self.finished) and not (leased & self.finished)
        assert ready | leased | self.finished == set(self.values)
        # one message of a group in flight at most: its head, never a parked one
        leased_now = [int(n) for n in cast(list[str], self.sync.zrange(self.qk.leased, 0, -1))]
        in_flight = [self.group_of[n] for n in leased_now if n in self.group_of]
        assert len(in_flight) == len(set(in_flight)) and not (parked & leased)


def test_leases_against_a_model(redis_url: str) -> None:
    LeaseModel.url = redis_url
    run_state_machine_as_test(
        LeaseModel,
        settings=settings(
            max_examples=60,
            stateful_step_count=40,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
            database=None,
        ),
    )
