"""Listings stay bounded with many queues (issue 13): GET /q/, /stats/ and /stats/stream page by name with
`limit` and `after`, /metrics has per-queue series for a bounded number of queues plus totals over all, and
open dashboards share one statistics snapshot per page and interval."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from restmq.config import Limits
from restmq.storage import keys
from tests.helpers.auth import bearer, create_token_async
from tests.helpers.cluster import Cluster
from tests.helpers.server import run_app, serve
from tests.helpers.topology import flush_cluster

pytestmark = pytest.mark.integration

EVENTS = {"Accept": "text/event-stream"}
# Names that sort differently as text and as case-folded text, with every allowed punctuation mark.
NAMES = sorted(
    [f"q{i:02}" for i in range(14)] + ["A", "Zeta", "a", "a.b", "a-b", "a_b", "a:b", "a@b", "jobs:dead", "jobs", "0"]
)


async def add_queues(http: httpx.AsyncClient, names: list[str], per_queue: int = 1) -> None:
    async def one(name: str) -> None:
        response = await http.post(f"/q/{name}", json=[f"{name}-{i}" for i in range(per_queue)])
        assert response.status_code == 200, response.text

    await asyncio.gather(*(one(name) for name in names))


async def follow(http: httpx.AsyncClient, path: str, limit: int, **headers: str) -> list[dict[str, Any]]:
    """Every page of a listing, following `next` from the first page; each reply in order."""
    pages: list[dict[str, Any]] = []
    after: str | None = None
    while True:
        params = {"limit": str(limit), **({"after": after} if after is not None else {})}
        response = await http.get(path, params=params, headers=headers)
        assert response.status_code == 200, response.text
        page = response.json()
        pages.append(page)
        assert page["count"] == len(page["queues"]) <= limit
        after = page["next"]
        if after is None:
            return pages
        assert len(pages) < 100, "the listing never ends"


def names_of(page: dict[str, Any]) -> list[str]:
    return [q if isinstance(q, str) else q["queue"] for q in page["queues"]]


# -- paging -----------------------------------------------------------------------------------------


async def test_paging_returns_every_queue_once_in_name_order(topology: str) -> None:
    """Issue 13: small pages of GET /q/ and /stats/ list every queue exactly once, in name order, on one node,
    on a ring (the nodes' listings merged) and on a Redis Cluster."""
    async with httpx.AsyncClient(base_url=topology, timeout=30) as http:
        await add_queues(http, NAMES)
        for path in ("/q/", "/stats/"):
            pages = await follow(http, path, 4)
            listed = [name for page in pages for name in names_of(page)]
            assert listed == NAMES, path
            assert [len(page["queues"]) for page in pages] == [4] * 6 + [1], path  # full pages but the last
            assert all(page["next"] == names_of(page)[-1] for page in pages[:-1]), path
        one_page = (await http.get("/q/")).json()  # the default page holds them all here
        assert one_page == {"queues": NAMES, "count": len(NAMES), "next": None}


async def test_the_default_page_is_the_maximum_and_a_larger_limit_is_lowered_to_it(redis_url: str) -> None:
    """Issue 13: without `limit` a page holds --max-page queues; a larger `limit` is clamped, not an error."""
    async with run_app(redis_url, limits=Limits(max_page=5)) as url, httpx.AsyncClient(base_url=url) as http:
        await add_queues(http, NAMES)
        for params in ({}, {"limit": "6"}, {"limit": "100000"}):
            page = (await http.get("/q/", params=params)).json()
            assert page["queues"] == NAMES[:5] and page["count"] == 5 and page["next"] == NAMES[4], params
            stats = (await http.get("/stats/", params=params)).json()
            assert names_of(stats) == NAMES[:5] and stats["next"] == NAMES[4], params
        rest = (await http.get("/q/", params={"after": NAMES[4], "limit": "3"})).json()
        assert rest["queues"] == NAMES[5:8] and rest["next"] == NAMES[7]
        last = (await http.get("/q/", params={"after": NAMES[-3]})).json()
        assert last == {"queues": NAMES[-2:], "count": 2, "next": None}
        beyond = (await http.get("/q/", params={"after": "zzz"})).json()
        assert beyond == {"queues": [], "count": 0, "next": None}
        between = (await http.get("/q/", params={"after": "a.c", "limit": "2"})).json()  # need not be a queue
        assert between["queues"] == [n for n in NAMES if n > "a.c"][:2]
        html = await http.get("/q/", params={"limit": "2"}, headers={"Accept": "text/html"})
        assert f'rel="next" href="/q/?after={NAMES[1]}&amp;limit=2"' in html.text
        assert html.text.count("<li>") == 2


@pytest.mark.parametrize(
    "query",
    [
        {"limit": "0"},
        {"limit": "-1"},
        {"limit": "ten"},
        {"limit": "1.5"},
        {"after": "bad name"},
        {"after": "x" * 201},
        {"after": "a/b"},
    ],
)
async def test_bad_paging_parameters_are_refused(http: httpx.AsyncClient, query: dict[str, str]) -> None:
    """Issue 13: a `limit` that is not a positive integer, or an `after` that cannot be a queue name, is a 400."""
    for path in ("/q/", "/stats/", "/ui"):
        response = await http.get(path, params=query)
        assert response.status_code == 400, (path, response.text)
        assert response.json()["code"] == "PARAMETER_INVALID", (path, response.text)
    stream = await http.get("/stats/stream", params=query, headers=EVENTS)
    assert stream.status_code == 400 and stream.json()["code"] == "PARAMETER_INVALID"


async def test_a_token_pages_through_only_the_queues_it_covers(redis_url: str) -> None:
    """Issue 13: with a token, pages hold only covered queues, each once and in order; a page may be short (even
    empty) when the server stopped reading uncovered names, and `next` still leads on."""
    admin = await create_token_async(redis_url, "*", "admin")
    reader = await create_token_async(redis_url, "orders.*", "read")
    hidden = [f"audit-{i:02}" for i in range(30)]
    shown = ["orders.a", "orders.b", "orders.c"]
    async with run_app(redis_url, limits=Limits(max_page=2)) as url, httpx.AsyncClient(base_url=url) as http:
        http.headers.update(bearer(admin))
        await add_queues(http, [*hidden, *shown, "zz-audit"])
        http.headers.update(bearer(reader))
        for path in ("/q/", "/stats/"):
            pages = await follow(http, path, 2)
            assert [name for page in pages for name in names_of(page)] == shown, path
            assert any(page["count"] == 0 and page["next"] for page in pages), "the scan is bounded per request"


# -- the dashboard's statistics stream -----------------------------------------------------------------


async def sse_events(http: httpx.AsyncClient, n: int, params: dict[str, str] | None = None) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    async with asyncio.timeout(20), http.stream("GET", "/stats/stream", params=params, headers=EVENTS) as response:
        assert response.status_code == 200, await response.aread()
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                found.append(orjson.loads(line[6:]))
                if len(found) == n:
                    break
    return found


async def test_the_stats_stream_sends_one_page(redis_url: str) -> None:
    """Issue 13: /stats/stream takes `limit` and `after` and says where the next page starts."""
    async with run_app(redis_url, limits=Limits(max_page=10)) as url, httpx.AsyncClient(base_url=url) as http:
        await add_queues(http, NAMES)
        (first,) = await sse_events(http, 1)
        assert names_of(first) == NAMES[:10] and first["count"] == 10 and first["next"] == NAMES[9]
        (second,) = await sse_events(http, 1, {"after": first["next"], "limit": "4"})
        assert names_of(second) == NAMES[10:14] and second["next"] == NAMES[13]
        (last,) = await sse_events(http, 1, {"after": NAMES[-2]})
        assert names_of(last) == NAMES[-1:] and last["next"] is None


async def test_open_dashboards_share_one_snapshot_per_interval(redis_url: str) -> None:
    """Issue 13: dashboards showing the same page receive the same snapshots (computed once per interval per
    process, not once per connection); another page is a snapshot of its own."""
    async with run_app(redis_url) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
        await add_queues(http, NAMES)
        first_page, same_page, other_page = await asyncio.gather(
            sse_events(http, 3), sse_events(http, 3), sse_events(http, 3, {"after": "q"})
        )
    by_time = {e["time"]: e for e in first_page}
    shared_ones = [e for e in same_page if e["time"] in by_time]
    assert len(shared_ones) >= 2, "both streams show the snapshots of the same ticks"
    assert all(by_time[e["time"]] == e for e in shared_ones)
    # after the first (taken when the first stream opened, within a tick), streams wake at whole ticks together
    times = sorted({e["time"] for e in first_page + same_page})[1:]
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert all(gap >= 500 for gap in gaps), f"one snapshot a tick, not one a stream: {gaps}"
    assert names_of(other_page[0]) == [n for n in NAMES if n > "q"]


# -- /metrics --------------------------------------------------------------------------------------------


def metric_samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [(s.name, s.labels, s.value) for f in text_string_to_metric_families(text) for s in f.samples]


async def test_metrics_have_series_for_a_bounded_number_of_queues_and_totals_over_all(redis_url: str) -> None:
    """Issue 13: /metrics has per-queue series for the first --metrics-queues queues by name, and totals over every
    queue the caller may see: restmq_queues and the restmq_queues_* families."""
    names = [f"m{i:02}" for i in range(12)]
    async with run_app(redis_url, limits=Limits(metrics_queues=3, max_page=5)) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            for i, name in enumerate(names):
                await add_queues(http, [name], per_queue=i + 1)
            assert (await http.get(f"/q/{names[0]}")).status_code == 200  # one delivery
            response = await http.get("/metrics")
    assert response.status_code == 200
    found = metric_samples(response.text)  # the parser refuses invalid text
    labelled = {labels["queue"] for name, labels, _ in found if name.startswith("restmq_queue_")}
    assert labelled == set(names[:3])
    totals = {name: value for name, labels, value in found if name.startswith("restmq_queues") and not labels}
    assert totals["restmq_queues"] == 12
    assert totals["restmq_queues_length"] == sum(range(1, 13)) - 1
    assert totals["restmq_queues_added_total"] == sum(range(1, 13))
    assert totals["restmq_queues_delivered_total"] == 1
    assert totals["restmq_queues_leased"] == 0 and totals["restmq_queues_dead"] == 0


async def test_metrics_totals_cover_only_what_a_token_covers(redis_url: str) -> None:
    """Issue 13: with a token, the series and the totals count only the queues it covers."""
    admin = await create_token_async(redis_url, "*", "admin")
    reader = await create_token_async(redis_url, "orders.*", "read")
    async with run_app(redis_url, limits=Limits(metrics_queues=1)) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30, headers=bearer(admin)) as http:
            await add_queues(http, ["orders.a", "orders.b", "audit"], per_queue=2)
            text = (await http.get("/metrics", headers=bearer(reader))).text
    found = metric_samples(text)
    assert {labels["queue"] for name, labels, _ in found if name.startswith("restmq_queue_")} == {"orders.a"}
    totals = {name: value for name, labels, value in found if name.startswith("restmq_queues") and not labels}
    assert totals["restmq_queues"] == 2 and totals["restmq_queues_length"] == 4


