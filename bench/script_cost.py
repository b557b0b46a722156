"""What the add and take scripts cost inside the engine, measured with redis-benchmark.

Runs each script 200,000 times (`-P 16 -c 50`) against a fresh embedded engine and prints, per call:
the engine's CPU time, the engine's own time for the script (commandstats), and the time of each
command the script issues. `--revision REV` takes the scripts of a git revision instead of the working
tree's, to compare two; the machine's load inflates every number, so compare runs made together.

    .venv/bin/python bench/script_cost.py [--calls N] [--revision REV]
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import uuid
from pathlib import Path

import redis

from restmq.storage import keys, scripts
from restmq.storage.engine import EmbeddedEngine

BENCH = Path(__file__).resolve().parent
QUEUE = "bench"


def source(name: str, revision: str | None) -> str:
    """A script with its prelude, as scripts.source builds it, from the working tree or a git revision."""
    if revision is None:
        return scripts.source(name)

    def show(file: str) -> str:
        spec = f"{revision}:restmq/storage/lua/{file}.lua"
        return subprocess.run(["git", "show", spec], cwd=BENCH, check=True, capture_output=True, text=True).stdout

    return show("_lib") + "\n" + show(name)


def _cpu(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def _calls(client: redis.Redis) -> dict[str, tuple[int, float]]:
    stats = client.info("commandstats")
    return {name[len("cmdstat_") :]: (int(v["calls"]), float(v["usec"])) for name, v in stats.items()}


def _script_args(name: str, sha: str, lua: str) -> list[str]:
    """EVALSHA arguments of one call; `__rand_int__` gives each call its own operation id."""
    qk, dk = keys.queue_keys(QUEUE), keys.queue_keys(keys.dead_letter_queue(QUEUE))
    op = qk.operation("__rand_int__")
    with_op = "replayed(KEYS" in lua  # revisions before operation ids: no such key
    if name == "add":
        script_keys = [*qk.message_keys, qk.meta] + ([op] if with_op else [])
        args = [QUEUE, qk.channel, "0", "0", "0", "0", "0", "x" * 100]
    else:
        script_keys = [*qk.message_keys, *dk.message_keys] + ([op] if with_op else [])
        args = [QUEUE, keys.dead_letter_queue(QUEUE), "take", "1", "0"]
    return ["EVALSHA", sha, str(len(script_keys)), *script_keys, *args]


def measure(client: redis.Redis, socket: str, name: str, calls: int, revision: str | None) -> None:
    lua = source(name, revision)
    sha = client.script_load(lua)
    client.config_resetstat()
    cpu = _cpu(client)
    command = ["redis-benchmark", "-s", socket, "-n", str(calls), "-c", "50", "-P", "16", "-r", "1000000000", "-q"]
    subprocess.run([*command, *_script_args(name, sha, lua)], check=True, capture_output=True)
    cpu_us = (_cpu(client) - cpu) * 1e6 / calls
    found = _calls(client)
    evalsha_us = found["evalsha"][1] / calls
    shown = sorted(
        (cmd, usec)
        for cmd, (_, usec) in found.items()
        if cmd != "evalsha" and cmd.split("|")[0] not in ("info", "config")
    )
    nested = ", ".join(f"{cmd} {usec / calls:.2f} µs" for cmd, usec in shown)
    print(f"{name:5} cpu {cpu_us:6.2f} µs/call  script {evalsha_us:6.2f} µs/call  nested: {nested or '-'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--revision", help="a git revision whose scripts to measure (default: the working tree)")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, EmbeddedEngine(Path(tmp) / uuid.uuid4().hex[:8]) as engine:
        client = redis.Redis(unix_socket_path=engine.socket_path, decode_responses=True)
        measure(client, engine.socket_path, "add", options.calls, options.revision)
        measure(client, engine.socket_path, "pop", options.calls, options.revision)  # takes what the adds stored
        client.close()


if __name__ == "__main__":
    main()
