"""The reducer: merges the results of one run, one per job (a job counted twice by two workers after a
lease ran out counts once), and tells when every job is in.

    python examples/mapreduce/reducer.py --url http://127.0.0.1:8888 --run demo --jobs 131
"""

from __future__ import annotations

import argparse
import json
import threading
from collections import Counter
from typing import Any

from wordcount import RESULTS

from restmq import Client
from restmq.client import Message


class Reducer:
    def __init__(self, run_id: str, jobs: int) -> None:
        self.run_id = run_id
        self.jobs = jobs
        self.total: Counter[str] = Counter()
        self.by_worker: Counter[str] = Counter()
        self._seen: set[int] = set()
        self._lock = threading.Lock()
        self.finished = threading.Event()

    def add(self, result: dict[str, Any]) -> None:
        with self._lock:
            if result["run"] != self.run_id or result["job"] in self._seen:
                return
            self._seen.add(result["job"])
            self.total.update(result["counts"])
            self.by_worker[result["worker"]] += 1
            if len(self._seen) == self.jobs:
                self.finished.set()

    @property
    def done(self) -> int:
        return len(self._seen)


def run(url: str, reducer: Reducer, stop: threading.Event) -> None:
    """Merge results until every job is in, or `stop` is set."""
    with Client(url) as client:

        def handle(message: Message) -> None:
            reducer.add(json.loads(message.value))
            if reducer.finished.is_set():
                stop.set()

        client.consume(RESULTS, handle, concurrency=4, lease=30, wait=1, stop=stop, handle_signals=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8888", help="RestMQ base URL")
    parser.add_argument("--run", default="demo")
    parser.add_argument("--jobs", type=int, required=True, help="how many jobs the mapper published")
    args = parser.parse_args()
    reducer = Reducer(args.run, args.jobs)
    run(args.url, reducer, threading.Event())
    for word, n in reducer.total.most_common(20):
        print(f"{n:7} {word}")


if __name__ == "__main__":
    main()