async def test_metrics_queues_zero_turns_per_queue_series_off(redis_url: str) -> None:
    """Issue 13: --metrics-queues 0 keeps only the totals."""
    async with run_app(redis_url, limits=Limits(metrics_queues=0)) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            await add_queues(http, ["a", "b"])
            found = metric_samples((await http.get("/metrics")).text)
    assert not [name for name, _, _ in found if name.startswith("restmq_queue_")]
    assert ("restmq_queues", {}, 2.0) in found


# -- the index, the client and the CLI ---------------------------------------------------------------


async def test_the_listing_index_is_read_a_page_at_a_time(redis_url: str) -> None:
    """Issue 13: the queue names are kept in an index ordered by name, so a page is one range read."""
    async with run_app(redis_url) as url, httpx.AsyncClient(base_url=url) as http:
        await add_queues(http, ["b", "a"])
    engine = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        assert engine.type(keys.QUEUES) == "zset"
        assert engine.zrange(keys.QUEUES, 0, -1) == ["a", "b"]
    finally:
        engine.close()


async def test_the_previous_set_index_is_folded_into_the_ordered_one(redis_url: str) -> None:
    """Issue 13: queues listed by an earlier version (a SET at rmq:queues) still show after an upgrade."""
    engine = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        engine.sadd(keys.LEGACY_QUEUES, "old-b", "old-a")
        async with run_app(redis_url) as url, httpx.AsyncClient(base_url=url) as http:
            await add_queues(http, ["new"])
            assert (await http.get("/q/")).json()["queues"] == ["new", "old-a", "old-b"]
        assert not engine.exists(keys.LEGACY_QUEUES)
    finally:
        engine.close()


