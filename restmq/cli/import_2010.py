"""`restmq import-2010 --from redis://old-host`: copy the queues a RestMQ 2010 server left in its Redis
(waiting messages in order, status and policy) into this server's storage, through the queue service, so
that it works on every backend mode `restmq serve` takes (docs/import-2010.md).

A second run adds nothing twice: each message goes in with the idempotency key `restmq-2010:<n>` (n its
2010 number), remembered by the backend for --remember.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from restmq.cli._common import EXIT_CODES_HELP, ConnectFailure, Failure, Nothing, RateColumn, stderr
from restmq.cli.backend import backend_options, parse_duration, run_on_backend
from restmq.config import Limits
from restmq.core.names import check_queue_name
from restmq.core.service import AddOptions, QueueService
from restmq.core.store import Store
from restmq.errors import BackendUnavailable, InvalidQueueName, RestMQError
from restmq.storage.legacy2010 import Legacy2010Source, LegacyMessage, LegacyQueue, SourceError, SourceUnreachable

IDEMPOTENCY_PREFIX = "restmq-2010:"
SOURCE_SCHEMES = ("redis://", "rediss://", "unix://")
# Queues copied side by side; within a queue, messages go one at a time (each with its own idempotency key),
# so that they keep their order.
QUEUES_AT_ONCE = 4
MAX_REFUSALS_SHOWN = 5  # per queue: the first reasons, then a count


@dataclass
class Outcome:
    """What became of one 2010 queue."""

    queue: LegacyQueue
    added: int = 0
    already: int = 0  # imported by an earlier run (its idempotency key was known)
    gone: int = 0  # listed, but its value was deleted or had expired
    refused: list[str] = field(default_factory=list)  # "<2010 key>: why"
    skipped: str | None = None  # why the whole queue was left alone


@click.command("import-2010", epilog=EXIT_CODES_HELP)
@click.option(
    "--from",
    "source",
    required=True,
    metavar="URL",
    help="The Redis RestMQ 2010 used, e.g. redis://old-host:6379/0 (the path is its --redis-db).",
)
@click.option("--queue", "only", multiple=True, metavar="NAME", help="Import only this 2010 queue (repeatable).")
@click.option("--dry-run", is_flag=True, help="List what would be imported and change nothing.")
@click.option(
    "--remember",
    default="30d",
    show_default=True,
    help="How long the backend remembers what was imported, so that a run within it adds nothing twice.",
)
@backend_options
def import_2010(source: str, only: tuple[str, ...], dry_run: bool, remember: str, **backend: object) -> None:
    """Copy every queue of a RestMQ 2010 Redis, with its waiting messages in order, its status (start/stop)
    and policy (broadcast/roundrobin), into this server's storage (chosen as `restmq serve` chooses it).

    The 2010 Redis is only read. Safe to run again: messages imported before are not added twice.

    \b
    restmq import-2010 --from redis://old-host:6379/0 --dry-run
    restmq import-2010 --from redis://old-host:6379/0 --redis redis://new-host:6379
    """
    if not source.startswith(SOURCE_SCHEMES):
        raise click.BadParameter(f"use a {', '.join(SOURCE_SCHEMES)} URL", param_hint="--from")
    window = parse_duration(remember, "--remember")
    if window <= 0:
        raise click.BadParameter(
            "must be more than 0: it is how long a second run knows the first", param_hint="--remember"
        )
    if dry_run:
        queues = _run_source(source, only)
        Console(highlight=False).print(_plan_table(queues))
        return
    outcomes = run_on_backend(backend, lambda store: _import(store, source, only, window))
    Console(highlight=False).print(_outcome_table(outcomes))
    for outcome in outcomes:
        _report_refusals(outcome)
    if any(outcome.refused or outcome.skipped for outcome in outcomes):
        raise Failure("some messages were not imported (above)")


def _run_source(source: str, only: Sequence[str]) -> list[LegacyQueue]:
    async def read() -> list[LegacyQueue]:
        reader = Legacy2010Source(source)
        try:
            return await _selected(reader, only)
        finally:
            await reader.close()

    try:
        return asyncio.run(read())
    except SourceError as exc:
        raise _failure(exc) from None


def _failure(exc: SourceError) -> Failure:
    return ConnectFailure(str(exc)) if isinstance(exc, SourceUnreachable) else Failure(str(exc))


async def _selected(reader: Legacy2010Source, only: Sequence[str]) -> list[LegacyQueue]:
    queues = await reader.queues()
    if only:
        missing = sorted(set(only) - {queue.name for queue in queues})
        if missing:
            raise SourceError(f"no 2010 queue {', '.join(missing)} in {reader.shown}")
        queues = [queue for queue in queues if queue.name in only]
    if not queues:
        raise Nothing(f"{reader.shown} holds no 2010 queue: nothing to import")
    return queues


async def _import(store: Store, source: str, only: Sequence[str], window: int) -> list[Outcome]:
    reader = Legacy2010Source(source)
    service = QueueService(store, Limits(idempotency_window=float(window)))
    try:
        queues = await _selected(reader, only)
        with _progress() as progress:
            task = progress.add_task("importing", total=sum(queue.length for queue in queues))
            slots = asyncio.Semaphore(QUEUES_AT_ONCE)

            async def copy(queue: LegacyQueue) -> Outcome:
                async with slots:
                    return await _copy(service, reader, queue, lambda n: progress.advance(task, n))

            return list(await asyncio.gather(*(copy(queue) for queue in queues)))
    except SourceError as exc:
        raise _failure(exc) from None
    finally:
        await reader.close()


async def _copy(
    service: QueueService, reader: Legacy2010Source, queue: LegacyQueue, advance: Callable[[int], None]
) -> Outcome:
    """One queue: its settings first (a stopped queue delivers nothing of what arrives), then its messages."""
    outcome = Outcome(queue)
    try:
        check_queue_name(queue.name)
    except InvalidQueueName as exc:
        outcome.skipped = exc.message
        advance(queue.length)
        return outcome
    if queue.status is not None:
        await service.set_control(queue.name, status=queue.status)
    if queue.policy is not None:
        await service.set_policy(queue.name, queue.policy)
    async for batch in reader.messages(queue.name):
        for message in batch:
            await _add(service, queue.name, message, outcome)
        advance(len(batch))
    return outcome


async def _add(service: QueueService, queue: str, message: LegacyMessage, outcome: Outcome) -> None:
    if message.binary:
        outcome.refused.append(f"{message.key}: its value is not UTF-8 text")
        return
    if message.value is None:
        outcome.gone += 1
        return
    if message.number is None:
        outcome.refused.append(f"{message.key}: not a message key of {queue} (<queue>:<number>)")
        return
    options = AddOptions(ttl=message.ttl_ms / 1000, idempotency_key=f"{IDEMPOTENCY_PREFIX}{message.number}")
    try:
        result = await service.add(queue, [message.value], options)
    except BackendUnavailable:
        raise
    except RestMQError as exc:
        outcome.refused.append(f"{message.key}: {exc.message}")
        return
    if result.duplicate:
        outcome.already += 1
    else:
        outcome.added += 1


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TimeElapsedColumn(),
        console=stderr,
        transient=False,
    )


def _settings(queue: LegacyQueue) -> tuple[str, str]:
    return queue.status or "start (unset)", queue.policy or "broadcast (unset)"


def _plan_table(queues: Sequence[LegacyQueue]) -> Table:
    table = Table("queue", "waiting", "status", "policy", "notes", title="would import (--dry-run: nothing changed)")
    for queue in queues:
        try:
            check_queue_name(queue.name)
            note = "; ".join(queue.odd)
        except InvalidQueueName as exc:
            note = f"skipped: {exc.message}"
        table.add_row(queue.name, str(queue.length), *_settings(queue), note)
    return table


def _outcome_table(outcomes: Sequence[Outcome]) -> Table:
    table = Table("queue", "added", "already there", "gone", "refused", "status", "policy", "notes", title="imported")
    for outcome in outcomes:
        queue = outcome.queue
        note = f"skipped: {outcome.skipped}" if outcome.skipped else "; ".join(queue.odd)
        counts = (outcome.added, outcome.already, outcome.gone, len(outcome.refused))
        table.add_row(queue.name, *(str(n) for n in counts), *_settings(queue), note)
    return table


def _report_refusals(outcome: Outcome) -> None:
    for reason in outcome.refused[:MAX_REFUSALS_SHOWN]:
        stderr.print(f"restmq: not imported: {reason}")
    more = len(outcome.refused) - MAX_REFUSALS_SHOWN
    if more > 0:
        stderr.print(f"restmq: ... and {more} more of {outcome.queue.name}")
