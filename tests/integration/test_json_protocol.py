"""POST /queue: the JSON protocol, from a form field (body= or msg=) or a raw JSON body (SPEC section 3)."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from tests.helpers.queues import add, drain

pytestmark = pytest.mark.integration


async def command(http: httpx.AsyncClient, cmd: dict[str, Any]) -> dict[str, Any]:
    response = await http.post("/queue", json=cmd)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    reply: dict[str, Any] = response.json()
    return reply


@pytest.mark.parametrize("field", ["body", "msg"])
async def test_add_from_a_form_field(http: httpx.AsyncClient, field: str) -> None:
    raw = orjson.dumps({"cmd": "add", "queue": "jobs", "value": "hello"}).decode()
    response = await http.post("/queue", data={field: raw})
    assert response.status_code == 200
    assert response.json() == {"queue": "jobs", "value": "hello", "key": "jobs:1"}
    assert (await http.get("/q/jobs")).json()["value"] == "hello"


async def test_add_from_a_raw_json_body(http: httpx.AsyncClient) -> None:
    assert await command(http, {"cmd": "add", "queue": "jobs", "value": "hi"}) == {
        "queue": "jobs",
        "value": "hi",
        "key": "jobs:1",
    }


async def test_add_a_json_value_stores_its_text(http: httpx.AsyncClient) -> None:
    reply = await command(http, {"cmd": "add", "queue": "jobs", "value": {"n": [1, 2]}})
    assert reply == {"queue": "jobs", "value": {"n": [1, 2]}, "key": "jobs:1"}
    assert (await http.get("/q/jobs")).json()["value"] == '{"n":[1,2]}'


async def test_get_is_a_soft_get(http: httpx.AsyncClient) -> None:
    await add(http, "jobs", "stays")
    await add(http, "jobs", "behind")
    for count in (1, 2, 3):
        reply = await command(http, {"cmd": "get", "queue": "jobs"})
        assert reply == {"queue": "jobs", "value": "stays", "key": "jobs:1", "count": count}
    assert (await http.get("/stats/jobs")).json()["length"] == 2
    assert (await http.get("/q/jobs")).json() == {"key": "jobs:1", "value": "stays", "count": 4}


async def test_take_gets_and_deletes(http: httpx.AsyncClient) -> None:
    await add(http, "jobs", "a")
    await add(http, "jobs", "b")
    assert await command(http, {"cmd": "take", "queue": "jobs"}) == {
        "queue": "jobs",
        "value": "a",
        "key": "jobs:1",
        "count": 1,
    }
    assert [m["value"] for m in await drain(http, "jobs")] == ["b"]


async def test_del_removes_a_message_wherever_it_is(http: httpx.AsyncClient) -> None:
    await add(http, "jobs", "a")
    await add(http, "jobs", "b")
    await add(http, "jobs", "c")
    assert await command(http, {"cmd": "del", "queue": "jobs", "key": "jobs:2"}) == {
        "queue": "jobs",
        "key": "jobs:2",
        "deleted": True,
    }
    assert (await command(http, {"cmd": "del", "queue": "jobs", "key": "jobs:2"}))["deleted"] is False
    assert (await command(http, {"cmd": "del", "queue": "jobs", "key": "jobs:99"}))["deleted"] is False
    assert [m["value"] for m in await drain(http, "jobs")] == ["a", "c"]


async def test_del_reaches_delayed_and_leased_messages(http: httpx.AsyncClient) -> None:
    later = await add(http, "jobs", "later", delay="60")
    leased = await add(http, "jobs", "leased")
    assert (await http.get("/q/jobs?lease=60")).json()["key"] == leased
    for key in (later, leased):
        assert (await command(http, {"cmd": "del", "queue": "jobs", "key": key}))["deleted"] is True
    stats = (await http.get("/stats/jobs")).json()
    assert (stats["length"], stats["delayed"], stats["leased"]) == (0, 0, 0)


@pytest.mark.parametrize("cmd", ["get", "take"])
async def test_empty_queue_answers_an_error_object(http: httpx.AsyncClient, cmd: str) -> None:
    reply = await command(http, {"cmd": cmd, "queue": "nothing"})
    assert reply["error"] == "empty queue"
    assert reply["code"] == "QUEUE_EMPTY"


@pytest.mark.parametrize(
    "raw", [b"{not json", b"", b'{"cmd": "add", "queue": "jobs", "value": "x"', b"[1, 2]", b'"take"', b"null"]
)
async def test_malformed_json_is_400_json_invalid(http: httpx.AsyncClient, raw: bytes) -> None:
    response = await http.post("/queue", content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["code"] == "JSON_INVALID"


async def test_malformed_json_in_a_form_field_is_400(http: httpx.AsyncClient) -> None:
    response = await http.post("/queue", data={"body": "{'cmd': 'take'}"})
    assert response.status_code == 400
    assert response.json()["code"] == "JSON_INVALID"


@pytest.mark.parametrize(
    "cmd",
    [
        {"cmd": "add", "queue": "jobs"},
        {"cmd": "add", "value": "x"},
        {"cmd": "add", "queue": None, "value": "x"},
        {"cmd": "take"},
        {"cmd": "del", "queue": "jobs"},
    ],
)
async def test_missing_fields_are_400_field_missing(http: httpx.AsyncClient, cmd: dict[str, Any]) -> None:
    response = await http.post("/queue", json=cmd)
    assert response.status_code == 400
    assert response.json()["code"] == "FIELD_MISSING"


async def test_a_form_without_body_is_400_field_missing(http: httpx.AsyncClient) -> None:
    response = await http.post("/queue", data={"other": "x"})
    assert response.status_code == 400
    assert response.json()["code"] == "FIELD_MISSING"


@pytest.mark.parametrize("cmd", ["pop", "ADD", "", None, 1])
async def test_unknown_cmd_is_400(http: httpx.AsyncClient, cmd: object) -> None:
    response = await http.post("/queue", json={"cmd": cmd, "queue": "jobs", "value": "x"})
    assert response.status_code == 400
    assert response.json()["code"] == "PARAMETER_INVALID"
    assert "unknown cmd" in response.json()["error"]
    assert (await http.get("/q/jobs")).status_code == 204


@pytest.mark.parametrize(
    "cmd",
    [
        {"cmd": "add", "queue": 5, "value": "x"},
        {"cmd": "add", "queue": "jobs", "value": "x", "priority": "9"},
        {"cmd": "add", "queue": "jobs", "value": "x", "priority": True},
        {"cmd": "add", "queue": "jobs", "value": "x", "priority": 10},
        {"cmd": "add", "queue": "jobs", "value": "x", "delay": -1},
        {"cmd": "add", "queue": "jobs", "value": "x", "ttl": "soon"},
        {"cmd": "add", "queue": "jobs", "value": "x", "id": 5},
        {"cmd": "add", "queue": "jobs", "value": "x", "id": ["a"]},
        {"cmd": "del", "queue": "jobs", "key": 1},
        {"cmd": "del", "queue": "jobs", "key": "other:1"},
        {"cmd": "del", "queue": "jobs", "key": "jobs:²"},
    ],
)
async def test_wrongly_typed_fields_are_400_not_500(http: httpx.AsyncClient, cmd: dict[str, Any]) -> None:
    response = await http.post("/queue", json=cmd)
    assert response.status_code == 400
    assert response.json()["code"] == "PARAMETER_INVALID"
    assert (await http.get("/q/jobs")).status_code == 204


async def test_invalid_queue_name_is_400(http: httpx.AsyncClient) -> None:
    response = await http.post("/queue", json={"cmd": "add", "queue": "no spaces", "value": "x"})
    assert response.status_code == 400
    assert response.json()["code"] == "QUEUE_NAME_INVALID"


async def test_add_with_an_id_is_idempotent(http: httpx.AsyncClient) -> None:
    cmd = {"cmd": "add", "queue": "jobs", "value": "once", "id": "req-1"}
    first = await command(http, cmd)
    second = await command(http, cmd)
    assert first["key"] == second["key"] == "jobs:1"
    assert len(await drain(http, "jobs")) == 1


async def test_add_options_apply(http: httpx.AsyncClient) -> None:
    await command(http, {"cmd": "add", "queue": "jobs", "value": "low"})
    await command(http, {"cmd": "add", "queue": "jobs", "value": "high", "priority": 9})
    await command(http, {"cmd": "add", "queue": "jobs", "value": "later", "delay": 60})
    assert [m["value"] for m in await drain(http, "jobs")] == ["high", "low"]
    assert (await http.get("/stats/jobs")).json()["delayed"] == 1


async def test_stopped_queue_answers_queue_stopped(http: httpx.AsyncClient) -> None:
    await add(http, "jobs", "held")
    await http.post("/control/jobs", data={"status": "stop"})
    reply = await command(http, {"cmd": "take", "queue": "jobs"})
    assert reply["code"] == "QUEUE_STOPPED"
    assert (await command(http, {"cmd": "add", "queue": "jobs", "value": "more"}))["key"] == "jobs:2"
    assert (await http.get("/stats/jobs")).json()["length"] == 2
