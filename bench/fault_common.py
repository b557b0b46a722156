"""What the scenarios of bench/faults.py share: their settings, their result row, the recovery probe."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
from fault_load import Accounting, Load
from fault_procs import Serve

from restmq.storage.engine import EmbeddedEngine

PROBE_INTERVAL = 0.05


@dataclass
class Context:
    """One run's settings and the ExitStack that owns every process and mount it starts."""

    stack: contextlib.ExitStack
    tmp: Path
    serve: Serve
    quick: bool
    limit: float  # seconds a scenario waits for service to come back before it reports "not back"
    warmup: float  # seconds of steady load before a fault
    after: float  # seconds of load after service is back
    freeze: float  # seconds the engine stays SIGSTOPped
    disk_full: float  # seconds the disk stays full
    rate: float  # adds per second
    producers: int
    consumers: int
    repeats: int  # node restarts

    def load(self, bases: list[str], queue: str, timeout: float = 30.0) -> Load:
        return Load(bases, queue, self.producers, self.consumers, self.rate, timeout)


@dataclass
class Row:
    scenario: str
    fault: str
    answers: str  # the server's answers during the fault, by status
    worst: str  # the longest request, or the longest delivery delay
    recovery: str
    lost: str
    duplicated: str
    notes: str = ""


def start_engine(ctx: Context, name: str) -> EmbeddedEngine:
    """An embedded engine of the harness's own, in `ctx.tmp / name`. Started from this main thread: the engine is
    told to die with the thread that forked it."""
    engine = EmbeddedEngine(ctx.tmp / name)
    ctx.stack.callback(engine.stop)
    engine.start()
    return engine


async def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `predicate` every 50 ms; TimeoutError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(0.05)


async def recovery(base: str, since: float, limit: float) -> float | None:
    """Seconds from `since` until /ready answers 200 and an add succeeds (fresh probes every 50 ms), or None
    when that did not happen within `limit` seconds."""
    async with httpx.AsyncClient(timeout=2) as http:
        while time.monotonic() - since < limit:
            start = time.monotonic()
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get(f"{base}/ready")).status_code == 200:
                    added = await http.post(f"{base}/q/faults-probe", data={"value": "probe"})
                    if added.status_code == 200:
                        return time.monotonic() - since
            await asyncio.sleep(max(0.0, start + PROBE_INTERVAL - time.monotonic()))
    return None


def statuses(counts: Counter[str]) -> str:
    if not counts:
        return "none"
    return ", ".join(f"{outcome} ×{n}" for outcome, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def seconds(value: float | None, limit: float, what: str = "") -> str:
    if value is None:
        return f"**not back within {limit:g} s**"
    return f"{value:.2f} s{what}"


def lost_text(acc: Accounting, drained: bool) -> str:
    text = f"{acc.lost} of {acc.acknowledged}"
    if acc.lost_examples:
        text += f" (e.g. {', '.join(acc.lost_examples[:3])})"
    return text if drained else text + " (queue not fully drained)"


def duplicated_text(acc: Accounting) -> str:
    parts = [f"{acc.duplicated}"]
    if acc.added_twice:
        parts.append(f"{acc.added_twice} added twice")
    if acc.delivered_twice:
        parts.append(f"{acc.delivered_twice} delivered twice")
    text = parts[0] + (f" ({', '.join(parts[1:])})" if len(parts) > 1 else "")
    if acc.redelivered:
        text += f"; {acc.redelivered} redelivered after a lease ran out"
    return text
