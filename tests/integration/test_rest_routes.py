"""The original RestMQ routes (SPEC section 3): exact request and response shapes."""

from __future__ import annotations

import httpx
import pytest
import redis

from restmq.storage import keys
from tests.helpers.queues import add, drain, stored_keys

pytestmark = pytest.mark.integration


async def test_post_value_answers_the_key_as_text(http: httpx.AsyncClient) -> None:
    first = await http.post("/q/jobs", data={"value": "one"})
    second = await http.post("/q/jobs", data={"value": "two"})
    assert first.status_code == 200
    assert first.headers["content-type"].startswith("text/plain")
    assert first.text == "jobs:1\r\n"
    assert second.text == "jobs:2\r\n"


async def test_post_msg_is_an_alias_of_value(http: httpx.AsyncClient) -> None:
    response = await http.post("/q/jobs", data={"msg": "legacy"})
    assert response.status_code == 200
    assert response.text == "jobs:1\r\n"
    assert (await http.get("/q/jobs")).json() == {"key": "jobs:1", "value": "legacy", "count": 1}


async def test_post_multipart_form_works_too(http: httpx.AsyncClient) -> None:
    response = await http.post("/q/jobs", files={"value": (None, "from a form")})
    assert response.text == "jobs:1\r\n"
    assert (await http.get("/q/jobs")).json()["value"] == "from a form"


async def test_get_pops_the_oldest_then_204(http: httpx.AsyncClient) -> None:
    await add(http, "jobs", "a")
    await add(http, "jobs", "b")
    first = await http.get("/q/jobs")
    assert first.status_code == 200
    assert first.headers["content-type"] == "application/json"
    assert first.json() == {"key": "jobs:1", "value": "a", "count": 1}
    assert (await http.get("/q/jobs")).json() == {"key": "jobs:2", "value": "b", "count": 1}
    empty = await http.get("/q/jobs")
    assert empty.status_code == 204
    assert empty.content == b""


async def test_get_of_a_never_used_queue_is_204(http: httpx.AsyncClient) -> None:
    assert (await http.get("/q/nothing-here")).status_code == 204


async def test_values_round_trip_unchanged(http: httpx.AsyncClient) -> None:
    values = ["", " spaced ", "line1\r\nline2", '{"json": [1, 2]}', "ünïcødé ✓ 🚀", "a=b&c=d", "x" * 100_000]
    for value in values:
        await add(http, "raw", value)
    assert [m["value"] for m in await drain(http, "raw")] == values


