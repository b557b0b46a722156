"""The example applications, driven headless through their one command (examples/*/run.py)."""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

import httpx
import pytest

from tests.helpers.demos import EXAMPLES, run_demo
from tests.helpers.wait import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def direct_count() -> Counter[str]:
    """Word frequencies of the book, counted here in one go (the rule of examples/mapreduce/wordcount.py)."""
    text = (EXAMPLES / "mapreduce" / "pride-and-prejudice.txt").read_text(encoding="utf-8")
    return Counter(re.findall(r"[a-z]+(?:'[a-z]+)*", text.lower()))


def test_mapreduce_python_workers_equal_the_direct_count() -> None:
    args = ("--python-workers", "2", "--work-delay", "0", "--exit-when-done")
    with run_demo("mapreduce", *args, wait_for=("word-count page",)) as demo:
        assert demo.proc.wait(90) == 0, "\n".join(demo.output)
    result = json.loads(demo.output[-1])
    expected = direct_count()
    assert result["finished"] and result["done"] == result["jobs"] > 100
    assert Counter(result["counts"]) == expected
    assert result["equals_direct_count"] is True and result["total_words"] == sum(expected.values()) > 100_000
    assert set(result["workers"]) == {"python-1", "python-2"} and sum(result["workers"].values()) == result["jobs"]
    assert expected.most_common(3) == [("the", 4331), ("to", 4163), ("of", 3611)]  # the book is the whole book


def test_shortener_redirects_and_counts_the_clicks() -> None:
    with run_demo("shortener", wait_for=("shortener",)) as demo, httpx.Client(base_url=demo.urls["shortener"]) as web:
        made = web.post("/api/links", data={"url": "https://example.org/some/long/path?x=1"}).json()
        assert made["short"] == f"{demo.urls['shortener']}{made['code']}"
        assert web.post("/api/links", data={"url": "javascript:alert(1)"}).status_code == 400
        firefox, chrome = "Mozilla/5.0 Firefox/128.0", "Mozilla/5.0 Chrome/120.0 Safari/537.36"
        visits = [
            {"Referer": "https://news.example/item?id=1", "Accept-Language": "pt-BR,pt;q=0.9", "User-Agent": firefox},
            {"Referer": "https://news.example/other", "Accept-Language": "en-US,en;q=0.8", "User-Agent": "curl/8.0"},
            {"Accept-Language": "fr", "User-Agent": chrome},
        ]
        for headers in visits:
            hop = web.get(f"/{made['code']}", headers=headers)
            assert hop.status_code == 302 and hop.headers["location"] == "https://example.org/some/long/path?x=1"
        assert web.get("/nope").status_code == 404

        def counted() -> dict[str, object] | None:
            stats: dict[str, object] = web.get("/api/stats").json()
            return stats if stats["total"] == len(visits) else None

        wait_until(counted, 20, 0.1, "the analytics consumer to count every click")
        stats = web.get("/api/stats").json()
    assert stats["links"][0]["clicks"] == 3 and sum(h["clicks"] for h in stats["hours"]) == 3
    assert stats["hours"][-1]["clicks"] == 3  # this hour
    assert stats["referrers"] == [["news.example", 2], ["(direct)", 1]]
    assert dict(stats["countries"]) == {"BR": 1, "US": 1, "unknown": 1}
    assert dict(stats["browsers"]) == {"Firefox": 1, "curl": 1, "Chrome": 1}


def test_firehose_keeps_and_enriches_only_matching_posts() -> None:
    args = ("--rate", "60", "--query", "#python lang:en")
    with run_demo("firehose", *args, wait_for=("firehose page", "RestMQ and its dashboard")) as demo:
        page = httpx.get(demo.urls["firehose page"])
        assert page.status_code == 200 and "WebSocket" in page.text
        config = httpx.get(demo.urls["firehose page"] + "config.json").json()
        assert config["queue"] == "firehose.filtered" and config["query"] == "#python lang:en"
        with httpx.Client(base_url=demo.urls["RestMQ and its dashboard"], timeout=30) as restmq:
            posts: list[dict[str, Any]] = []  # JSON objects
            while len(posts) < 5:
                reply = restmq.get("/q/firehose.filtered", params={"count": 10, "wait": 10})
                assert reply.status_code == 200, "no filtered post within 10 s"
                posts += [json.loads(m["value"]) for m in reply.json()]
            raw = restmq.get("/stats/firehose.raw").json()
    assert raw["added"] > len(posts)  # the generator published more than passed the filter
    for post in posts:
        assert post["lang"] == "en" and "#python" in str(post["text"]).lower().split()
        assert post["matched"] == ["#python"] and "#python" in post["hashtags"]
        assert isinstance(post["words"], int) and post["words"] > 0
        assert isinstance(post["score"], float | int) and {"user", "created_at", "filtered_at"} <= set(post)
