"""The queue families of /metrics: per-queue series for a bounded number of queues, and totals over all.

With 20,000 queues a series per queue and family made a 10 MiB scrape that held the event loop for seconds. Now
only the first Limits.metrics_queues queues by name have series of their own (`queue` label); `restmq_queues`
and the `restmq_queues_*` families sum every queue the scrape's token covers. Every queue is still read for the
totals, a page at a time (one pipelined call per node and page), and the text is written here directly: the
generic client library's writer took over 100 ms for 11,000 samples, in one piece.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from restmq.core.model import QueueStats
from restmq.core.service import QueueService
from restmq.web import listings

GAUGES = {
    "length": "Messages ready to deliver",
    "delayed": "Messages waiting for their delay",
    "leased": "Messages leased and not yet acked",
    "dead": "Messages waiting in the dead-letter queue",
    "consumers": "Streaming consumers on all server processes",
}
COUNTERS = {
    "added": "Messages added",
    "delivered": "Deliveries (GET, lease, stream)",
    "acked": "Leases acknowledged",
    "redelivered": "Leases that expired (the message went back to its queue)",
    "expired": "Messages dropped by their ttl",
    "dead_lettered": "Messages moved to the dead-letter queue",
}
TICK = 1.0  # seconds: the scrapes of one process within one tick share one computation


@dataclass
class QueueTotals:
    """Sums over every queue a scrape covers."""

    queues: int = 0
    gauges: dict[str, int] = field(default_factory=lambda: dict.fromkeys(GAUGES, 0))
    counters: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))

    def add(self, stats: QueueStats) -> None:
        self.queues += 1
        gauges, counters = self.gauges, self.counters
        gauges["length"] += stats.length
        gauges["delayed"] += stats.delayed
        gauges["leased"] += stats.leased
        gauges["dead"] += stats.dead
        gauges["consumers"] += stats.consumers
        for name, value in stats.counters.items():
            if name in counters:
                counters[name] += value


async def families(service: QueueService, patterns: tuple[str, ...] | None) -> bytes:
    """The queue families in the Prometheus text format, for the queues these token patterns cover (None: all)."""
    series: list[QueueStats] = []
    totals = QueueTotals()
    async for names in service.every_page(listings.covers_of(patterns)):
        stats = await service.stats(names)
        for one in stats:
            totals.add(one)
        series += stats[: max(0, service.limits.metrics_queues - len(series))]
    return render(series, totals)


def _label(queue: str) -> str:
    # Queue names cannot hold these characters; escaped all the same, so that the text always parses.
    return queue.replace("\\", r"\\").replace('"', r"\"").replace("\n", r"\n")


def render(series: list[QueueStats], totals: QueueTotals) -> bytes:
    """Text format 0.0.4: each family's HELP and TYPE, then its samples."""
    labels = [f'{{queue="{_label(s.queue)}"}} ' for s in series]
    lines: list[str] = []
    for name, text in GAUGES.items():
        lines += [f"# HELP restmq_queue_{name} {text}", f"# TYPE restmq_queue_{name} gauge"]
        lines += [f"restmq_queue_{name}{label}{getattr(s, name)}" for s, label in zip(series, labels, strict=True)]
    for name, text in COUNTERS.items():
        lines += [f"# HELP restmq_queue_{name} {text}", f"# TYPE restmq_queue_{name} counter"]
        lines += [
            f"restmq_queue_{name}_total{label}{s.counters.get(name, 0)}"
            for s, label in zip(series, labels, strict=True)
        ]
    lines += [
        "# HELP restmq_queues Queues listed (those the scrape's token covers)",
        "# TYPE restmq_queues gauge",
        f"restmq_queues {totals.queues}",
    ]
    for name, text in GAUGES.items():
        lines += [f"# HELP restmq_queues_{name} {text}, all queues", f"# TYPE restmq_queues_{name} gauge"]
        lines.append(f"restmq_queues_{name} {totals.gauges[name]}")
    for name, text in COUNTERS.items():
        lines += [f"# HELP restmq_queues_{name} {text}, all queues", f"# TYPE restmq_queues_{name} counter"]
        lines.append(f"restmq_queues_{name}_total {totals.counters[name]}")
    return ("\n".join(lines) + "\n").encode()
