"""`restmq add`: one message, or many from a file or stdin in batches with a progress bar."""

from __future__ import annotations

import itertools
import json
import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import IO

import click
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from restmq.cli._common import (
    EXIT_CODES_HELP,
    Failure,
    Nothing,
    client_errors,
    connection_options,
    failure,
    make_client,
    rate,
    stderr,
)
from restmq.client import Client, ClientError
from restmq.core.names import MAX_PRIORITY

STDIN = "-"


def _count_lines(path: str) -> int:
    lines, last = 0, b"\n"
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    return lines + (last != b"\n")


def _lines(handle: Iterable[str]) -> Iterator[tuple[int, str | None]]:
    """(lines consumed, value or None for a blank line), one per input line."""
    for line in handle:
        value = line.rstrip("\r\n")
        yield 1, value if value.strip() else None


def _json_array(text: str, source: str) -> list[object] | None:
    """The elements when `text` is a JSON array, else None (then it is read as lines)."""
    if not text.lstrip().startswith("["):
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, list):
        raise Failure(f"{source}: a JSON file must hold an array of messages")
    return data


def _open_input(source: str) -> IO[str]:
    if source == STDIN:
        return open(sys.stdin.fileno(), encoding="utf-8", errors="strict", closefd=False)
    try:
        return open(source, encoding="utf-8", errors="strict")
    except OSError as exc:
        raise Failure(f"cannot read {source}: {exc.strerror or exc}") from exc


@click.command(epilog=EXIT_CODES_HELP)
@click.argument("queue")
@click.argument("value", required=False)
@click.option(
    "-f",
    "--file",
    "source",
    metavar="FILE",
    help="Add one message per line of FILE ('-' for stdin), or each element of a JSON array file.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["auto", "lines", "json"]),
    default="auto",
    show_default=True,
    help="How to read --file: auto reads a file that is one JSON array as its elements, anything else as lines.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(1, 10_000),
    default=1000,
    show_default=True,
    help="Messages per request when adding from a file (each batch is all or nothing).",
)
@click.option("--delay", type=click.FloatRange(min=0), help="Seconds each message stays invisible.")
@click.option("--ttl", type=click.FloatRange(min=0), help="Seconds a message may wait before it is dropped.")
@click.option("--priority", type=click.IntRange(0, MAX_PRIORITY), help=f"0-{MAX_PRIORITY}, higher first.")
@click.option(
    "--group", help="Message group: delivered in the order added, one in flight at a time (no --priority/--delay)."
)
@click.option(
    "--idempotency-key",
    help="Retry-safe add: the same key within 5 minutes adds nothing again (batch i of a file uses KEY-i).",
)
@click.option("--keys", "print_keys", is_flag=True, help="Print every new key when adding from a file.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar or summary.")
@connection_options
@client_errors
def add(
    queue: str,
    value: str | None,
    source: str | None,
    fmt: str,
    batch_size: int,
    delay: float | None,
    ttl: float | None,
    priority: int | None,
    group: str | None,
    idempotency_key: str | None,
    print_keys: bool,
    quiet: bool,
    url: str,
    token: str | None,
    timeout: float,
) -> None:
    """Add messages to QUEUE.

    \b
    restmq add jobs 'hello'                 one message; prints its key
    echo hi | restmq add jobs -             one message per line of stdin
    restmq add jobs --file lines.txt        one message per line, in batches, with progress
    restmq add jobs --file items.json       each element of a JSON array (non-strings as JSON text)

    Blank lines are skipped. Adding from a file prints a summary (count, time, rate) on stderr;
    order is kept. If a batch fails, the messages before it stay added and the error says how many.

    """
    if value is not None and source is not None:
        raise click.UsageError("give VALUE or --file, not both")
    if value == STDIN:
        source, value = STDIN, None
    if source is None and value is None:
        raise click.UsageError("give a VALUE, '-' for stdin, or --file FILE")
    options = {"delay": delay, "ttl": ttl, "priority": priority, "group": group}
    with make_client(url, token, timeout) as client:
        if value is not None:
            click.echo(client.add(queue, value, idempotency_key=idempotency_key, **options))  # type: ignore[arg-type]
            return
        assert source is not None
        _bulk(client, queue, source, fmt, batch_size, idempotency_key, print_keys, quiet, options)


