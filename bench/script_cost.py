"""What the add and take scripts cost inside the engine, measured with redis-benchmark.

Each round runs, per script version, single adds, adds of 100 messages and single takes (`-P 16 -c 50`)
against one fresh embedded engine, and prints per call: the engine's CPU time (with whatever its
background work, such as expiring operation ids, costs), the engine's own time for the script
(commandstats), and the time of each command the script issues. `--revision REV` (repeatable) takes the
scripts of git revisions besides the working tree's; rounds alternate between them, so that the
machine's load weighs on all alike, and the summary gives the medians and their ratio to the first.

    .venv/bin/python bench/script_cost.py [--calls N] [--rounds R] [--revision REV ...]
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import redis

from restmq.storage import keys
from restmq.storage.engine import EmbeddedEngine

BENCH = Path(__file__).resolve().parent
WORK = "work"  # the working tree's scripts
CASES = ("add", "add100", "take")
BATCH = 100


# How a revision's scripts are called: FCALL of its library's functions (issue 16 on), or EVALSHA of each script.
_CODE = """
import json
from restmq.storage import scripts
names = ("add", "pop", "settle")
if hasattr(scripts, "library"):
    lib = scripts.library()
    print(json.dumps({"library": lib.code, "calls": {name: lib.function(name) for name in names}}))
else:
    print(json.dumps({"library": None, "calls": {name: scripts.source(name) for name in names}}))
"""


@dataclass(frozen=True)
class Code:
    """One revision's add, pop and settle scripts: a library's code and function names, or each script's source."""

    library: str | None
    calls: dict[str, str]

    @property
    def text(self) -> str:
        return self.library or "".join(self.calls.values())

    def load(self, client: redis.Redis) -> dict[str, list[str]]:
        """Each script's command head (FCALL name, or EVALSHA sha), with the code loaded on `client`."""
        if self.library is None:
            return {name: ["EVALSHA", client.script_load(lua)] for name, lua in self.calls.items()}
        client.function_load(self.library, replace=True)
        return {name: ["FCALL", function] for name, function in self.calls.items()}


@functools.cache
def code(revision: str) -> Code:
    """A revision's scripts, as its own restmq.storage.scripts builds them (its prelude rules included)."""
    if revision == WORK:
        tree = str(BENCH.parent)
    else:
        archive = subprocess.run(
            ["git", "archive", revision, "restmq"], cwd=BENCH.parent, check=True, capture_output=True
        ).stdout
        tmp = tempfile.mkdtemp()
        with tarfile.open(fileobj=BytesIO(archive)) as tar:
            tar.extractall(tmp, filter="data")
        tree = tmp
    found = subprocess.run([sys.executable, "-c", _CODE], cwd=tree, check=True, capture_output=True, text=True)
    return Code(**json.loads(found.stdout))