@pytest.fixture
async def paged_server(redis_url: str, tmp_path: Path) -> AsyncIterator[str]:
    """`restmq serve --max-page 3` over the session engine, with 8 queues."""
    with serve(["--redis", redis_url, "--max-page", "3"], tmp_path) as process:
        async with httpx.AsyncClient(base_url=process.url, timeout=30) as http:
            await add_queues(http, [f"c{i}" for i in range(8)])
        yield process.url


@pytest.mark.slow  # a `restmq serve` subprocess
async def test_the_client_and_the_cli_follow_pages(paged_server: str) -> None:
    """Issue 13: Client.queues(), Client.stats_all() and `restmq stats` follow `next` over every page (or stop at
    a limit), against a server whose pages hold 3 queues."""
    from restmq.client import AsyncClient, Client

    expected = [f"c{i}" for i in range(8)]
    async with AsyncClient(paged_server) as aio:
        assert await aio.queues() == expected
        assert [s.queue for s in (await aio.stats_all()).queues] == expected
        assert await aio.queues(limit=4) == expected[:4]
        assert [s.queue for s in (await aio.stats_all(limit=5, after="c1")).queues] == expected[2:7]

    def blocking() -> None:
        with Client(paged_server) as client:
            assert client.queues() == expected
            assert [s.queue for s in client.stats_all().queues] == expected
            assert client.queues(limit=2, after="c5") == ["c6", "c7"]

    await asyncio.to_thread(blocking)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("RESTMQ_")}, "RESTMQ_URL": paged_server}
    shown = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "restmq", "stats", "--json"], capture_output=True, text=True, env=env
    )
    assert shown.returncode == 0, shown.stderr
    assert [q["queue"] for q in orjson.loads(shown.stdout)["queues"]] == expected
    limited = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "restmq", "stats", "--json", "--limit", "4"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert [q["queue"] for q in orjson.loads(limited.stdout)["queues"]] == expected[:4]


@pytest.mark.parametrize("mode", ["node", "cluster"])
async def test_statistics_pages_survive_an_engine_that_lost_its_scripts(
    mode: str, request: pytest.FixtureRequest
) -> None:
    """Issue 13: a page's statistics are read in one pipeline per node; an engine whose script cache was emptied
    (a restart does that) still answers them."""
    if mode == "node":
        url: str = request.getfixturevalue("redis_url")
        app, ports = run_app(url), []
    else:
        cluster: Cluster = request.getfixturevalue("shared_cluster")
        flush_cluster(cluster)
        app, ports = run_app(redis_cluster=cluster.url), cluster.masters()
    async with app as base, httpx.AsyncClient(base_url=base, timeout=30) as http:
        await add_queues(http, NAMES)
        engines = [redis.Redis(port=port) for port in ports] or [redis.Redis.from_url(url)]
        for engine in engines:
            engine.script_flush()
            engine.close()
        page = (await http.get("/stats/")).json()
        assert names_of(page) == NAMES and all(q["length"] == 1 for q in page["queues"])
