"""The steady load of bench/faults.py: paced producers and lease+ack consumers over HTTP, every call recorded.

Producers add `<name>-<seq>` values, each with the value as its Idempotency-Key, and retry a failed add with
the same key (what a careful client does), so an add executed twice shows up as one value under two keys.
Consumers lease (`GET ?lease=`), then acknowledge (`DELETE`). After the run, `drain` empties the queue and
`Ledger.account` compares what was acknowledged with what was delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import httpx

LEASE = 5  # seconds: short, so that a lease answered with an error comes back within the run


@dataclass(frozen=True)
class Call:
    kind: str  # add, get, ack
    start: float  # time.monotonic()
    end: float
    outcome: str  # an HTTP status ("200", "503"), or "reset", "refused", "timeout"

    @property
    def latency(self) -> float:
        return self.end - self.start


def answered(reply: httpx.Response) -> str:
    """The status; marked when a 503 does not say when to retry, and when the server closed the connection after
    the answer (uvicorn does after an unhandled error)."""
    outcome = str(reply.status_code)
    if reply.status_code == 503 and "retry-after" not in reply.headers:
        outcome += " without Retry-After"
    if reply.headers.get("connection", "").lower() == "close":
        outcome += " closed"
    return outcome


def outcome_of(exc: BaseException) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    if isinstance(exc, httpx.ConnectError):
        return "refused"
    return "reset"  # the connection closed or broke mid-request


@dataclass
class Ledger:
    """Every call, every acknowledged add and every delivery of one run."""

    calls: list[Call] = field(default_factory=list)
    acked: dict[str, str] = field(default_factory=dict)  # value -> key of adds answered 200
    deliveries: list[tuple[str, str, int]] = field(default_factory=list)  # (key, value, count)

    reconnects: list[float] = field(default_factory=list)  # when a client had to open a new connection
    _streams: dict[int, object] = field(default_factory=dict)  # id(client) -> its connection's network stream

    def record(self, kind: str, start: float, outcome: str) -> None:
        self.calls.append(Call(kind, start, time.monotonic(), outcome))

    def answer(self, kind: str, start: float, http: httpx.AsyncClient, reply: httpx.Response) -> None:
        """Record an answer, and notice when it came on a new connection: the server closed the previous one."""
        self.record(kind, start, answered(reply))
        stream = reply.extensions.get("network_stream")
        previous = self._streams.get(id(http))
        if previous is not None and stream is not previous:
            self.reconnects.append(start)
        self._streams[id(http)] = stream

    def reconnections(self, since: float, until: float) -> int:
        return sum(since <= t <= until for t in self.reconnects)

    def statuses(self, since: float, until: float) -> Counter[str]:
        """Answers to calls started in [since, until], by outcome."""
        return Counter(c.outcome for c in self.calls if since <= c.start <= until)

    def rate(self, kind: str, since: float, until: float) -> float:
        """Calls of `kind` answered 200 per second, of those started in [since, until]."""
        ok = sum(c.kind == kind and c.outcome == "200" and since <= c.start <= until for c in self.calls)
        return ok / max(until - since, 1e-9)

    def max_latency(self, since: float, until: float) -> float:
        """The longest call that was under way at some point in [since, until]."""
        return max((c.latency for c in self.calls if c.end >= since and c.start <= until), default=0.0)

    def account(self) -> Accounting:
        keys_of: dict[str, set[str]] = {}
        seen: Counter[tuple[str, int]] = Counter()
        for key, value, count in self.deliveries:
            keys_of.setdefault(value, set()).add(key)
            seen[(key, count)] += 1
        lost = sorted(set(self.acked) - set(keys_of))
        return Accounting(
            acknowledged=len(self.acked),
            delivered=len({key for key, _, _ in self.deliveries}),
            lost=len(lost),
            added_twice=sum(1 for keys in keys_of.values() if len(keys) > 1),
            delivered_twice=sum(n - 1 for n in seen.values()),  # same key and same delivery count: no lease expiry
            redelivered=len(self.deliveries) - len(seen),  # a later delivery count: a lease ran out
            lost_examples=lost[:5],
        )


@dataclass
class Accounting:
    acknowledged: int
    delivered: int
    lost: int
    added_twice: int
    delivered_twice: int
    redelivered: int
    lost_examples: list[str]

    @property
    def duplicated(self) -> int:
        return self.added_twice + self.delivered_twice


def client(timeout: float, connections: int = 1) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(timeout=timeout, limits=limits)


async def producer(
    ledger: Ledger, base: str, queue: str, name: str, interval: float, stop: asyncio.Event, timeout: float
) -> None:
    """Adds one message every `interval` seconds (one at a time; a failed add is retried with its key)."""
    seq = 0
    async with client(timeout) as http:
        while not stop.is_set():
            value = f"{name}-{seq}"
            start = time.monotonic()
            try:
                reply = await http.post(f"{base}/q/{queue}", data={"value": value}, headers={"Idempotency-Key": value})
                ledger.answer("add", start, http, reply)
                if reply.status_code == 200:
                    ledger.acked[value] = reply.text.strip()
                    seq += 1
            except httpx.HTTPError as exc:
                ledger.record("add", start, outcome_of(exc))
            except asyncio.CancelledError:
                ledger.record("add", start, "unanswered")  # still waiting when the run ended
                raise
            await pace(stop, start + interval)


async def consumer(ledger: Ledger, base: str, queue: str, interval: float, stop: asyncio.Event, timeout: float) -> None:
    """Leases a message, then acknowledges it; on an empty queue or an error waits `interval`."""
    async with client(timeout) as http:
        while not stop.is_set():
            start = time.monotonic()
            got = await lease_one(ledger, http, base, queue)
            if got is not None:
                await ack(ledger, http, base, queue, got)
            else:
                await pace(stop, start + interval)


async def lease_one(ledger: Ledger, http: httpx.AsyncClient, base: str, queue: str) -> str | None:
    start = time.monotonic()
    try:
        reply = await http.get(f"{base}/q/{queue}", params={"lease": LEASE})
    except httpx.HTTPError as exc:
        ledger.record("get", start, outcome_of(exc))
        return None
    except asyncio.CancelledError:
        ledger.record("get", start, "unanswered")
        raise
    ledger.answer("get", start, http, reply)
    if reply.status_code != 200:
        return None
    message = reply.json()
    ledger.deliveries.append((message["key"], message["value"], int(message.get("count", 1))))
    return str(message["key"])


async def ack(ledger: Ledger, http: httpx.AsyncClient, base: str, queue: str, key: str) -> None:
    start = time.monotonic()
    try:
        reply = await http.delete(f"{base}/q/{queue}/{key}")
        ledger.answer("ack", start, http, reply)
    except httpx.HTTPError as exc:  # the lease runs out and the message comes back: counted as redelivered
        ledger.record("ack", start, outcome_of(exc))
    except asyncio.CancelledError:
        ledger.record("ack", start, "unanswered")
        raise


async def pace(stop: asyncio.Event, until: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), max(0.0, until - time.monotonic()))


async def drain(ledger: Ledger, base: str, queue: str, timeout: float) -> bool:
    """Lease and acknowledge until the queue holds nothing, leased messages included (they expire within
    LEASE). Returns False when it could not finish within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    async with client(10) as http:
        while time.monotonic() < deadline:
            key = await lease_one(ledger, http, base, queue)
            if key is not None:
                await ack(ledger, http, base, queue, key)
                continue
            with contextlib.suppress(httpx.HTTPError, ValueError):
                stats = (await http.get(f"{base}/stats/{queue}")).json()
                if stats.get("length", 1) == 0 and stats.get("leased", 1) == 0 and stats.get("delayed", 0) == 0:
                    return True
            await asyncio.sleep(0.2)
    return False


