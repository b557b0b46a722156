"""restmq/web/hot.py serves a plain GET (or one with `?lease=` alone, or `?lease=&ack=<key>`), a form POST on
/q/<queue> and an ack (DELETE /q/<queue>/<key>) with a lean handler of its own. Any other query parameter sends
the same request to the route's full handler in rest.py instead (`?via=router` is ignored there), so each case
below is asked both ways and must get the same answer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers.auth import basic, create_token_async, write_acl
from tests.helpers.server import run_app

pytestmark = pytest.mark.integration

ROUTER = {"via": "router"}


Answer = tuple[int, bytes, dict[str, str]]  # status, body, headers but those that differ by nature


def answer(response: httpx.Response) -> Answer:
    headers = {k: v for k, v in response.headers.items() if k not in ("x-request-id", "date", "server")}
    return response.status_code, response.content, headers


async def both(client: httpx.AsyncClient, method: str, path: str, **kwargs: Any) -> tuple[Answer, Answer]:
    """The answer of the hot path and of the router (ROUTER forces it) to one request (`kwargs`: httpx's)."""
    hot = answer(await client.request(method, path, **kwargs))
    routed = answer(await client.request(method, path, params=ROUTER, **kwargs))
    return hot, routed


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with run_app(redis_url) as base, httpx.AsyncClient(base_url=base, timeout=30) as http:
        yield http


async def test_add_and_take_answer_alike(client: httpx.AsyncClient) -> None:
    hot = answer(await client.post("/q/a", data={"value": "one"}))
    routed = answer(await client.post("/q/b", data={"value": "one"}, params=ROUTER))
    assert hot[0] == routed[0] == 200 and hot[2] == routed[2]
    assert (hot[1], routed[1]) == (b"a:1\r\n", b"b:1\r\n")
    took_hot = answer(await client.get("/q/a"))
    took_routed = answer(await client.get("/q/b", params=ROUTER))
    assert took_hot[0] == took_routed[0] == 200 and took_hot[2] == took_routed[2]
    assert took_hot[1] == b'{"key":"a:1","value":"one","count":1}\n'
    assert took_routed[1] == b'{"key":"b:1","value":"one","count":1}\n'


async def test_empty_stopped_and_invalid_queues_answer_alike(client: httpx.AsyncClient) -> None:
    hot, routed = await both(client, "GET", "/q/empty")
    assert hot == routed and hot[0] == 204
    await client.post("/control/paused", data={"status": "stop"})
    hot, routed = await both(client, "GET", "/q/paused")
    assert hot == routed
    assert hot[2]["x-restmq-status"] == "stop"
    for path in ("/q/bad%20name", "/q/" + "x" * 300):
        hot, routed = await both(client, "GET", path)
        assert hot == routed and hot[0] == 400
        hot, routed = await both(client, "POST", path, data={"value": "v"})
        assert hot == routed and hot[0] == 400


async def test_leases_and_acks_answer_alike(client: httpx.AsyncClient) -> None:
    for queue in ("lh", "lr"):
        await client.post(f"/q/{queue}", data={"value": "v"})
    hot = answer(await client.get("/q/lh", params={"lease": "30"}))
    routed = answer(await client.get("/q/lr", params={"lease": "30", **ROUTER}))
    assert hot[0] == routed[0] == 200 and hot[2] == routed[2]
    assert (hot[1], routed[1]) == (b'{"key":"lh:1","value":"v","count":1}\n', b'{"key":"lr:1","value":"v","count":1}\n')
    hot = answer(await client.get("/q/lh", params={"lease": "30"}))  # nothing left to lease
    assert hot == answer(await client.get("/q/lh", params={"lease": "30", **ROUTER})) and hot[0] == 204
    acked = answer(await client.delete("/q/lh/lh:1"))
    acked_routed = answer(await client.delete("/q/lr/lr:1", params=ROUTER))
    assert acked[0] == acked_routed[0] == 200 and acked[2] == acked_routed[2]
    assert acked[1] == b'{"queue":"lh","key":"lh:1","count":1,"status":"ack"}\n'
    for path in ("/q/lh/lh:1", "/q/lh/other:1", "/q/lh/lh:x", "/q/bad%20name/k:1"):  # acked, foreign, bad key/queue
        hot, routed = await both(client, "DELETE", path)
        assert hot == routed and hot[0] in (400, 404), (path, hot)
    for lease in ("0", "0.0", "999999999", "1.", "1.5"):  # out of range or odd spellings: the same verdicts
        hot = answer(await client.get("/q/lh", params={"lease": lease}))
        routed = answer(await client.get("/q/lh", params={"lease": lease, **ROUTER}))
        assert hot == routed and hot[0] in (204, 400), (lease, hot)


async def test_bad_form_posts_answer_alike(client: httpx.AsyncClient) -> None:
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    cases: list[dict[str, Any]] = [
        {"data": {"other": "field"}},  # no value
        {"content": b"value=%ff", "headers": form},  # not UTF-8
        {"content": b"value=" + b"x" * 2_000_000, "headers": form},  # over the body limit
        {"data": {"value": "v", "priority": "high"}},  # a bad option in the form
    ]
    for case in cases:
        hot, routed = await both(client, "POST", "/q/forms", **case)
        assert hot == routed, case
        assert hot[0] in (400, 413), hot


async def test_form_options_apply_on_the_hot_path(client: httpx.AsyncClient) -> None:
    await client.post("/q/prio", data={"value": "low"})
    await client.post("/q/prio", data={"value": "high", "priority": "9"})
    await client.post("/q/prio", data={"value": "later", "delay": "60"})
    assert (await client.get("/q/prio")).json()["value"] == "high"
    assert (await client.get("/q/prio")).json()["value"] == "low"
    assert (await client.get("/q/prio")).status_code == 204
    first = await client.post("/q/idem", data={"value": "once", "id": "k1"})
    again = await client.post("/q/idem", data={"value": "once", "id": "k1"})
    assert first.text == again.text and again.headers["idempotent-replayed"] == "true"


async def test_access_control_applies_alike(redis_url: str, tmp_path: Path) -> None:
    text = "[rest:producer]\nusername = p\npassword = secret\n[rest:consumer]\nhosts_deny = 127.0.0.1\n"
    async with run_app(redis_url, acl=write_acl(tmp_path, text)) as base, httpx.AsyncClient(base_url=base) as http:
        hot, routed = await both(http, "POST", "/q/jobs", data={"value": "v"})
        assert hot == routed and hot[0] == 401
        hot, routed = await both(http, "GET", "/q/jobs")
        assert hot == routed and hot[0] == 403
        added = await http.post("/q/jobs", data={"value": "v"}, headers=basic("p", "secret"))
        assert added.status_code == 200


async def test_tokens_apply_alike(redis_url: str) -> None:
    token = await create_token_async(redis_url, "jobs", "read")
    async with run_app(redis_url) as base, httpx.AsyncClient(base_url=base) as http:
        auth = {"Authorization": f"Bearer {token}"}
        hot, routed = await both(http, "POST", "/q/jobs", data={"value": "v"}, headers=auth)
        assert hot == routed and hot[0] == 403
        hot, routed = await both(http, "GET", "/q/other", headers=auth)
        assert hot == routed and hot[0] == 403
        hot, routed = await both(http, "GET", "/q/jobs")
        assert hot == routed and hot[0] == 401
        hot, routed = await both(http, "GET", "/q/jobs", headers=auth)
        assert hot == routed and hot[0] == 204


async def test_metrics_name_the_hot_handlers(client: httpx.AsyncClient) -> None:
    await client.post("/q/m", data={"value": "v"})
    await client.get("/q/m")
    text = (await client.get("/metrics")).text
    assert 'handler="add_message"' in text and 'handler="get_message"' in text


async def test_acks_carried_on_a_lease_answer_alike(client: httpx.AsyncClient) -> None:
    for queue in ("nh", "nr"):
        for value in ("one", "two"):
            await client.post(f"/q/{queue}", data={"value": value})
        assert (await client.get(f"/q/{queue}", params={"lease": "30"})).status_code == 200
    hot = answer(await client.get("/q/nh", params={"lease": "30", "ack": "nh:1@1"}))
    routed = answer(await client.get("/q/nr", params={"lease": "30", "ack": "nr:1@1", **ROUTER}))
    assert hot[0] == routed[0] == 200
    assert (hot[2].pop("x-restmq-ack"), routed[2].pop("x-restmq-ack")) == ("nh:1@1=ok", "nr:1@1=ok")
    assert hot[2] == routed[2]
    await client.post("/control/nh", data={"status": "stop"})
    await client.post("/control/nr", data={"status": "stop"})
    hot = answer(await client.get("/q/nh", params={"lease": "30", "ack": "nh:9"}))
    routed = answer(await client.get("/q/nr", params={"lease": "30", "ack": "nr:9", **ROUTER}))
    assert hot[0] == routed[0] == 204 and hot[2]["x-restmq-status"] == "stop"
    assert (hot[2].pop("x-restmq-ack"), routed[2].pop("x-restmq-ack")) == (
        "nh:9=MESSAGE_NOT_FOUND",
        "nr:9=MESSAGE_NOT_FOUND",
    )
    assert hot == routed
    hot = answer(await client.get("/q/nh", params={"lease": "30", "ack": "other:1"}))
    assert hot == answer(await client.get("/q/nh", params={"lease": "30", "ack": "other:1", **ROUTER}))
    assert hot[0] == 400