def _bulk(
    client: Client,
    queue: str,
    source: str,
    fmt: str,
    batch_size: int,
    idempotency_key: str | None,
    print_keys: bool,
    quiet: bool,
    options: dict[str, float | int | str | None],
) -> None:
    name = "stdin" if source == STDIN else source
    total: int | None = None
    items: Iterator[tuple[int, object | None]]
    handle = _open_input(source)
    try:
        try:
            first = handle.readline() if fmt != "lines" else ""
            if fmt == "json" or first.lstrip().startswith("["):
                text = first + handle.read()
                array = _json_array(text, name)
                if array is None and fmt == "json":
                    raise Failure(f"{name} is not a JSON array")
                if array is not None:
                    total = len(array)
                    items = ((1, item) for item in array)
                else:
                    lines = text.splitlines()
                    total = len(lines)
                    items = ((1, line if line.strip() else None) for line in lines)
            else:
                if source != STDIN and os.path.isfile(source):
                    total = _count_lines(source)
                items = _lines(itertools.chain([first] if first else [], handle))
            added = _send(client, queue, items, total, name, batch_size, idempotency_key, print_keys, quiet, options)
        except UnicodeDecodeError as exc:
            raise Failure(f"{name} is not UTF-8 text: {exc.reason} at byte {exc.start}") from exc
    finally:
        handle.close()
    if added == 0:
        raise Nothing(f"{name} holds no messages: nothing added")


def _send(
    client: Client,
    queue: str,
    items: Iterator[tuple[int, object | None]],
    total: int | None,
    name: str,
    batch_size: int,
    idempotency_key: str | None,
    print_keys: bool,
    quiet: bool,
    options: dict[str, float | int | str | None],
) -> int:
    progress = _progress_bar(quiet)
    added = batches = consumed = 0
    started = time.perf_counter()
    task = progress.add_task(f"{name} → {queue}", total=total, rate="")
    batch: list[object] = []

    def flush() -> None:
        nonlocal added, batches
        key = f"{idempotency_key}-{batches}" if idempotency_key else None
        try:
            keys = client.add_batch(queue, batch, idempotency_key=key, **options)  # type: ignore[arg-type]
        except ClientError as exc:
            progress.stop()
            raise failure(exc, f"; {added:,} messages were added before this batch, the rest were not") from exc
        if not batches:
            progress.start()  # shown from the first stored batch: a failure or empty input is one line
        added += len(keys)
        batches += 1
        if print_keys:
            for new in keys:
                click.echo(new)
        batch.clear()
        progress.update(task, completed=consumed, rate=rate(added, time.perf_counter() - started))

    try:
        for lines, item in items:
            consumed += lines
            if item is not None:
                batch.append(item)
            if len(batch) >= batch_size:
                flush()
        if batch:
            flush()
        progress.update(task, completed=consumed, total=total if total is not None else consumed)
    finally:
        progress.stop()
    if not quiet and added:
        _summary(queue, added, batches, time.perf_counter() - started)
    return added


def _progress_bar(quiet: bool) -> Progress:
    return Progress(
        TextColumn("[bold]add[/] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=stderr,
        disable=quiet,
    )


def _summary(queue: str, added: int, batches: int, elapsed: float) -> None:
    batched = f"{batches:,} batch" + ("es" if batches != 1 else "")
    noun = "message" if added == 1 else "messages"
    stderr.print(f"added {added:,} {noun} to {queue} in {elapsed:.2f} s ({rate(added, elapsed)}, {batched})")
