"""A Python worker: leases jobs, counts their words, publishes the counts, then acknowledges the job.
A worker that dies before its ack leaves the job to come back to another worker when the lease runs
out; the reducer keeps one result per job, so a job counted twice is still counted once.

    python examples/mapreduce/worker.py --url http://127.0.0.1:8888
"""

from __future__ import annotations

import argparse
import json
import os
import threading

from wordcount import JOBS, RESULTS, count

from restmq import Client
from restmq.client import Message


def run(url: str, stop: threading.Event, name: str, delay: float = 0.0) -> None:
    """Work until `stop` is set; `delay` seconds of pretend work per job make the sharing visible."""
    with Client(url) as client:

        def handle(message: Message) -> None:
            job = json.loads(message.value)
            if delay:
                stop.wait(delay)
            result = {"run": job["run"], "job": job["job"], "worker": name, "counts": dict(count(job["text"]))}
            client.add(RESULTS, result)  # then consume() acks the job

        client.consume(JOBS, handle, lease=60, wait=1, stop=stop, handle_signals=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8888", help="RestMQ base URL")
    parser.add_argument("--name", default=f"python-{os.getpid()}")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds of pretend work per job")
    args = parser.parse_args()
    stop = threading.Event()
    try:
        run(args.url, stop, args.name, args.delay)
    except KeyboardInterrupt:
        stop.set()


if __name__ == "__main__":
    main()
