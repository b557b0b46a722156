"""/metrics after a known sequence of operations, request ids, and JSON logs."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers.auth import bearer, create_token_async
from tests.helpers.queues import add
from tests.helpers.server import serve
from tests.helpers.wait import long_polls_waiting, wait_for, wait_parked, wait_until

pytestmark = pytest.mark.integration

QUEUE_GAUGES = ("length", "delayed", "leased", "dead", "consumers")
QUEUE_COUNTERS = ("added", "delivered", "acked", "redelivered", "expired", "dead_lettered")


def samples(text: str) -> Iterator[tuple[str, dict[str, str], float]]:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            yield sample.name, sample.labels, sample.value


def queue_metrics(text: str, queue: str) -> dict[str, float]:
    """Every restmq_queue_* sample of one queue, by name without the prefix (counters keep _total)."""
    found = {}
    for name, labels, value in samples(text):
        if name.startswith("restmq_queue_") and labels.get("queue") == queue:
            found[name.removeprefix("restmq_queue_")] = value
    return found


async def scrape(http: httpx.AsyncClient, **kwargs: Any) -> str:
    response = await http.get("/metrics", **kwargs)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


async def test_queue_metrics_after_a_known_sequence(http: httpx.AsyncClient) -> None:
    for i in range(5):
        await add(http, "jobs", f"m{i}")
    for _ in range(2):
        assert (await http.get("/q/jobs")).status_code == 200  # take 2
    leased = (await http.get("/q/jobs", params={"lease": "30"})).json()  # lease 1 ...
    assert (await http.delete(f"/q/jobs/{leased['key']}")).status_code == 200  # ... and ack it
    held = (await http.get("/q/jobs", params={"lease": "30"})).json()  # lease 1, not acked
    lapsed = (await http.get("/q/jobs", params={"lease": "0.2"})).json()  # lease 1 and let it expire
    assert held["key"] != lapsed["key"]

    async def returned() -> bool:
        return int((await http.get("/stats/jobs")).json()["redelivered"]) == 1

    await wait_for(returned, timeout=5, what="the lapsed lease to come back")
    await add(http, "jobs", "later", delay="60")
    await add(http, "other", "x")

    metrics = queue_metrics(await scrape(http), "jobs")
    assert metrics == {
        "length": 1,  # m0..m4: 2 taken, m2 leased and acked, m3 leased (held), m4 back from its lapsed lease
        "delayed": 1,
        "leased": 1,
        "dead": 0,
        "consumers": 0,
        "added_total": 6,
        "delivered_total": 5,
        "acked_total": 1,
        "redelivered_total": 1,
        "expired_total": 0,
        "dead_lettered_total": 0,
    }
    assert queue_metrics(await scrape(http), "other")["added_total"] == 1
    stats = (await http.get("/stats/jobs")).json()  # /metrics and /stats agree
    for name in QUEUE_GAUGES:
        assert stats[name] == metrics[name], name
    for name in QUEUE_COUNTERS:
        assert stats[name] == metrics[f"{name}_total"], name


async def test_process_metrics(http: httpx.AsyncClient) -> None:
    await add(http, "jobs", "x")
    await http.get("/q/jobs")
    text = await scrape(http)
    names = {name for name, _, _ in samples(text)}
    assert "restmq_process_streams" in names
    assert "restmq_backend_errors_total" in names
    counts = {
        (labels["method"], labels["handler"], labels["status"]): value
        for name, labels, value in samples(text)
        if name == "restmq_http_request_duration_seconds_count"
    }
    assert counts.get(("POST", "add_message", "200"), 0) >= 1
    assert counts.get(("GET", "get_message", "200"), 0) >= 1


async def test_metrics_show_only_the_queues_a_token_covers(http: httpx.AsyncClient, redis_url: str) -> None:
    for queue in ("orders.eu", "audit"):
        await add(http, queue, "x")
    token = await create_token_async(redis_url, "orders.*", "read")
    text = await scrape(http, headers=bearer(token))
    queues = {labels.get("queue") for name, labels, _ in samples(text) if name.startswith("restmq_queue_")}
    assert queues == {"orders.eu"}
    assert (await http.get("/metrics")).status_code == 401


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("abc-123", True),
        ("A.b_c:d-9", True),
        ("x" * 64, True),
        ("x" * 65, False),
        ("", False),
        ("has space", False),
        ("semi;colon", False),
        ("<script>", False),
        ("é", False),
    ],
)
async def test_request_ids(http: httpx.AsyncClient, sent: str, kept: bool) -> None:
    response = await http.get("/health", headers={b"X-Request-ID": sent.encode()})  # bytes: "é" goes raw
    echoed = response.headers["x-request-id"]
    if kept:
        assert echoed == sent
    else:
        assert echoed != sent and re.fullmatch(r"[A-Za-z0-9._:-]{1,64}", echoed)


async def test_a_request_id_is_generated_when_absent(http: httpx.AsyncClient) -> None:
    first = (await http.get("/health")).headers["x-request-id"]
    second = (await http.get("/q/nothing")).headers["x-request-id"]
    error = (await http.get("/q/bad name")).headers["x-request-id"]
    assert len({first, second, error}) == 3
    assert all(re.fullmatch(r"[A-Za-z0-9._:-]{1,64}", rid) for rid in (first, second, error))


@pytest.mark.slow
def test_json_logs_carry_the_request_id(redis_url: str, tmp_path: Path) -> None:
    with serve(["--redis", redis_url, "--log-format", "json", "--log-level", "debug"], tmp_path) as server:
        response = httpx.get(server.url + "/q/jobs", headers={"X-Request-ID": "trace-me-42"})
        assert response.status_code == 204

        def logged() -> bool:
            return "trace-me-42" in server.log()

        wait_until(logged, 5, 0.05, "a log line with the request id")
    lines = [line for line in server.log().splitlines() if line.strip()]
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except ValueError:
            pytest.fail(f"not a JSON log line: {line!r}\n{server.log()}")
    for record in records:
        assert {"time", "level", "logger", "message", "request_id"} <= set(record), record
    assert any(r["request_id"] == "trace-me-42" for r in records)
    assert any(r["request_id"] == "-" for r in records)  # start-up lines: no request


async def test_long_polls_waiting_counts_the_parked_long_polls(http: httpx.AsyncClient) -> None:
    assert await long_polls_waiting(http) == 0
    polls = [asyncio.create_task(http.get(f"/q/parked{i % 2}", params={"wait": 20})) for i in range(3)]
    await wait_parked(http, 3)
    await add(http, "parked0", "x")
    assert (await asyncio.wait_for(polls[0], 10)).status_code == 200
    await wait_parked(http, 2)  # the woken one left, the other of its queue waits on
    await add(http, "parked0", "y")
    await add(http, "parked1", "z")
    assert [(await asyncio.wait_for(p, 10)).status_code for p in polls[1:]] == [200, 200]
    assert await long_polls_waiting(http) == 0
