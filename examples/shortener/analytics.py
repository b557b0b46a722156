"""The analytics consumer: leases click events from RestMQ and aggregates them in Valkey (clicks per link,
per hour, top referrers, countries, browsers), then acknowledges them.

    python examples/shortener/analytics.py --url http://127.0.0.1:8888 --valkey unix:///path/valkey.sock

Delivery is at least once (a consumer that dies before its ack gets the event redelivered to another), so
each event is counted inside one Lua script that first marks its message key as seen: a redelivered event
is acknowledged again but never counted twice.
"""

from __future__ import annotations

import argparse
import json
import threading
from urllib.parse import urlsplit

import redis  # noqa: TID251 - the aggregates live in the same Valkey, beside (not inside) RestMQ's keys

from restmq import Client
from restmq.client import Message

CLICKS = "shortener.clicks"
PREFIX = "shortener:"
COUNT_ONCE = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', 86400) then return 0 end
redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
redis.call('HINCRBY', KEYS[3], ARGV[2], 1)
redis.call('ZINCRBY', KEYS[4], 1, ARGV[3])
redis.call('ZINCRBY', KEYS[5], 1, ARGV[4])
redis.call('ZINCRBY', KEYS[6], 1, ARGV[5])
return 1
"""
KEYS = [PREFIX + name for name in ("clicks", "hourly", "referrers", "countries", "browsers")]


def browser(user_agent: str) -> str:
    for marker, name in (("Edg/", "Edge"), ("Firefox/", "Firefox"), ("Chrome/", "Chrome"), ("Safari/", "Safari")):
        if marker in user_agent:
            return name
    return user_agent.split("/")[0][:20] or "unknown"


def referrer(url: str) -> str:
    return urlsplit(url).netloc or "(direct)"


class Aggregator:
    def __init__(self, valkey: redis.Redis) -> None:
        self.count_once = valkey.register_script(COUNT_ONCE)

    def add(self, key: str, event: dict[str, str]) -> bool:
        """Count one click event (its RestMQ message key makes it idempotent); False if already counted."""
        hour = event["time"][:13]  # 2025-01-31T14
        args = [event["code"], hour, referrer(event["referrer"]), event["country"], browser(event["user_agent"])]
        return bool(self.count_once(keys=[PREFIX + "seen:" + key, *KEYS], args=args))


def run(url: str, valkey_url: str, stop: threading.Event) -> None:
    """Aggregate until `stop` is set."""
    valkey = redis.Redis.from_url(valkey_url, decode_responses=True)
    aggregator = Aggregator(valkey)
    try:
        with Client(url) as client:

            def handle(message: Message) -> None:
                aggregator.add(message.key, json.loads(message.value))

            client.consume(CLICKS, handle, concurrency=2, lease=30, wait=1, stop=stop, handle_signals=False)
    finally:
        valkey.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8888", help="RestMQ base URL")
    parser.add_argument("--valkey", required=True, help="the Valkey/Redis URL the shortener uses")
    args = parser.parse_args()
    stop = threading.Event()
    try:
        run(args.url, args.valkey, stop)
    except KeyboardInterrupt:
        stop.set()


if __name__ == "__main__":
    main()