@dataclass
class Load:
    """Producers and consumers on one queue, started together and stopped together."""

    bases: list[str]  # servers, used in turn
    queue: str
    producers: int
    consumers: int
    rate: float  # adds per second, all producers together
    timeout: float  # per request
    ledger: Ledger = field(default_factory=Ledger)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def start(self) -> None:
        interval = self.producers / self.rate
        for i in range(self.producers):
            base = self.bases[i % len(self.bases)]
            work = producer(self.ledger, base, self.queue, f"p{i}", interval, self.stop, self.timeout)
            self.tasks.append(asyncio.create_task(work))
        for i in range(self.consumers):
            base = self.bases[i % len(self.bases)]
            work = consumer(self.ledger, base, self.queue, 0.05, self.stop, self.timeout)
            self.tasks.append(asyncio.create_task(work))

    async def finish(self, grace: float) -> None:
        """Stop, give calls under way `grace` seconds to end, then cancel the rest."""
        self.stop.set()
        await cancel_after(self.tasks, grace)


async def cancel_after(tasks: Iterable[asyncio.Task[None]], grace: float) -> None:
    pending = [t for t in tasks if not t.done()]
    if pending:
        _, still = await asyncio.wait(pending, timeout=grace)
        for task in still:
            task.cancel()
        await asyncio.gather(*still, return_exceptions=True)
    for task in tasks:  # a load task that crashed is a harness error
        if task.done() and not task.cancelled() and task.exception() is not None:
            raise RuntimeError(f"a load task failed: {task.exception()!r}") from task.exception()