def _cpu(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def _calls(client: redis.Redis) -> dict[str, tuple[int, float]]:
    stats = client.info("commandstats")
    return {name[len("cmdstat_") :]: (int(v["calls"]), float(v["usec"])) for name, v in stats.items()}


def _script_args(case: str, head: list[str], lua: str, queue: str) -> list[str]:
    """The command of one call (a first attempt); `__rand_int__` gives each call its own operation id."""
    qk, dk = keys.queue_keys(queue), keys.queue_keys(keys.dead_letter_queue(queue))
    with_op = "replayed(KEYS" in lua  # revisions before operation ids: no such key
    op_keys, op_args = operation(lua, qk, "__rand_int__") if with_op else ([], [])
    if case.startswith("add"):
        script_keys = [*qk.message_keys, qk.meta, *op_keys]
        values = ["x" * 100] * (BATCH if case == "add100" else 1)
        args = [queue, qk.channel, "0", "0", "0", "0", "0", *values, *op_args]
    else:
        dead_keys = () if "'dead_keys'" in lua else dk.message_keys  # sent only where needed (pop.lua)
        script_keys = [*qk.message_keys, *dead_keys, *op_keys]
        args = [queue, keys.dead_letter_queue(queue), "take", "1", "0", *op_args]
    return [*head, str(len(script_keys)), *script_keys, *args]


def operation(lua: str, qk: keys.QueueKeys, op_id: str) -> tuple[list[str], list[str]]:
    """The operation key and argument of a first attempt: the window's hash and the id as last argument, or (in
    revisions before the window hashes) the id's own key."""
    if "OPS_TTL_MS" in lua:
        return [f"{qk.meta[:-4]}ops:{int(time.time()) // 30}"], [op_id]
    return [f"{qk.meta[:-4]}op:{op_id}"], []


def measure(
    client: redis.Redis, socket: str, case: str, revision: Code, calls: int, queue: str
) -> tuple[float, float, float, str]:
    """Engine CPU and script time (commandstats) in µs, and commands the script issued, per call of one case; and
    a line describing it. The command count is exact: the times move with the machine's load."""
    head = revision.load(client)["pop" if case == "take" else "add"]
    client.config_resetstat()
    cpu = _cpu(client)
    command = ["redis-benchmark", "-s", socket, "-n", str(calls), "-c", "50", "-P", "16", "-r", "1000000000", "-q"]
    subprocess.run([*command, *_script_args(case, head, revision.text, queue)], check=True, capture_output=True)
    cpu_us = (_cpu(client) - cpu) * 1e6 / calls
    found = _calls(client)
    script = head[0].lower()
    evalsha_us = found[script][1] / calls
    shown = sorted(
        (cmd, n, usec)
        for cmd, (n, usec) in found.items()
        if cmd != script and cmd.split("|")[0] not in ("info", "config", "script", "function")
    )
    nested = ", ".join(f"{cmd} {usec / calls:.2f}" for cmd, _, usec in shown)
    return (
        cpu_us,
        evalsha_us,
        sum(n for _, n, _ in shown) / calls,
        f"{case:6} cpu {cpu_us:6.2f} µs/call  script {evalsha_us:6.2f} µs/call  nested µs: {nested or '-'}",
    )


def one_round(
    client: redis.Redis, socket: str, revision: str, scripts: Code, calls: int
) -> dict[str, tuple[float, float, float]]:
    client.flushall()
    tag = uuid.uuid4().hex[:6]
    found = {}
    for case in CASES:
        queue = f"bench-{tag}" if case != "add100" else f"batch-{tag}"  # take takes what the single adds stored
        n = calls // BATCH if case == "add100" else calls
        cpu_us, script_us, commands, line = measure(client, socket, case, scripts, n, queue)
        found[case] = (cpu_us, script_us, commands)
        print(f"  {revision[:12]:12} {line}", flush=True)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--revision", action="append", default=[], help="a git revision to compare (repeatable)")
    options = parser.parse_args()
    revisions = [WORK, *options.revision]
    lua = {rev: code(rev) for rev in revisions}
    results: dict[str, list[dict[str, tuple[float, float, float]]]] = {rev: [] for rev in revisions}
    with tempfile.TemporaryDirectory() as tmp, EmbeddedEngine(Path(tmp) / uuid.uuid4().hex[:8]) as engine:
        client = redis.Redis(unix_socket_path=engine.socket_path, decode_responses=True)
        for r in range(options.rounds):
            print(f"round {r + 1}", flush=True)
            for rev in revisions if r % 2 == 0 else reversed(revisions):
                results[rev].append(one_round(client, engine.socket_path, rev, lua[rev], options.calls))
        client.close()
    for i, what in enumerate(("engine CPU, µs", "script time (commandstats), µs", "commands the script issued")):
        print(f"\nmedian {what} per call (add100: a call of 100 messages), ratio to the working tree:")
        base = {case: statistics.median(found[case][i] for found in results[WORK]) for case in CASES}
        for rev in revisions:
            median = {case: statistics.median(found[case][i] for found in results[rev]) for case in CASES}
            print(f"  {rev[:12]:12} " + "  ".join(f"{c} {median[c]:7.2f} ({median[c] / base[c]:.2f}x)" for c in CASES))


if __name__ == "__main__":
    main()
