"""Instructions the engine executes per message operation, counted by callgrind (a figure the load does not move).

Starts the embedded engine's `valkey-server` (AOF everysec) under `valgrind --tool=callgrind` and, for the scripts of
each revision given (`work`: the working tree), sends single adds, takes, adds of 100 messages (50 calls per
pipeline), adds of 100 as the working tree's plain batch path writes them (plain100: MULTI/EXEC, plain_add.py)
and lease + ack cycles (one round trip each) with the keys and arguments the storage layer sends on a
first attempt, 100-byte values, each case on a fresh queue. Prints thousands of instructions per operation (all
engine threads, the AOF's included; not the expiry of the operation records 30 s later).

    .venv/bin/python bench/script_instructions.py [--calls N] [REV ...]   # default: work
"""

from __future__ import annotations

import argparse
import glob
import os
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import redis
from script_cost import WORK, code, operation

from restmq.storage import keys, plain_add
from restmq.storage.engine import find_engine_binary

VALUE = "x" * 100


class Engine:
    """valkey-server under callgrind, with a way to read the instructions it ran since the last reading."""

    def __init__(self, tmp: Path) -> None:
        self.out = tmp / "callgrind"
        socket = str(tmp / "engine.sock")
        engine = [find_engine_binary(), "--port", "0", "--unixsocket", socket, "--dir", str(tmp), "--save", ""]
        engine += ["--appendonly", "yes", "--appendfsync", "everysec"]
        tool = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={self.out}.%p"]
        self.proc = subprocess.Popen([*tool, *engine], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.client = redis.Redis(unix_socket_path=socket, decode_responses=True)
        for _ in range(600):
            try:
                self.client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.1)

    def instructions(self) -> int:
        before = set(glob.glob(f"{self.out}.*"))
        subprocess.run(["callgrind_control", "-d", "bench", str(self.proc.pid)], check=True, capture_output=True)
        for _ in range(400):
            for path in set(glob.glob(f"{self.out}.*")) - before:
                time.sleep(0.1)  # let callgrind finish writing it
                totals = [line for line in Path(path).read_text().splitlines() if line.startswith("totals:")]
                os.unlink(path)
                return int(totals[0].split()[1])
            time.sleep(0.05)
        raise RuntimeError("callgrind wrote no dump")

    def send(self, calls: Sequence[list[Any]]) -> None:
        for i in range(0, len(calls), 50):
            pipe = self.client.pipeline(transaction=False)
            for call in calls[i : i + 50]:
                pipe.execute_command(*call)
            pipe.execute()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait()


class Calls:
    """Calls of one revision's scripts (FCALL or EVALSHA) on one queue, each with a new operation id (a first
    attempt)."""

    def __init__(self, engine: Engine, revision: str, queue: str) -> None:
        self.head = code(revision).load(engine.client)
        self.text = code(revision).text
        self.queue, self.dead = queue, keys.dead_letter_queue(queue)
        self.qk = keys.queue_keys(queue)
        # what the storage layer sends for a queue without max_deliveries: revisions that answer 'dead_keys' without
        # them take the dead-letter queue's keys only when they need them
        self.dead_keys = () if "'dead_keys'" in self.text else keys.queue_keys(self.dead).message_keys
        self.ids = 0
        self.client = engine.client

    def _call(self, script: str, script_keys: Sequence[str], *args: Any) -> list[Any]:
        self.ids += 1
        op_keys, op_args = operation(self.text, self.qk, f"bench{self.ids:x}")
        script_keys = [*script_keys, *op_keys]
        return [*self.head[script], len(script_keys), *script_keys, *args, *op_args]

    def add(self, count: int = 1) -> list[Any]:
        no_attributes = ("0",) if "with_attrs" in self.text else ()  # revisions whose add.lua takes attributes
        return self._call("add", [*self.qk.message_keys, self.qk.meta], self.queue, self.qk.channel, 0, 0, 0, 0, 0,
                          *no_attributes, *[VALUE] * count)  # fmt: skip

    def plain_add(self, count: int) -> None:
        """A batch as the storage layer writes a plain one (plain_add.py): two transactions, two round trips."""
        self.ids += 1
        reserved = self._transaction(plain_add.reserve_commands(self.qk, count, 0))
        first, order = int(reserved[2]) - count + 1, int(reserved[3]) - count
        operation = (self.qk.operations(int(time.time()) // 30), f"bench{self.ids:x}")
        self._transaction(plain_add.write_commands(self.qk, [VALUE] * count, first, order, operation))

    def _transaction(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        pipe = self.client.pipeline(transaction=True)
        for command in commands:
            pipe.execute_command(*command)
        return pipe.execute()

    def pop(self, mode: str, lease_ms: int = 0) -> list[Any]:
        return self._call("pop", [*self.qk.message_keys, *self.dead_keys], self.queue, self.dead, mode, 1, lease_ms)

    def ack(self, n: int, count: int) -> list[Any]:
        script_keys = [*self.qk.message_keys, *self.dead_keys]
        return self._call("settle", script_keys, self.queue, self.dead, self.qk.channel, "ack", n, count, 0)


def measure(engine: Engine, revision: str, calls: int) -> dict[str, float]:
    """Thousands of instructions per operation for one revision's scripts."""
    found: dict[str, float] = {}

    def count(case: str, per: int, run: Callable[[], None]) -> None:
        engine.instructions()
        run()
        found[case] = engine.instructions() / per / 1000

    single, batch, cycles = (Calls(engine, revision, f"{case}-{revision}") for case in ("single", "batch", "cycle"))
    count("add", calls, lambda: engine.send([single.add() for _ in range(calls)]))
    count("take", calls, lambda: engine.send([single.pop("take") for _ in range(calls)]))
    count("add100/msg", calls // 10 * 100, lambda: engine.send([batch.add(100) for _ in range(calls // 10)]))
    plain = Calls(engine, revision, f"plain-{revision}")

    def plain_batches() -> None:  # the working tree's MULTI/EXEC path, whatever the revision's scripts
        for _ in range(calls // 10):
            plain.plain_add(100)

    count("plain100/msg", calls // 10 * 100, plain_batches)
    engine.send([cycles.add() for _ in range(calls // 4)])

    def lease_and_ack() -> None:
        for _ in range(calls // 4):
            leased = engine.client.execute_command(*cycles.pop("lease", 30_000))
            engine.client.execute_command(*cycles.ack(int(leased[3]), int(leased[5])))

    count("lease+ack", calls // 4, lease_and_ack)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("revisions", nargs="*", default=[WORK], help=f"git revisions ({WORK}: the working tree)")
    parser.add_argument("--calls", type=int, default=400)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        engine = Engine(Path(tmp))
        try:
            for revision in options.revisions:
                found = measure(engine, revision, options.calls)
                print(f"{revision[:12]:12} " + "  ".join(f"{case} {k:6.1f}k" for case, k in found.items()), flush=True)
        finally:
            engine.stop()


if __name__ == "__main__":
    main()
