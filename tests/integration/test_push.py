"""Push delivery to webhooks (issue 19): real receivers on uvicorn, signatures checked with `standardwebhooks`."""

from __future__ import annotations

import base64
import os
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from tests.helpers.auth import bearer, create_token_async
from tests.helpers.receiver import Receiver, receiver
from tests.helpers.server import run_app
from tests.helpers.wait import wait_for

pytestmark = pytest.mark.integration

SECRET = "whsec_" + base64.b64encode(os.urandom(32)).decode()


@pytest.fixture
def target() -> Iterator[Receiver]:
    with receiver() as found:
        yield found


@pytest.fixture
async def push_http(redis_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with run_app(redis_url, push_allow=("127.0.0.1",)) as url, httpx.AsyncClient(base_url=url, timeout=30) as c:
        yield c


async def subscribe(http: httpx.AsyncClient, queue: str, url: str, **options: Any) -> dict[str, Any]:
    reply = await http.post(f"/push/{queue}", json={"url": url, **options})
    assert reply.status_code == 200, reply.text
    found: dict[str, Any] = reply.json()
    return found


async def show(http: httpx.AsyncClient, queue: str) -> dict[str, Any]:
    reply = await http.get(f"/push/{queue}")
    assert reply.status_code == 200, reply.text
    found: dict[str, Any] = reply.json()
    return found


async def test_each_message_is_posted_signed_and_acknowledged(push_http: httpx.AsyncClient, target: Receiver) -> None:
    shown = await subscribe(push_http, "jobs", target.url + "/ok", secret=SECRET)
    assert shown["secret"] is True and SECRET not in str(shown)
    keys = [(await push_http.post("/q/jobs", data={"value": f'{{"n": {i}}}'})).text.strip() for i in range(5)]
    await push_http.post("/q/jobs", data={"value": "plain text"})
    await target.wait_count(6)
    verifier = Webhook(SECRET)
    for delivery in target.deliveries:
        if delivery.body.startswith(b"{"):
            verifier.verify(delivery.body, delivery.headers)  # raises unless the signature (and timestamp) is right
        else:  # verify() also parses the body as JSON: sign the text with the package and compare
            at = datetime.fromtimestamp(int(delivery.headers["webhook-timestamp"]), UTC)
            expected = verifier.sign(delivery.headers["webhook-id"], at, delivery.body.decode())
            assert delivery.headers["webhook-signature"] == expected
        assert delivery.headers["webhook-id"] == delivery.headers["restmq-key"]
        assert delivery.headers["restmq-delivery-count"] == "1"
    assert set(keys) <= set(target.ids())  # deliveries run concurrently (max_in_flight): no order between them
    types = {d.body: d.headers["content-type"] for d in target.deliveries}
    assert types[b'{"n": 0}'] == "application/json"
    assert types[b"plain text"].startswith("text/plain")

    async def drained() -> bool:
        stats = (await push_http.get("/stats/jobs")).json()
        return bool(stats["length"] == 0 and stats["leased"] == 0)

    await wait_for(drained, 10, what="every message acknowledged")
    assert (await show(push_http, "jobs"))["delivered"] == 6


async def test_failures_are_retried_with_backoff_then_dead_lettered(
    push_http: httpx.AsyncClient, target: Receiver
) -> None:
    await subscribe(push_http, "retry", target.url + "/fail", max_attempts=3, backoff={"base": 0.05, "cap": 0.2})
    await push_http.post("/q/retry", data={"value": "doomed"})
    await target.wait_count(3)
    counts = [d.headers["restmq-delivery-count"] for d in target.deliveries]
    assert counts == ["1", "2", "3"]
    assert len(set(target.ids())) == 1  # one webhook-id for every attempt of a message

    async def dead() -> dict[str, Any] | None:
        reply = await push_http.get("/q/retry:dead")
        return reply.json() if reply.status_code == 200 else None

    letter = await wait_for(dead, 10, what="the dead letter")
    assert letter is not None
    assert letter["value"] == "doomed"
    sub = await show(push_http, "retry")
    assert sub["dead"] == 1 and sub["failed"] == 3 and sub["last_status"] == 500 and sub["failing"] == 3
    assert target.count() == 3  # nothing more after the dead letter


async def test_410_pauses_the_subscription_until_it_is_posted_again(
    push_http: httpx.AsyncClient, target: Receiver
) -> None:
    await subscribe(push_http, "gone", target.url + "/gone")
    await push_http.post("/q/gone", data={"value": "one"})
    await target.wait_count(1)

    async def paused() -> bool:
        return bool((await show(push_http, "gone"))["paused"])

    await wait_for(paused, 10, what="the pause")
    sub = await show(push_http, "gone")
    assert sub["last_status"] == 410
    listed = (await push_http.get("/push/")).json()
    assert [s["paused"] for s in listed["subscriptions"]] == [True]
    await push_http.post("/q/gone", data={"value": "two"})
    stats = (await push_http.get("/stats/gone")).json()
    assert stats["length"] == 2 and target.count() == 1  # kept, not pushed while paused
    await subscribe(push_http, "gone", target.url + "/ok")  # POSTed again: resumed
    await target.wait_count(3)
    assert sorted(d.body for d in target.deliveries if d.path == "/ok") == [b"one", b"two"]
    assert not (await show(push_http, "gone"))["paused"]


@pytest.mark.parametrize(
    ("path", "error"),
    [("/hang", "timed out"), ("/redirect", "HTTP 307"), ("/slow?s=5", "timed out")],
)
async def test_timeouts_slow_replies_and_redirects_are_failures(
    push_http: httpx.AsyncClient, target: Receiver, path: str, error: str
) -> None:
    await subscribe(push_http, "t", target.url + path, timeout=0.5, max_attempts=2, backoff={"base": 0.05, "cap": 0.1})
    await push_http.post("/q/t", data={"value": "v"})
    await target.wait_count(2)

    async def dead() -> bool:
        return bool((await show(push_http, "t"))["dead"] == 1)

    await wait_for(dead, 15, what="the dead letter")
    sub = await show(push_http, "t")
    assert error in str(sub["last_error"])
    assert target.count("/ok") == 0  # the redirect was not followed
    assert (await push_http.get("/q/t:dead")).json()["value"] == "v"


async def test_a_receiver_that_goes_away_gets_the_message_when_it_returns(push_http: httpx.AsyncClient) -> None:
    with receiver() as gone:
        url = gone.url
    await subscribe(push_http, "later", url + "/ok", max_attempts=100, backoff={"base": 0.05, "cap": 0.2})
    await push_http.post("/q/later", data={"value": "patient"})

    async def refused() -> bool:
        return int((await show(push_http, "later"))["failing"]) >= 2

    await wait_for(refused, 15, what="refused attempts")
    assert "ConnectError" in str((await show(push_http, "later"))["last_error"])
    with receiver() as back:
        await subscribe(push_http, "later", back.url + "/ok")
        await back.wait_count(1)
        assert back.deliveries[0].body == b"patient"


async def test_slow_receivers_get_at_most_max_in_flight(push_http: httpx.AsyncClient, target: Receiver) -> None:
    await subscribe(push_http, "wide", target.url + "/slow?s=0.3", max_in_flight=3)
    await push_http.post("/q/wide", json=[f"m{i}" for i in range(12)])
    await target.wait_count(12)
    assert target.max_in_flight == 3


async def test_rate_limits_deliveries_per_second(push_http: httpx.AsyncClient, target: Receiver) -> None:
    await subscribe(push_http, "paced", target.url + "/ok", rate=10)
    await push_http.post("/q/paced", json=[f"m{i}" for i in range(25)])
    await target.wait_count(25, timeout=30)
    span = target.deliveries[-1].at - target.deliveries[0].at
    assert span >= 1.8  # 25 at 10/s with a burst of 1: at least 2.4 s (some slack for clock reads)


async def test_subscription_requests_are_checked(push_http: httpx.AsyncClient, target: Receiver) -> None:
    bad = [
        (b"not json", "JSON_INVALID"),
        (b"\xff\xfe", "JSON_INVALID"),
        (b"[]", "PARAMETER_INVALID"),
        (b"{}", "FIELD_MISSING"),
        (b'{"url": "ftp://127.0.0.1/"}', "PARAMETER_INVALID"),
        (b'{"url": "http://user:pw@127.0.0.1/"}', "PARAMETER_INVALID"),
        (b'{"url": "http://10.0.0.1/"}', "PUSH_TARGET_NOT_ALLOWED"),
        (b'{"url": "https://example.com/"}', "PUSH_TARGET_NOT_ALLOWED"),
        (b'{"url": "http://127.0.0.1/", "secret": "hunter2"}', "PARAMETER_INVALID"),
        (b'{"url": "http://127.0.0.1/", "secret": "whsec_c2hvcnQ="}', "PARAMETER_INVALID"),
        (b'{"url": "http://127.0.0.1/", "timeout": 0}', "PARAMETER_INVALID"),
        (b'{"url": "http://127.0.0.1/", "max_in_flight": 1.5}', "PARAMETER_INVALID"),
        (b'{"url": "http://127.0.0.1/", "backoff": {"base": 10, "cap": 1}}', "PARAMETER_INVALID"),
        (b'{"url": "http://127.0.0.1/", "colour": "red"}', "PARAMETER_INVALID"),
    ]
    for body, code in bad:
        reply = await push_http.post("/push/q", content=body, headers={"content-type": "application/json"})
        assert (reply.status_code, reply.json()["code"]) == (400, code), body
    assert (await push_http.post("/push/q:dead", json={"url": target.url})).status_code == 400
    assert (await push_http.post("/push/bad%20name", json={"url": target.url})).json()["code"] == "QUEUE_NAME_INVALID"
    huge = await push_http.post("/push/q", content=b"{" + b" " * 100_000 + b"}")
    assert huge.status_code == 413
    assert (await push_http.get("/push/q")).status_code == 404
    assert (await push_http.get("/push/")).json() == {"subscriptions": [], "enabled": True}
    await subscribe(push_http, "q", target.url + "/ok", secret=SECRET, rate=2.5, backoff={"cap": 60})
    listed = (await push_http.get("/push/")).json()["subscriptions"]
    assert [(s["queue"], s["secret"], s["rate"], s["backoff"]) for s in listed] == [
        ("q", True, 2.5, {"base": 1.0, "cap": 60.0})
    ]
    assert SECRET not in (await push_http.get("/push/")).text
    assert (await push_http.delete("/push/q")).json() == {"queue": "q", "removed": True}
    assert (await push_http.delete("/push/q")).json() == {"queue": "q", "removed": False}
    assert (await push_http.get("/push/q")).status_code == 404


async def test_push_is_off_without_push_allow(http: httpx.AsyncClient) -> None:
    reply = await http.post("/push/q", json={"url": "http://127.0.0.1:9/"})
    assert (reply.status_code, reply.json()["code"]) == (403, "PUSH_DISABLED")
    assert (await http.get("/push/")).json() == {"subscriptions": [], "enabled": False}


async def test_metrics_count_deliveries_by_outcome(push_http: httpx.AsyncClient, target: Receiver) -> None:
    await subscribe(push_http, "m", target.url + "/ok?token=sekrit")
    await push_http.post("/q/m", data={"value": "v"})
    await target.wait_count(1)

    async def counted() -> str | None:
        text = (await push_http.get("/metrics")).text
        return text if 'restmq_push_deliveries_total{outcome="delivered"} 1.0' in text else None

    text = await wait_for(counted, 10, what="the delivery in /metrics")
    assert text is not None
    assert "sekrit" not in text and target.url not in text


async def test_managing_subscriptions_needs_the_admin_right(redis_url: str, target: Receiver) -> None:
    admin = await create_token_async(redis_url, "jobs*", "read,write,admin")
    writer = await create_token_async(redis_url, "*", "read,write")
    async with run_app(redis_url, push_allow=("127.0.0.1",)) as url, httpx.AsyncClient(base_url=url) as http:
        body = {"url": target.url + "/ok", "secret": SECRET}
        assert (await http.post("/push/jobs", json=body)).status_code == 401
        assert (await http.post("/push/jobs", json=body, headers=bearer(writer))).status_code == 403
        assert (await http.post("/push/other", json=body, headers=bearer(admin))).status_code == 403
        assert (await http.post("/push/jobs", json=body, headers=bearer(admin))).status_code == 200
        assert (await http.get("/push/jobs", headers=bearer(writer))).status_code == 403
        assert (await http.delete("/push/jobs", headers=bearer(writer))).status_code == 403
        assert (await http.get("/push/")).status_code == 401
        listed = (await http.get("/push/", headers=bearer(admin))).json()["subscriptions"]
        assert [s["queue"] for s in listed] == ["jobs"] and SECRET not in str(listed)
        assert (await http.get("/push/", headers=bearer(writer))).status_code == 403
