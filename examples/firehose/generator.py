"""A bundled firehose: made-up, tweet-like posts (users, hashtags, languages, timestamps) published to a
RestMQ queue at a steady rate.

    python examples/firehose/generator.py --url http://127.0.0.1:8888 --rate 20
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import random
import threading
from collections.abc import Iterator
from typing import Any

from restmq import Client

RAW = "firehose.raw"

USERS = [
    ("ana_dev", "Ana"), ("bruno", "Bruno"), ("chen.li", "Chen Li"), ("dmitri", "Dmitri"), ("ebony", "Ebony"),
    ("fatima_k", "Fatima"), ("gus", "Gustavo"), ("hiro", "Hiro"), ("ines", "Inês"), ("jon", "Jon"),
    ("kemi", "Kemi"), ("lars", "Lars"), ("maya", "Maya"), ("nour", "Nour"), ("oskar", "Oskar"),
]  # fmt: skip
HASHTAGS = [
    "#python", "#redis", "#valkey", "#opensource", "#asyncio", "#http", "#websocket", "#devops", "#coffee",
    "#music", "#football", "#travel", "#photography", "#rain", "#monday", "#cats",
]  # fmt: skip
# A few sentence patterns per language; {tag} is replaced by a hashtag, {n} by a number.
SENTENCES = {
    "en": [
        "Just shipped a new release, {n} bugs fixed {tag}", "Is it me or is everything slower on Mondays? {tag}",
        "Reading about message queues over plain HTTP, neat {tag}", "{n} cups of coffee and counting {tag}",
        "Great talk today about streaming and backpressure {tag}", "Anyone else migrating to Valkey? {tag}",
    ],
    "pt": [
        "Acabei de publicar uma versão nova, {n} bugs a menos {tag}", "Chovendo de novo por aqui {tag}",
        "Alguém usando filas de mensagens com HTTP? {tag}", "Já são {n} cafés hoje {tag}",
    ],
    "es": [
        "Hoy aprendí algo nuevo sobre colas de mensajes {tag}", "Llevo {n} horas depurando esto {tag}",
        "Qué buen partido anoche {tag}", "Nuevo proyecto de código abierto en marcha {tag}",
    ],
    "fr": [
        "Nouvelle version publiée, {n} corrections {tag}", "Il pleut encore à Paris {tag}",
        "Qui utilise des files de messages en HTTP ? {tag}",
    ],
    "de": [
        "Neues Release ist draußen, {n} Fehler behoben {tag}", "Montag. Kaffee. Code. {tag}",
        "Wer nutzt schon Valkey im Betrieb? {tag}",
    ],
}  # fmt: skip
LANGUAGES = ["en"] * 5 + ["pt"] * 2 + ["es"] * 2 + ["fr", "de"]


def posts(seed: int | None = None) -> Iterator[dict[str, Any]]:
    """An endless stream of posts; the same seed gives the same posts (timestamps aside)."""
    rng = random.Random(seed)
    for number in itertools.count(1):
        user, name = rng.choice(USERS)
        lang = rng.choice(LANGUAGES)
        tags = rng.sample(HASHTAGS, rng.choice([1, 1, 2, 3]))
        text = rng.choice(SENTENCES[lang]).format(tag=tags[0], n=rng.randint(2, 40))
        text += "".join(f" {tag}" for tag in tags[1:])
        yield {
            "id": f"p{number}",
            "user": f"@{user}",
            "name": name,
            "lang": lang,
            "text": text,
            "created_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds"),
            "likes": int(rng.expovariate(1 / 20)),
            "reposts": int(rng.expovariate(1 / 4)),
            "followers": int(rng.lognormvariate(6, 1.5)),
        }


def run(url: str, rate: float, stop: threading.Event, seed: int | None = None, ttl: float = 300) -> None:
    """Publish `rate` posts a second to the raw queue until `stop` is set (in batches, ten times a second)."""
    stream = posts(seed)
    per_tick = max(rate / 10, 0.0)
    owed = 0.0
    with Client(url) as client:
        while not stop.is_set():
            owed += per_tick
            batch = [next(stream) for _ in range(int(owed))]
            owed -= len(batch)
            if batch:
                client.add_batch(RAW, batch, ttl=ttl)  # unread posts fade away after ttl seconds
            stop.wait(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8888", help="RestMQ base URL")
    parser.add_argument("--rate", type=float, default=20, help="posts per second")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    stop = threading.Event()
    try:
        run(args.url, args.rate, stop, args.seed)
    except KeyboardInterrupt:
        stop.set()


if __name__ == "__main__":
    main()
