"""The mapper: cuts the book into jobs and publishes them to the job queue (roundrobin, so that each
streaming worker in a browser gets its own jobs).

    python examples/mapreduce/mapper.py --url http://127.0.0.1:8888 --run demo
"""

from __future__ import annotations

import argparse

from wordcount import JOBS, book, chunks

from restmq import Client


def run(url: str, text: str, run_id: str, lines: int = 100) -> int:
    """Publish the jobs of `text`; returns how many."""
    pieces = list(chunks(text, lines))
    jobs = [{"run": run_id, "job": i, "jobs": len(pieces), "text": piece} for i, piece in enumerate(pieces)]
    with Client(url) as client:
        client.set_policy(JOBS, "roundrobin")
        client.add_batch(JOBS, jobs)
    return len(jobs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8888", help="RestMQ base URL")
    parser.add_argument("--run", default="demo", help="a name for this run; results of other runs are ignored")
    parser.add_argument("--lines", type=int, default=100, help="lines of the book per job")
    args = parser.parse_args()
    print(run(args.url, book(), args.run, args.lines), "jobs")


if __name__ == "__main__":
    main()
