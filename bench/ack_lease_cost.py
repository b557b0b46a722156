"""What a lease + ack cycle costs the engine, in instructions counted by callgrind: a lease (pop.lua) and an ack
(settle.lua), two scripts, against the ack carried on the next lease (ack_lease.lua), one script per cycle.

Uses bench/script_instructions.py's engine under callgrind (AOF everysec) and sends each cycle the way the
storage layer does on a first attempt, 100-byte values, each case on a fresh queue; the cycles alternate case by
case, `--rounds` times. Prints thousands of instructions per cycle and the ratio.

    .venv/bin/python bench/ack_lease_cost.py [--cycles N] [--rounds R]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path
from typing import Any

from script_cost import WORK, source
from script_instructions import Calls, Engine


class Cycles(Calls):
    def __init__(self, engine: Engine, queue: str) -> None:
        super().__init__(engine, WORK, queue)
        self.sha["ack_lease"] = engine.client.script_load(source("ack_lease", WORK))

    def ack_lease(self, acks: list[tuple[int, int]], lease_ms: int = 30_000) -> list[Any]:
        pairs = [x for pair in acks for x in pair]
        script_keys = [*self.qk.message_keys, *self.dead_keys]
        return self._call("ack_lease", script_keys, self.queue, self.dead, 1, lease_ms, *pairs)


def two_scripts(engine: Engine, cycles: Cycles, n: int) -> None:
    for _ in range(n):
        leased = engine.client.execute_command(*cycles.pop("lease", 30_000))
        engine.client.execute_command(*cycles.ack(int(leased[3]), int(leased[5])))


def one_script(engine: Engine, cycles: Cycles, n: int) -> None:
    held: list[tuple[int, int]] = []
    for _ in range(n):
        reply = engine.client.execute_command(*cycles.ack_lease(held))
        rest = reply[4 + 2 * int(reply[3]) :]
        held = [(int(rest[0]), int(rest[2]))] if rest else []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    found: dict[str, list[float]] = {"lease, then ack (2 scripts)": [], "ack= on the next lease (1 script)": []}
    with tempfile.TemporaryDirectory() as tmp:
        engine = Engine(Path(tmp))
        try:
            for r in range(options.rounds):
                for case, run in zip(found, (two_scripts, one_script), strict=True):
                    cycles = Cycles(engine, f"cycle-{r}-{len(found[case])}-{run.__name__}")
                    engine.send([cycles.add() for _ in range(options.cycles + 1)])
                    engine.instructions()
                    run(engine, cycles, options.cycles)
                    found[case].append(engine.instructions() / options.cycles / 1000)
        finally:
            engine.stop()
    medians = {case: statistics.median(k) for case, k in found.items()}
    for case, k in medians.items():
        print(f"{case:36} {k:7.1f}k instructions per cycle  (rounds: {', '.join(f'{x:.1f}' for x in found[case])})")
    two, one = medians.values()
    print(f"one script / two scripts: {one / two:.2f}x")


if __name__ == "__main__":
    main()
