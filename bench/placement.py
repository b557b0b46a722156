"""Capacity-aware placement (docs/scaling.md): do queue shares follow the effective weights, and what does the
placement lookup cost per request?

    .venv/bin/python bench/placement.py            # 3 embedded engines, 3,000 real queues, 100,000 names
    .venv/bin/python bench/placement.py --quick    # fewer queues and names

1. Ring only (no I/O): for a few weight sets, the share of --names queue names each node owns, beside its
   expected share (weight / sum of weights).
2. Real nodes: three embedded engines, a ShardedStore in capacity mode; the weights are pinned through the
   placement table (as `restmq ring pin` does), then --queues queues get one message each, and every node's
   queue registry is counted: the shares the backends really hold.
3. The owner lookup a request makes (`ShardedStore.owner`, the ring walk over the table's weights, in memory):
   microseconds per call, with and without capacity placement.
Results go to bench/results/placement.json and a table on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

from restmq.storage.engine import EmbeddedEngine
from restmq.storage.ring import HashRing
from restmq.storage.sharded import ShardedStore

WEIGHT_SETS = [[1.0, 1.0, 1.0], [2.0, 1.0, 1.0], [1.0, 0.5, 0.02], [1.0, 1.0, 0.0], [1.0, 0.3, 0.7]]
PINNED = [2.0, 1.0, 0.5]  # the weights pinned on the real nodes


def shares(counts: list[int]) -> list[float]:
    total = sum(counts) or 1
    return [c / total for c in counts]


def expected(weights: list[float]) -> list[float]:
    return [w / sum(weights) for w in weights]


def ring_shares(weights: list[float], names: int) -> dict[str, Any]:
    nodes = [f"redis://10.0.0.{i}:6379/0" for i in range(len(weights))]
    ring = HashRing(dict(zip(nodes, weights, strict=True)))
    counts = [0] * len(nodes)
    for i in range(names):
        counts[nodes.index(next(ring.walk(f"queue-{i}")))] += 1
    got, want = shares(counts), expected(weights)
    return {
        "weights": weights,
        "share": got,
        "expected": want,
        "max_error": max(abs(g - w) for g, w in zip(got, want, strict=True)),
    }


def lookup_us(store: ShardedStore, names: list[str]) -> float:
    async def run() -> float:
        await store.owner(names[0])  # the first call follows the table once
        start = time.perf_counter()
        for name in names:
            await store.owner(name)
        return (time.perf_counter() - start) / len(names) * 1e6

    return asyncio.run(run())


async def real_shares(urls: list[str], queues: int) -> dict[str, Any]:
    store = ShardedStore(urls, placement="capacity", placement_interval=3600)
    try:
        for i, weight in enumerate(PINNED):
            assert store.placement is not None
            await store.placement.override(i, weight)
        for i in range(queues):
            await store.add(f"real-{i}", ["v"])
        counts = [len(await node.store.list_queues()) for node in store.nodes]
        got, want = shares(counts), expected(PINNED)
        max_error = max(abs(g - w) for g, w in zip(got, want, strict=True))
        return {"weights": PINNED, "queues": counts, "share": got, "expected": want, "max_error": max_error}
    finally:
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--names", type=int, default=100_000)
    parser.add_argument("--queues", type=int, default=3000)
    parser.add_argument("--lookups", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true")
    options = parser.parse_args()
    if options.quick:
        options.names, options.queues, options.lookups = 10_000, 300, 10_000
    report: dict[str, Any] = {"machine": f"{platform.node()} {platform.machine()} {platform.python_version()}"}
    report["ring"] = [ring_shares(weights, options.names) for weights in WEIGHT_SETS]
    with tempfile.TemporaryDirectory() as directory:
        engines = [EmbeddedEngine(Path(directory) / f"node{i}") for i in range(3)]
        try:
            for engine in engines:
                engine.start()
            urls = [engine.url for engine in engines]
            report["real"] = asyncio.run(real_shares(urls, options.queues))
            names = [f"lookup-{i}" for i in range(options.lookups)]
            report["lookup_us"] = {
                mode: lookup_us(ShardedStore(urls, placement=mode, placement_interval=3600), names)
                for mode in ("static", "capacity")
            }
        finally:
            for engine in engines:
                engine.stop()
    out = Path(__file__).parent / "results" / "placement.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"machine: {report['machine']}")
    print("| weights | share (%) | expected (%) | max error (points) |\n|---|---|---|---|")
    for row in [*report["ring"], report["real"]]:
        share = " / ".join(f"{100 * s:.1f}" for s in row["share"])
        want = " / ".join(f"{100 * s:.1f}" for s in row["expected"])
        label = " : ".join(f"{w:g}" for w in row["weights"]) + (" (real nodes)" if "queues" in row else "")
        print(f"| {label} | {share} | {want} | {100 * row['max_error']:.2f} |")
    for mode, us in report["lookup_us"].items():
        print(f"owner lookup, {mode} placement: {us:.2f} µs per call")


if __name__ == "__main__":
    main()