async def test_list_queues_as_json(http: httpx.AsyncClient) -> None:
    await add(http, "b-queue", "x")
    await add(http, "a-queue", "x")
    response = await http.get("/q/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"queues": ["a-queue", "b-queue"], "count": 2, "next": None}  # one page: the last
    assert (await http.get("/q")).json() == response.json()


async def test_list_queues_as_html_for_browsers(http: httpx.AsyncClient) -> None:
    await add(http, "jobs", "x")
    browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    response = await http.get("/q/", headers={"Accept": browser})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert '<a href="/j/jobs">jobs</a>' in response.text
    json_first = await http.get("/q/", headers={"Accept": "application/json, text/html"})
    assert json_first.json()["queues"] == ["jobs"]


async def test_delete_purges_and_reports_the_number_removed(http: httpx.AsyncClient) -> None:
    for i in range(3):
        await add(http, "jobs", str(i))
    response = await http.delete("/q/jobs")
    assert response.status_code == 200
    assert response.json() == {"queue": "jobs", "status": 3}
    assert (await http.get("/q/jobs")).status_code == 204
    assert "jobs" not in (await http.get("/q/")).json()["queues"]
    assert (await http.delete("/q/jobs")).json() == {"queue": "jobs", "status": 0}


async def test_delete_leaves_only_the_meta_hash_in_redis(http: httpx.AsyncClient, redis_client: redis.Redis) -> None:
    await add(http, "jobs", "plain")
    await add(http, "jobs", "urgent", priority="9")
    await add(http, "jobs", "later", delay="60")
    await add(http, "jobs", "mortal", ttl="60")
    await add(http, "jobs", "leased")
    assert (await http.get("/q/jobs?lease=60")).status_code == 200
    assert len(stored_keys(redis_client, "jobs")) > 5
    assert (await http.delete("/q/jobs")).json() == {"queue": "jobs", "status": 5}
    left = stored_keys(redis_client, "jobs")
    # besides the meta hash, only the replies of the calls just made, kept 30 s and more for a retry to replay
    operations = {key for key in left if key.startswith("rmq:{jobs}:ops:")}
    assert left - operations == {"rmq:{jobs}:meta"}
    assert all(0 < int(redis_client.pttl(key)) <= 75_000 for key in operations)
    assert redis_client.zscore(keys.QUEUES, "jobs") is None  # unlisted


async def test_a_purged_queue_comes_back_with_new_keys(http: httpx.AsyncClient) -> None:
    await add(http, "jobs", "old")
    await http.delete("/q/jobs")
    assert await add(http, "jobs", "new") == "jobs:2"  # keys are never reused
    assert (await http.get("/q/")).json()["queues"] == ["jobs"]
    assert (await http.get("/q/jobs")).json()["value"] == "new"


async def test_index_post_adds(http: httpx.AsyncClient) -> None:
    response = await http.post("/", data={"queue": "jobs", "value": "via index"})
    assert response.status_code == 200
    assert response.text == "jobs:1\r\n"
    assert (await http.post("/", data={"queue": "jobs", "msg": "alias"})).text == "jobs:2\r\n"


async def test_index_get_pops_and_404s_when_empty(http: httpx.AsyncClient) -> None:
    await add(http, "jobs", "a")
    got = await http.get("/", params={"queue": "jobs"})
    assert got.status_code == 200
    assert got.json() == {"key": "jobs:1", "value": "a", "count": 1}
    empty = await http.get("/", params={"queue": "jobs"})
    assert empty.status_code == 404
    assert empty.json()["code"] == "QUEUE_EMPTY"


async def test_index_get_without_queue_is_the_dashboard(http: httpx.AsyncClient) -> None:
    empty = await http.get("/")
    assert empty.status_code == 200
    assert empty.headers["content-type"].startswith("text/html")
    assert "No queues yet" in empty.text
    await add(http, "jobs", "x")
    page = (await http.get("/")).text
    assert '<a href="/j/jobs">jobs</a>' in page
    assert "<td class=num>1</td>" in page


async def test_policy_defaults_to_broadcast(http: httpx.AsyncClient) -> None:
    response = await http.get("/p/jobs")
    assert response.status_code == 200
    assert response.json() == {"queue": "jobs", "value": "broadcast"}


async def test_policy_can_be_set_either_way(http: httpx.AsyncClient) -> None:
    set_rr = await http.post("/p/jobs", data={"policy": "roundrobin"})
    assert set_rr.json() == {"queue": "jobs", "value": "roundrobin"}
    assert (await http.get("/p/jobs")).json()["value"] == "roundrobin"
    assert (await http.post("/p/jobs", data={"policy": "broadcast"})).json()["value"] == "broadcast"
    assert (await http.get("/stats/jobs")).json()["policy"] == "broadcast"


@pytest.mark.parametrize("fields", [{"policy": "fanout"}, {"policy": ""}, {}])
async def test_bad_policy_is_400_and_changes_nothing(http: httpx.AsyncClient, fields: dict[str, str]) -> None:
    await http.post("/p/jobs", data={"policy": "roundrobin"})
    response = await http.post("/p/jobs", data=fields)
    assert response.status_code == 400
    assert response.json()["code"] in ("PARAMETER_INVALID", "FIELD_MISSING")
    assert (await http.get("/p/jobs")).json()["value"] == "roundrobin"


async def test_control_defaults_to_start(http: httpx.AsyncClient) -> None:
    response = await http.get("/control/jobs")
    assert response.status_code == 200
    assert response.json()["queue"] == "jobs"
    assert response.json()["status"] == "start"


async def test_stop_pauses_consumers_but_not_producers(http: httpx.AsyncClient) -> None:
    await add(http, "jobs", "before")
    stopped = await http.post("/control/jobs", data={"status": "stop"})
    assert stopped.json()["status"] == "stop"
    assert (await http.get("/control/jobs")).json()["status"] == "stop"
    await add(http, "jobs", "during")
    paused = await http.get("/q/jobs")
    assert paused.status_code == 204
    assert paused.headers["X-RestMQ-Status"] == "stop"
    assert (await http.get("/q/jobs?count=5")).headers["X-RestMQ-Status"] == "stop"
    assert (await http.get("/stats/jobs")).json()["length"] == 2
    assert (await http.post("/control/jobs", data={"status": "start"})).json()["status"] == "start"
    assert [m["value"] for m in await drain(http, "jobs")] == ["before", "during"]


async def test_an_empty_running_queue_has_no_stop_header(http: httpx.AsyncClient) -> None:
    assert "X-RestMQ-Status" not in (await http.get("/q/jobs")).headers


async def test_bad_control_status_is_400(http: httpx.AsyncClient) -> None:
    response = await http.post("/control/jobs", data={"status": "pause"})
    assert response.status_code == 400
    assert response.json()["code"] == "PARAMETER_INVALID"
    assert (await http.post("/control/jobs", data={})).json()["code"] == "FIELD_MISSING"
    assert (await http.get("/control/jobs")).json()["status"] == "start"


async def test_stats_of_one_queue(http: httpx.AsyncClient) -> None:
    await add(http, "jobs", "a")
    await add(http, "jobs", "b")
    await http.get("/q/jobs")
    stats = (await http.get("/stats/jobs")).json()
    assert stats["queue"] == "jobs"
    assert stats["length"] == 1
    assert stats["status"] == "start"
    assert stats["policy"] == "broadcast"
    assert stats["consumers"] == 0
    assert stats["added"] == 2
    assert stats["delivered"] == 1


async def test_stats_of_all_queues(http: httpx.AsyncClient) -> None:
    await add(http, "a", "x")
    await add(http, "b", "x")
    await add(http, "b", "y")
    response = await http.get("/stats/")
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["count"] == 2
    assert {s["queue"]: s["length"] for s in body["queues"]} == {"a": 1, "b": 2}
    assert (await http.get("/stats")).json() == body


async def test_jobs_page_shows_the_newest_items_escaped(http: httpx.AsyncClient) -> None:
    await add(http, "jobs", "<script>alert('x')</script>")
    await add(http, "jobs", "a & b")
    page = await http.get("/j/jobs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "<script>alert" not in page.text
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page.text
    assert "a &amp; b" in page.text
    assert page.text.index("jobs:2") < page.text.index("jobs:1")  # newest first
    assert "ready <b>2</b>" in page.text


async def test_jobs_page_limit(http: httpx.AsyncClient) -> None:
    for i in range(5):
        await add(http, "jobs", f"item-{i}")
    page = (await http.get("/j/jobs", params={"limit": 2})).text
    assert "item-4" in page and "item-3" in page and "item-2" not in page
    assert (await http.get("/j/jobs", params={"limit": 0})).status_code == 400


async def test_health_and_ready(http: httpx.AsyncClient) -> None:
    health = await http.get("/health")
    assert health.status_code == 200
    assert health.json() == {"status": "ok"}
    ready = await http.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"


async def test_head_tells_whether_a_message_is_ready_without_taking_it(http: httpx.AsyncClient) -> None:
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    assert (await http.request("HEAD", "/q/peeked", headers=form, content=b"value=x")).status_code == 204
    assert (await http.head("/q/peeked")).status_code == 204  # a HEAD with a form added nothing either
    await add(http, "peeked", "still here")
    for _ in range(3):
        assert (await http.head("/q/peeked")).status_code == 200
    assert (await http.get("/q/peeked")).json()["value"] == "still here"
    assert (await http.head("/q/peeked")).status_code == 204
