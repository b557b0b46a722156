"""The SQS API through boto3 against the same work through the native API, round by round in one run.

Starts an embedded engine and one `restmq serve` worker, then alternates, for `--rounds` rounds:

- send: `--threads` threads each send batches of 10 messages for `--duration` seconds, through boto3's
  SendMessageBatch and through the Python client's `add_batch` (POST /q/<queue> with a JSON batch);
- receive: the queue is filled, then the threads receive up to 10 messages and settle them, through boto3's
  ReceiveMessage + DeleteMessageBatch and through the client's `lease(count=10, ack=...)` (the previous
  batch's acks ride on the next lease: one request a batch, as SQS needs two).

It prints messages/s and the server's and the engine's CPU per message of each round, the medians and the
ratios SQS / native. Both sides are Python clients on the same machine, so the client's own CPU counts against
both alike (`others` shows how busy the machine was).

    .venv/bin/python bench/sqs.py [--rounds 3] [--duration 5] [--threads 4]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from common import command_line, cpu_seconds, machine, restmq_serve, start_server

from restmq.client import Client, Message
from restmq.storage.engine import EmbeddedEngine

BODY = "x" * 100
BATCH = 10
Worker = Callable[[threading.Event], int]  # runs until the event is set; returns messages done


def sqs_client(base: str) -> Any:
    config = Config(retries={"max_attempts": 1}, max_pool_connections=64)
    return boto3.client(
        "sqs", endpoint_url=base, region_name="us-east-1", aws_access_key_id="bench",
        aws_secret_access_key="bench", config=config,
    )  # fmt: skip


def sqs_sender(sqs: Any, url: str) -> Worker:
    entries = [{"Id": str(i), "MessageBody": BODY} for i in range(BATCH)]

    def run(stop: threading.Event) -> int:
        done = 0
        while not stop.is_set():
            sqs.send_message_batch(QueueUrl=url, Entries=entries)
            done += BATCH
        return done

    return run


def native_sender(base: str, queue: str) -> Worker:
    def run(stop: threading.Event) -> int:
        done = 0
        with Client(base) as client:
            while not stop.is_set():
                client.add_batch(queue, [BODY] * BATCH)
                done += BATCH
        return done

    return run


def sqs_receiver(sqs: Any, url: str) -> Worker:
    def run(stop: threading.Event) -> int:
        done = 0
        while not stop.is_set():
            got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=BATCH).get("Messages", [])
            if not got:
                break
            entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)]
            sqs.delete_message_batch(QueueUrl=url, Entries=entries)
            done += len(got)
        return done

    return run


def native_receiver(base: str, queue: str) -> Worker:
    def run(stop: threading.Event) -> int:
        done, held = 0, list[Message]()
        with Client(base) as client:
            while not stop.is_set():
                held = client.lease(queue, 30, count=BATCH, ack=held)
                if not held:
                    break
                done += len(held)
            if held:
                client.lease(queue, 30, count=1, ack=held)  # the last batch's acks
        return done

    return run


def measure(worker: Worker, threads: int, duration: float, pids: tuple[int, int]) -> tuple[float, float, float]:
    """(messages/s, server µs per message, engine µs per message) of `threads` copies of `worker`."""
    stop, counts = threading.Event(), [0] * threads

    def one(index: int) -> None:
        counts[index] = worker(stop)

    before = [cpu_seconds(pid) for pid in pids]
    started = time.perf_counter()
    pool = [threading.Thread(target=one, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    timer = threading.Timer(duration, stop.set)
    timer.start()
    for thread in pool:
        thread.join()
    timer.cancel()
    elapsed = time.perf_counter() - started
    total = max(1, sum(counts))
    server, engine = (cpu_seconds(pid) - was for pid, was in zip(pids, before, strict=True))
    return total / elapsed, server / total * 1e6, engine / total * 1e6


def fill(base: str, queue: str, count: int) -> None:
    with Client(base) as client:
        for _ in range(0, count, 1000):
            client.add_batch(queue, [BODY] * 1000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--fill", type=int, default=20_000, help="messages in the queue before a receive round")
    options = parser.parse_args()
    rows: dict[str, list[tuple[float, float, float]]] = {}
    with contextlib.ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        engine = EmbeddedEngine(Path(tmp) / "engine")
        stack.callback(engine.stop)
        url = engine.start()
        assert engine.pid is not None
        server = start_server(stack, "restmq", restmq_serve(url), Path(tmp), "/ready", engine.pid)
        stack.callback(server.stop)
        base, pids = server.url(""), (server.proc.pid, engine.pid)
        sqs = sqs_client(base)
        queue_url = sqs.create_queue(QueueName="bench")["QueueUrl"]
        cases: dict[str, tuple[Worker, bool]] = {
            "send sqs": (sqs_sender(sqs, queue_url), False),
            "send native": (native_sender(base, "bench"), False),
            "receive sqs": (sqs_receiver(sqs, queue_url), True),
            "receive native": (native_receiver(base, "bench"), True),
        }
        for number in range(1, options.rounds + 1):
            for name, (worker, needs_messages) in cases.items():
                Client(base).purge("bench")
                if needs_messages:
                    fill(base, "bench", options.fill)
                row = measure(worker, options.threads, options.duration, pids)
                rows.setdefault(name, []).append(row)
                print(
                    f"{name:15} round {number} {row[0]:8.0f} msg/s  CPU {row[1]:5.0f} + {row[2]:5.0f} µs/msg",
                    flush=True,
                )
    report(rows, options)


def report(rows: dict[str, list[tuple[float, float, float]]], options: argparse.Namespace) -> None:
    medians = {name: [statistics.median(row[i] for row in got) for i in range(3)] for name, got in rows.items()}
    print(f"\ncommand: {command_line('bench/sqs.py')}")
    for key, value in machine().items():
        print(f"{key}: {value}")
    print("\n| work | msg/s | server µs/msg | engine µs/msg |\n|---|--:|--:|--:|")
    for name, (rate, server_us, engine_us) in medians.items():
        print(f"| {name} | {rate:.0f} | {server_us:.0f} | {engine_us:.1f} |")
    for kind in ("send", "receive"):
        mine, native = rows[f"{kind} sqs"], rows[f"{kind} native"]
        ratio = statistics.median(a[0] / b[0] for a, b in zip(mine, native, strict=True))
        print(f"{kind}: SQS / native msg/s {ratio:.2f}x (median of {len(mine)} rounds, {options.threads} threads)")


if __name__ == "__main__":
    main()
