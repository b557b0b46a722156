"""The filter and mash-up worker: takes posts from the raw queue, keeps those matching a query, enriches
them (word count, hashtags and mentions found in the text, the query terms that matched, a score) and
publishes them to the filtered queue.

    python examples/firehose/worker.py --url http://127.0.0.1:8888 --query "#python #redis lang:en"

A query is words and hashtags, any of which must appear (case-insensitive), and optional `lang:xx`
terms that restrict the language. Each post is leased, published, then acknowledged: a worker that dies
midway leaves the post to be delivered again, so it may be published twice but is never lost.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import re
import threading
from dataclasses import dataclass
from typing import Any

from restmq import Client
from restmq.client import Message

RAW = "firehose.raw"
FILTERED = "firehose.filtered"
DEFAULT_QUERY = "#python #redis #valkey #opensource #asyncio"
WORD = re.compile(r"[#@]?\w+", re.UNICODE)


@dataclass(frozen=True)
class Query:
    terms: frozenset[str]
    languages: frozenset[str]

    @classmethod
    def parse(cls, text: str) -> Query:
        words = text.lower().split()
        languages = frozenset(w[5:] for w in words if w.startswith("lang:"))
        return cls(frozenset(w for w in words if not w.startswith("lang:")), languages)

    def matches(self, post: dict[str, Any]) -> list[str]:
        """The query terms found in the post; empty when it does not match."""
        if self.languages and post.get("lang") not in self.languages:
            return []
        tokens = {token.lower() for token in WORD.findall(post.get("text", ""))}
        if not self.terms:
            return ["*"]
        return sorted(self.terms & tokens)


def enrich(post: dict[str, Any], matched: list[str]) -> dict[str, Any]:
    text = post["text"]
    tokens = WORD.findall(text)
    hashtags = [t.lower() for t in tokens if t.startswith("#")]
    engagement = post.get("likes", 0) + 2 * post.get("reposts", 0)
    reach = math.log10(post.get("followers", 0) + 1)
    return {
        **post,
        "words": sum(1 for t in tokens if t[0] not in "#@"),
        "hashtags": hashtags,
        "mentions": [t for t in tokens if t.startswith("@")],
        "matched": matched,
        "score": round(engagement + 3 * reach + 5 * len(matched), 1),
        "filtered_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds"),
    }


def run(url: str, query: Query, stop: threading.Event, ttl: float = 120) -> None:
    """Filter until `stop` is set."""
    with Client(url) as client:

        def handle(message: Message) -> None:
            post = json.loads(message.value)
            matched = query.matches(post)
            if matched:
                client.add(FILTERED, enrich(post, matched), ttl=ttl)  # nobody watching: gone after ttl

        client.consume(RAW, handle, concurrency=2, lease=30, wait=1, stop=stop, handle_signals=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8888", help="RestMQ base URL")
    parser.add_argument("--query", default=DEFAULT_QUERY)
    args = parser.parse_args()
    stop = threading.Event()
    try:
        run(args.url, Query.parse(args.query), stop)
    except KeyboardInterrupt:
        stop.set()


if __name__ == "__main__":
    main()
