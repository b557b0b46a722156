"""Push delivery to webhooks (issue 19): real receivers on uvicorn, signatures checked with `standardwebhooks`."""

from __future__ import annotations

import base64
import os
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

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


async def subscribe(http: httpx.AsyncClient, queue: str, url: str, **options: object) -> dict[str, object]:
    reply = await http.post(f"/push/{queue}", json={"url": url, **options})
    assert reply.status_code == 200, reply.text
    found: dict[str, object] = reply.json()
    return found


async def show(http: httpx.AsyncClient, queue: str) -> dict[str, object]:
    reply = await http.get(f"/push/{queue}")
    assert reply.status_code == 200, reply.text
    found: dict[str, object] = reply.json()
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
    assert target.ids()[:5] == keys  # one at a time from an idle queue: in order
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

    async def dead() -> dict[str, object] | None:
        reply = await push_http.get("/q/retry:dead")
        return reply.json() if reply.status_code == 200 else None

    letter = await wait_for(dead, 10, what="the dead letter")
    assert letter["value"] == "doomed"
    sub = await show(push_http, "retry")
    assert sub["dead"] == 1 and sub["failed"] == 3 and sub["last_status"] == 500 and sub["failing"] == 3
    assert target.count() == 3  # nothing more after the dead letter
