"""`restmq bench`: a load generator. Producers add, consumers take (or lease and ack) at the same time;
it reports publish and consume rates and end-to-end latency percentiles."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from dataclasses import dataclass, field

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from restmq.cli._common import EXIT_CODES_HELP, Failure, RateColumn, client_errors, connection_options, stderr
from restmq.client import AsyncClient, ClientError, Message


@dataclass
class Plan:
    queue: str
    messages: int
    producers: int
    consumers: int
    size: int
    batch: int
    take: int
    lease: float | None
    max_time: float
    rate: float = 0.0  # messages per second over all producers; 0 = as fast as they can


@dataclass
class Result:
    published: int = 0
    consumed: int = 0
    started: float = 0.0
    published_at: float = 0.0
    consumed_at: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        if not ordered:
            return 0.0
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def summary(self, plan: Plan) -> dict[str, object]:
        publish_s = max(self.published_at - self.started, 1e-9)
        consume_s = max(self.consumed_at - self.started, 1e-9)
        return {
            "queue": plan.queue,
            "messages": plan.messages,
            "size": plan.size,
            "producers": plan.producers,
            "consumers": plan.consumers,
            "batch": plan.batch,
            "take": plan.take,
            "lease": plan.lease,
            "rate": plan.rate or None,
            "published": self.published,
            "consumed": self.consumed,
            "publish_seconds": round(publish_s, 3),
            "consume_seconds": round(consume_s, 3),
            "publish_rate": round(self.published / publish_s, 1),
            "consume_rate": round(self.consumed / consume_s, 1),
            "latency_ms": {
                "p50": round(self.percentile(0.50), 3),
                "p90": round(self.percentile(0.90), 3),
                "p99": round(self.percentile(0.99), 3),
                "max": round(max(self.latencies_ms, default=0.0), 3),
            },
            "errors": self.errors,
        }


def _value(size: int) -> str:
    stamp = f"{time.perf_counter_ns()}|"
    return stamp + "x" * max(0, size - len(stamp))


def _split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


async def _produce(
    client: AsyncClient, plan: Plan, share: int, result: Result, progress: Progress, task: TaskID
) -> None:
    remaining = share
    interval = plan.producers * plan.batch / plan.rate if plan.rate else 0.0
    due = time.perf_counter()
    while remaining > 0:
        if interval:
            due += interval
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
        k = min(plan.batch, remaining)
        try:
            if plan.batch == 1:
                await client.add(plan.queue, _value(plan.size))
            else:
                await client.add_batch(plan.queue, [_value(plan.size) for _ in range(k)])
        except ClientError as exc:
            await _tolerate(result, exc)
            continue
        remaining -= k
        result.published += k
        result.published_at = time.perf_counter()
        progress.update(task, completed=result.published)


async def _tolerate(result: Result, error: ClientError) -> None:
    """Count a failed request and back off briefly; past 100 failures, give up with this one."""
    result.errors += 1
    if result.errors > 100:
        raise error
    await asyncio.sleep(0.1)


def _latency(message: Message, now_ns: int) -> float | None:
    stamp, sep, _ = message.value.partition("|")
    if not sep or not stamp.isdigit():
        return None
    return (now_ns - int(stamp)) / 1e6


async def _consume(client: AsyncClient, plan: Plan, result: Result, progress: Progress, task: TaskID) -> None:
    while result.consumed < plan.messages:
        try:
            messages = await client.get(plan.queue, count=plan.take, wait=0.5, lease=plan.lease)
        except ClientError as exc:
            await _tolerate(result, exc)
            continue
        now = time.perf_counter_ns()
        for message in messages:
            latency = _latency(message, now)
            if latency is not None:
                result.latencies_ms.append(latency)
            if plan.lease is not None:
                await client.ack(message)
        if messages:
            result.consumed += len(messages)
            result.consumed_at = time.perf_counter()
            progress.update(task, completed=result.consumed)


async def _run(plan: Plan, url: str, token: str | None, timeout: float, progress: Progress) -> Result:
    result = Result()
    connections = plan.producers + plan.consumers + 4
    async with AsyncClient(url, token=token, timeout=timeout, max_connections=connections) as client:
        await client.health()
        published = progress.add_task("published", total=plan.messages)
        consumed = progress.add_task("consumed", total=plan.messages)
        result.started = time.perf_counter()
        jobs = [
            _produce(client, plan, share, result, progress, published)
            for share in _split(plan.messages, plan.producers)
        ]
        jobs += [_consume(client, plan, result, progress, consumed) for _ in range(plan.consumers)]
        try:
            await asyncio.wait_for(asyncio.gather(*jobs), plan.max_time)
        except TimeoutError:
            raise Failure(
                f"gave up after {plan.max_time:g} s: published {result.published:,}, consumed {result.consumed:,}"
            ) from None
        finally:
            await _cleanup(client, plan.queue)
    return result


async def _cleanup(client: AsyncClient, queue: str) -> None:
    try:
        await client.purge(queue)
    except ClientError:
        pass


def _table(summary: dict[str, object]) -> Table:
    latency = summary["latency_ms"]
    assert isinstance(latency, dict)
    setup = (
        f"{summary['messages']:,} messages of {summary['size']} bytes, {summary['producers']} producers, "
        f"{summary['consumers']} consumers, batch {summary['batch']}, take {summary['take']}"
        + (", lease and ack" if summary["lease"] else "")
        + (f", at most {summary['rate']:g}/s" if summary["rate"] else "")
    )
    table = Table(title="restmq bench", caption=setup, header_style="bold")
    table.add_column("")
    table.add_column("messages", justify="right")
    table.add_column("seconds", justify="right")
    table.add_column("msg/s", justify="right")
    for name in ("publish", "consume"):
        done = summary["published" if name == "publish" else "consumed"]
        table.add_row(name, f"{done:,}", f"{summary[name + '_seconds']}", f"{summary[name + '_rate']:,.0f}")
    table.add_section()
    for name in ("p50", "p90", "p99", "max"):
        table.add_row(f"latency {name}", "", "", f"{latency[name]:,.2f} ms")
    return table


@click.command(epilog=EXIT_CODES_HELP)
@click.option(
    "-n", "--messages", type=click.IntRange(min=1), default=10_000, show_default=True, help="Messages to send."
)
@click.option(
    "-p", "--producers", type=click.IntRange(1, 256), default=4, show_default=True, help="Concurrent producers."
)
@click.option(
    "-c", "--consumers", type=click.IntRange(1, 256), default=4, show_default=True, help="Concurrent consumers."
)
@click.option("--size", type=click.IntRange(min=1), default=100, show_default=True, help="Bytes per message.")
@click.option(
    "--batch", type=click.IntRange(1, 10_000), default=1, show_default=True, help="Messages per add (1 = single adds)."
)
@click.option("--take", type=click.IntRange(1, 1000), default=1, show_default=True, help="Messages per GET.")
@click.option("--lease", type=click.FloatRange(min=0, min_open=True), help="Consumers lease and ack instead of taking.")
@click.option(
    "--rate",
    type=click.FloatRange(min=0),
    default=0.0,
    help="Publish at most this many messages/s in total (default: as fast as possible). Latency is most "
    "telling below the saturation rate.",
)
@click.option("--queue", help="Queue to use (default: a new bench-<random> queue). It is purged at the end.")
@click.option(
    "--max-time", type=click.FloatRange(min=1), default=300.0, show_default=True, help="Give up after seconds."
)
@click.option("--json", "as_json", is_flag=True, help="Print the results as one JSON object instead of a table.")
@connection_options
@client_errors
def bench(
    messages: int,
    producers: int,
    consumers: int,
    size: int,
    batch: int,
    take: int,
    lease: float | None,
    rate: float,
    queue: str | None,
    max_time: float,
    as_json: bool,
    url: str,
    token: str | None,
    timeout: float,
) -> None:
    """Measure a RestMQ server: publish and consume rates and end-to-end latency.

    Producers and consumers run at the same time against one queue; each message carries the time
    it was sent, so latency is from just before the add to its receipt by a consumer. Live progress
    goes to stderr, the final table (or --json) to stdout. Run it against a server you own: it is
    a load generator.

    \b
    restmq bench                                10,000 single adds, 4 producers, 4 consumers
    restmq bench -n 100000 --batch 100 --take 100
    restmq bench --lease 30 --json
    restmq bench -n 5000 --rate 500             latency at a steady 500 messages/s
    """
    plan = Plan(
        queue or f"bench-{secrets.token_hex(4)}",
        messages,
        producers,
        consumers,
        size,
        batch,
        take,
        lease,
        max_time,
        rate,
    )
    progress = Progress(
        TextColumn("{task.description:>10}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TimeElapsedColumn(),
        console=stderr,
        disable=as_json,
    )
    try:
        with progress:
            result = asyncio.run(_run(plan, url, token, timeout, progress))
    except KeyboardInterrupt:
        raise Failure("interrupted") from None
    summary = result.summary(plan)
    if as_json:
        click.echo(json.dumps(summary))
    else:
        Console(highlight=False).print(_table(summary))
