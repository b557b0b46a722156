"""Lease + ack cycles/s against plain GETs/s, the three alternating round by round (drift hits all alike).

Starts an embedded engine and one `restmq serve` worker, then runs wrk (50 connections) with bench/get.lua
(destructive GET), bench/leaseack.lua (GET ?lease=30, then DELETE: two requests a cycle) and bench/leasenext.lua
(GET ?lease=30&ack=<the key an earlier request leased>@<count>: one request a cycle), round by round in that
order, and prints cycles/s and server + engine CPU per cycle of each round, the medians, and the ratios to GET.
bench/run.py measures the same rows test after test, within its whole suite.

    .venv/bin/python bench/lease_cycles.py [--rounds 5] [--duration 5]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
from pathlib import Path

from common import restmq_serve, start_server
from http_load import TESTS, restmq, run_round

from restmq.storage.engine import EmbeddedEngine

NAMES = ("get", "lease", "next")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=5.0)
    options = parser.parse_args()
    rows: dict[str, list[tuple[float, float, float]]] = {name: [] for name in NAMES}
    with contextlib.ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        engine = EmbeddedEngine(Path(tmp) / "engine")
        stack.callback(engine.stop)
        url = engine.start()
        assert engine.pid is not None
        server = start_server(stack, "restmq", restmq_serve(url), Path(tmp), "/ready", engine.pid)
        contender = restmq("restmq", server.port, server.proc.pid, engine.pid, server.check)
        for name in NAMES:  # warm-up
            contender.prepare(TESTS[name], 1)
            contender.load(TESTS[name], 1, 50)
        for number in range(1, options.rounds + 1):
            for name in NAMES:
                r = run_round(contender, TESTS[name], number, options.duration, 50)
                per = 1 / TESTS[name].messages  # requests per cycle
                rows[name].append((r.msgs, r.server_cpu_us * per, r.engine_cpu_us * per))
                print(
                    f"{name:5} round {number} {r.msgs:7.0f} cycles/s  CPU {r.server_cpu_us * per:4.0f} + "
                    f"{r.engine_cpu_us * per:4.0f} µs/cycle  others {r.other_cores:.2f} cores",
                    flush=True,
                )
    medians = {name: [statistics.median(row[i] for row in rows[name]) for i in range(3)] for name in NAMES}
    for name in NAMES:
        rate, server_us, engine_us = medians[name]
        print(f"median {name:5} {rate:7.0f} cycles/s  CPU {server_us:4.0f} + {engine_us:4.0f} µs/cycle")
    for name in NAMES[1:]:
        by_round = statistics.median(mine[0] / get[0] for mine, get in zip(rows[name], rows["get"], strict=True))
        by_cpu = sum(medians["get"][1:]) / sum(medians[name][1:])
        print(f"{name}: {by_round:.2f}x GETs/s (median of the rounds' ratios), {by_cpu:.2f}x by CPU per cycle")


if __name__ == "__main__":
    main()
