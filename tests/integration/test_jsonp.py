"""With --jsonp, callback=<name> wraps JSON replies as JSONP; a hostile name is refused before anything
happens. (Without --jsonp, any callback= is a 400: tests/integration/test_security_browser.py.)"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from tests.helpers.queues import add, drain, length
from tests.helpers.server import run_app

pytestmark = pytest.mark.integration


@pytest.fixture
async def http(redis_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a server started with --jsonp."""
    async with run_app(redis_url, jsonp=True) as base, httpx.AsyncClient(base_url=base, timeout=30) as client:
        yield client


HOSTILE = ["alert(1)//", "a b", "<script>", "x" * 65, "1cb", "", "cb;alert(1)", "a-b", "cb\n"]


def unwrap(response: httpx.Response, name: str) -> Any:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/javascript")
    text = response.text.rstrip("\n")
    assert text.startswith(f"{name}(") and text.endswith(");"), text
    return orjson.loads(text[len(name) + 1 : -2])


async def test_get_is_wrapped(http: httpx.AsyncClient) -> None:
    await add(http, "jobs", "hello")
    response = await http.get("/q/jobs", params={"callback": "cb"})
    assert response.text == 'cb({"key":"jobs:1","value":"hello","count":1});\n'
    assert response.headers["content-type"].startswith("application/javascript")


@pytest.mark.parametrize("name", ["cb", "jQuery1_2", "$", "_", "ns.handlers.onMessage", "A" + "b" * 63])
async def test_every_valid_name_is_accepted(http: httpx.AsyncClient, name: str) -> None:
    await add(http, "jobs", "x")
    assert unwrap(await http.get("/q/jobs", params={"callback": name}), name)["value"] == "x"


async def test_json_routes_are_wrapped(http: httpx.AsyncClient) -> None:
    await add(http, "jobs", "a")
    await add(http, "jobs", "b")
    cb = {"callback": "cb"}
    assert unwrap(await http.get("/q/", params=cb), "cb") == {"queues": ["jobs"], "count": 1}
    assert unwrap(await http.get("/stats/jobs", params=cb), "cb")["length"] == 2
    assert unwrap(await http.get("/stats/", params=cb), "cb")["count"] == 1
    assert unwrap(await http.get("/p/jobs", params=cb), "cb") == {"queue": "jobs", "value": "broadcast"}
    assert unwrap(await http.get("/control/jobs", params=cb), "cb")["status"] == "start"
    peek = unwrap(await http.get("/peek/jobs", params=cb), "cb")
    assert [m["value"] for m in peek["messages"]] == ["b", "a"] and peek["stats"]["delivered"] == 0
    assert unwrap(await http.get("/", params={"queue": "jobs", **cb}), "cb")["value"] == "a"
    assert unwrap(await http.get("/q/jobs", params={"count": 5, **cb}), "cb") == [
        {"key": "jobs:2", "value": "b", "count": 1}
    ]
    assert unwrap(await http.post("/q/jobs", params=cb, json=["c"]), "cb") == {"keys": ["jobs:3"]}
    assert unwrap(await http.post("/queue", params=cb, json={"cmd": "take", "queue": "jobs"}), "cb")["value"] == "c"
    assert unwrap(await http.delete("/q/jobs", params=cb), "cb") == {"queue": "jobs", "status": 0}


async def test_the_queue_list_is_json_not_html_when_a_callback_is_given(http: httpx.AsyncClient) -> None:
    response = await http.get("/q/", params={"callback": "cb"}, headers={"Accept": "text/html"})
    assert unwrap(response, "cb") == {"queues": [], "count": 0}


@pytest.mark.parametrize("name", HOSTILE)
async def test_hostile_names_are_400(http: httpx.AsyncClient, name: str) -> None:
    for path in ("/stats/", "/peek/jobs"):
        response = await http.get(path, params={"callback": name})
        assert response.status_code == 400
        assert response.headers["content-type"] == "application/json"
        assert response.json()["code"] == "CALLBACK_INVALID"
        assert name not in response.text or name == ""  # never reflected


# The parameter spelled plainly, and percent-encoded so that a naive byte search for "callback=" misses it.
QUERIES = ["callback=alert(1)//", "call%62ack=alert(1)//", "callback=ok&callback=<script>"]


@pytest.mark.parametrize("query", QUERIES)
async def test_bad_callback_does_not_consume(http: httpx.AsyncClient, query: str) -> None:
    await add(http, "jobs", "precious")
    for path in ("/q/jobs", "/q/jobs?count=5", "/q/jobs?lease=30", "/?queue=jobs"):
        sep = "&" if "?" in path else "?"
        response = await http.get(f"{path}{sep}{query}")
        assert response.status_code == 400, (path, response.text)
        assert response.json()["code"] == "CALLBACK_INVALID"
    take = await http.post(f"/queue?{query}", json={"cmd": "take", "queue": "jobs"})
    assert take.status_code == 400
    assert [m["value"] for m in await drain(http, "jobs")] == ["precious"]


@pytest.mark.parametrize("query", QUERIES)
async def test_bad_callback_does_not_add_purge_or_change_settings(http: httpx.AsyncClient, query: str) -> None:
    await add(http, "jobs", "precious")
    refused = [
        await http.post(f"/q/jobs?{query}", data={"value": "dup"}),
        await http.post(f"/q/jobs?{query}", json=["dup"]),
        await http.post(f"/?{query}", data={"queue": "jobs", "value": "dup"}),
        await http.post(f"/queue?{query}", json={"cmd": "add", "queue": "jobs", "value": "dup"}),
        await http.delete(f"/q/jobs?{query}"),
        await http.post(f"/p/jobs?{query}", data={"policy": "roundrobin"}),
        await http.post(f"/control/jobs?{query}", data={"status": "stop"}),
    ]
    assert [r.status_code for r in refused] == [400] * len(refused)
    assert await length(http, "jobs") == 1
    assert (await http.get("/p/jobs")).json()["value"] == "broadcast"
    assert (await http.get("/control/jobs")).json()["status"] == "start"
