"""The `--syslog-port` listener in this process (restmq/ingest/listener.py), started and stopped by the app's
lifespan, and its counters as /metrics families."""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from restmq.config import Settings
from restmq.core.service import QueueService
from restmq.ingest.listener import SyslogConfig, SyslogListener
from restmq.web.addresses import parse_networks
from restmq.web.shutdown import ShutdownHooks


async def start_syslog(settings: Settings, service: QueueService, shutdown: ShutdownHooks) -> SyslogListener | None:
    """This process's listener, when --syslog-port is set; it stops listening as soon as the server is told to
    stop (and is closed, what it read queued, by the lifespan)."""
    if not settings.syslog_port:
        return None
    config = SyslogConfig(
        host=settings.syslog_host,
        port=settings.syslog_port,
        queue_prefix=settings.syslog_queue_prefix,
        max_line=settings.syslog_max_line,
        max_connections=settings.syslog_max_connections,
        max_batch=min(1000, settings.limits.max_batch),
        max_value=settings.limits.max_value,
        allow=parse_networks(settings.syslog_allow),
    )

    async def add(queue: str, values: Sequence[str]) -> None:
        await service.add(queue, values)

    listener = SyslogListener(config, add)
    await listener.start()
    shutdown.add(listener.stop_listening)
    return listener


def syslog_families(listener: SyslogListener | None) -> list[object]:
    """restmq_syslog_* for this process (nothing without --syslog-port)."""
    if listener is None:
        return []
    messages = CounterMetricFamily(
        "restmq_syslog_messages", "Syslog messages this process read, by outcome", labels=["outcome"]
    )
    for outcome, count in sorted(listener.counts.items()):
        messages.add_metric([outcome], count)
    refused = CounterMetricFamily(
        "restmq_syslog_connections_refused",
        "Syslog TCP connections this process refused: over --syslog-max-connections, or not in --syslog-allow",
        labels=["reason"],
    )
    for reason, count in sorted(listener.refused_connections.items()):
        refused.add_metric([reason], count)
    open_now = GaugeMetricFamily(
        "restmq_syslog_connections", "Syslog TCP connections open on this process", value=listener.connections
    )
    return [messages, refused, open_now]
