"""`--compat 2010` (issue 17): each reply the 2010 server gave, byte for byte where it had fixed bytes, against a
real server; and the default mode unchanged beside it. The 2010 shapes are read from gleicon/restmq's
src/restmq/web.py, core.py and dispatch.py; docs/compat.md has the table."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
import pytest
import websockets

from restmq.web.py2json import dumps
from tests.helpers.queues import add
from tests.helpers.server import ServeProcess, free_port, run_app

pytestmark = pytest.mark.integration

TEXT = "text/plain; charset=UTF-8"
FORM = {"content-type": "application/x-www-form-urlencoded"}


@pytest.fixture
async def compat(redis_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with run_app(redis_url, compat="2010") as base, httpx.AsyncClient(base_url=base, timeout=30) as client:
        yield client


@pytest.fixture
async def default(redis_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with run_app(redis_url) as base, httpx.AsyncClient(base_url=base, timeout=30) as client:
        yield client


async def backend(http: httpx.AsyncClient) -> str:
    """The "redis" field, the one part of these replies that names this server's backend."""
    redis: str = (await http.get("/stats/jobs")).json()["redis"]
    assert redis.startswith("<Redis Connection: ") and "@" not in redis
    return redis


# -- /p/<queue> -----------------------------------------------------------------------------------------------


async def test_policy_of_a_queue_never_used_is_unknown(compat: httpx.AsyncClient) -> None:
    response = await compat.get("/p/fresh")
    assert (response.status_code, response.content) == (200, b'{"queue": "fresh", "value": "unknown"}\r\n')
    assert response.headers["content-type"] == TEXT


async def test_setting_a_policy_answers_ok(compat: httpx.AsyncClient) -> None:
    response = await compat.post("/p/jobs", data={"policy": "roundrobin"})
    assert (response.status_code, response.content, response.headers["content-type"]) == (200, b"OK\r\n", TEXT)
    assert (await compat.get("/p/jobs")).content == b'{"queue": "jobs", "value": "roundrobin"}\r\n'


async def test_an_unknown_policy_answers_null_and_changes_nothing(compat: httpx.AsyncClient) -> None:
    response = await compat.post("/p/jobs", data={"policy": "random"})
    assert (response.status_code, response.content) == (200, b"null\r\n")
    assert (await compat.get("/p/jobs")).content == b'{"queue": "jobs", "value": "unknown"}\r\n'


async def test_policy_with_a_callback_is_wrapped_as_2010_wrapped_it(compat: httpx.AsyncClient) -> None:
    await add(compat, "jobs", "x")
    response = await compat.get("/p/jobs", params={"callback": "cb"})
    assert response.content == b'cb({"queue": "jobs", "value": "unknown"});\r\n'


# -- /control/<queue> -------------------------------------------------------------------------------------------


async def test_control_of_a_queue_shows_its_status_as_a_number(compat: httpx.AsyncClient) -> None:
    redis = await backend(compat)
    fresh = await compat.get("/control/fresh")
    status = b'{"queue": "fresh", "status": {"queue": "fresh", "status": null}, "redis": %s}\r\n'
    assert fresh.content == status % orjson.dumps(redis)
    assert fresh.headers["content-type"] == "application/json"
    await add(compat, "jobs", "x")
    started = await compat.get("/control/jobs")
    assert started.content == b'{"queue": "jobs", "status": {"queue": "jobs", "status": 1}, "redis": %s}\r\n' % (
        orjson.dumps(redis)
    )


async def test_stop_and_start_answer_the_new_status(compat: httpx.AsyncClient) -> None:
    stop = await compat.post("/control/jobs", data={"status": "stop"})
    assert (stop.status_code, stop.content) == (200, b'{"stat": {"queue": "jobs", "status": 0}}\r\n')
    assert stop.headers["content-type"] == TEXT
    assert (await compat.get("/control/jobs")).json()["status"] == {"queue": "jobs", "status": 0}
    start = await compat.post("/control/jobs", data={"status": "start"})
    assert start.content == b'{"stat": {"queue": "jobs", "status": 1}}\r\n'


async def test_a_bad_status_is_a_200_with_its_message(compat: httpx.AsyncClient) -> None:
    bad = await compat.post("/control/jobs", data={"status": "pause"})
    assert (bad.status_code, bad.content) == (200, b'{"stat": "invalid status: pause"}\r\n')
    missing = await compat.post("/control/jobs", headers=FORM, content=b"")
    assert (missing.status_code, missing.content) == (200, b'{"stat": "invalid status: None"}\r\n')
    hostile = await compat.post("/control/jobs", data={"status": "<script>alert(1)</script>"})
    assert hostile.content == b'{"stat": "invalid status: <script>alert(1)<\\/script>"}\r\n'
    assert hostile.headers["content-type"] == TEXT  # never served as HTML


async def test_control_post_with_a_callback_has_no_semicolon(compat: httpx.AsyncClient) -> None:
    response = await compat.post("/control/jobs", params={"callback": "cb"}, data={"status": "stop"})
    assert response.content == b'cb({"stat": {"queue": "jobs", "status": 0}})\r\n'


async def test_max_deliveries_still_answers_in_the_default_shape(compat: httpx.AsyncClient) -> None:
    response = await compat.post("/control/jobs", data={"max_deliveries": "3"})
    assert response.json() == {"queue": "jobs", "status": "start", "max_deliveries": 3}


async def test_control_of_all_queues_lists_each_status(compat: httpx.AsyncClient) -> None:
    await add(compat, "a", "x")
    await add(compat, "b", "x")
    await compat.post("/control/b", data={"status": "stop"})
    reply = (await compat.get("/control/")).json()
    assert reply["queues"] == {"a": {"queue": "a", "status": 1}, "b": {"queue": "b", "status": 0}}
    assert reply["count"] == 2


# -- /stats/ ---------------------------------------------------------------------------------------------------


async def test_stats_of_a_queue(compat: httpx.AsyncClient) -> None:
    await add(compat, "jobs", "1")
    await add(compat, "jobs", "2")
    redis = await backend(compat)
    response = await compat.get("/stats/jobs")
    assert response.content == b'{"queue": "jobs", "redis": %s, "len": 2}' % orjson.dumps(redis)
    assert response.headers["content-type"] == "application/json"
    wrapped = await compat.get("/stats/jobs", params={"callback": "cb"})
    assert wrapped.content == b'cb({"queue": "jobs", "redis": %s, "len": 2})' % orjson.dumps(redis)


async def test_stats_of_a_queue_named_stream_unless_an_event_stream_is_asked_for(compat: httpx.AsyncClient) -> None:
    await add(compat, "stream", "1")
    plain = await compat.get("/stats/stream")
    assert plain.content == b'{"queue": "stream", "redis": %s, "len": 1}' % orjson.dumps(await backend(compat))
    async with compat.stream("GET", "/stats/stream", headers={"accept": "text/event-stream"}) as events:
        assert events.headers["content-type"].startswith("text/event-stream")
        async for line in events.aiter_lines():
            if line.startswith("data:"):
                assert orjson.loads(line[5:])["queues"][0]["queue"] == "stream"  # the default mode's event
                break


async def test_stats_of_all_queues(compat: httpx.AsyncClient) -> None:
    await add(compat, "jobs", "1")
    await add(compat, "mail", "1")
    await compat.post("/control/mail", data={"status": "stop"})
    await compat.post("/p/mail", data={"policy": "roundrobin"})
    response = await compat.get("/stats/")
    queues = {
        "jobs": {"name": "jobs", "len": 1, "status": 1, "policy": ""},  # its policy never set
        "mail": {"name": "mail", "len": 1, "status": "", "policy": 2},
    }
    expected = dumps({"queues": queues, "redis": await backend(compat), "count": 2})
    assert response.text == expected
    assert expected.startswith('{"count": 2, "queues": {') and '{"status": 1, "policy": "", "name": "jobs"' in expected
    assert response.headers["content-type"] == "application/json"


# -- POST /queue ----------------------------------------------------------------------------------------------


async def command(http: httpx.AsyncClient, body: str) -> httpx.Response:
    return await http.post("/queue", data={"body": body})


async def test_an_unknown_command_is_a_null_resultset(compat: httpx.AsyncClient) -> None:
    response = await command(compat, '{"cmd": "peek", "queue": "jobs"}')
    assert (response.status_code, response.content) == (200, b'{"error": "null resultset"}')
    assert response.headers["content-type"] == TEXT


async def test_command_errors_are_200_with_the_error(compat: httpx.AsyncClient) -> None:
    empty = await command(compat, '{"cmd": "take", "queue": "jobs"}')
    assert (empty.status_code, empty.content) == (200, b'{"error": "empty queue"}')
    assert empty.headers["content-type"] == "application/json"
    missing = await command(compat, '{"cmd": "add", "queue": "jobs"}')
    assert (missing.status_code, missing.json()) == (200, {"error": "missing field 'value'"})
    bad_name = await command(compat, '{"cmd": "get", "queue": "a b"}')
    assert bad_name.status_code == 200 and bad_name.json()["error"].startswith("invalid queue name")


async def test_hostile_commands_get_answers_and_the_server_stays_up(compat: httpx.AsyncClient) -> None:
    assert (await command(compat, '{"cmd": ["add"], "queue": "jobs"}')).content == b'{"error": "null resultset"}'
    assert (await command(compat, '{"cmd": {"a": 1}}')).content == b'{"error": "null resultset"}'
    typed = await command(compat, '{"cmd": "add", "queue": 5, "value": "v"}')
    assert (typed.status_code, typed.json()) == (200, {"error": "field 'queue' must be a string, not a number"})
    huge = await command(compat, '{"cmd": "take", "queue": "' + "q" * 5000 + '"}')
    assert huge.status_code == 200 and "invalid queue name" in huge.json()["error"]
    raw = await compat.post("/queue", content=b"\xff\xfe", headers={"content-type": "application/json"})
    assert raw.status_code == 400
    assert (await compat.get("/health")).status_code == 200


async def test_malformed_json_is_still_a_400(compat: httpx.AsyncClient) -> None:
    for body in ("{not json", "[1]", '{"queue": "jobs"}'):
        response = await command(compat, body)
        assert response.status_code == 400, body
        assert response.json()["error"] == "Malformed JSON. Invalid format."


async def test_commands_answer_the_2010_shapes(compat: httpx.AsyncClient) -> None:
    added = await command(compat, '{"cmd": "add", "queue": "jobs", "value": "hello"}')
    assert added.content == b'{"queue": "jobs", "value": "hello", "key": "jobs:1"}'
    assert added.headers["content-type"] == "application/json"
    got = await command(compat, '{"cmd": "get", "queue": "jobs"}')
    assert got.content == b'{"queue": "jobs", "count": 1, "value": "hello", "key": "jobs:1"}'
    taken = await command(compat, '{"cmd": "take", "queue": "jobs"}')
    assert taken.content == b'{"queue": "jobs", "value": "hello", "key": "jobs:1"}'
    deleted = await command(compat, '{"cmd": "del", "queue": "jobs", "key": "jobs:1"}')
    assert deleted.content == b'{"queue": "jobs", "deleted": false, "key": "jobs:1"}'


# -- redirects, pages, JSONP --------------------------------------------------------------------------------------


async def test_index_and_queue_redirect_to_the_2010_pages(compat: httpx.AsyncClient) -> None:
    index = await compat.get("/")
    assert (index.status_code, index.headers["location"]) == (302, "/static/index.html")
    help_page = await compat.get("/queue")
    assert (help_page.status_code, help_page.headers["location"]) == (302, "/static/help.html")
    for page in ("/static/index.html", "/static/help.html"):
        response = await compat.get(page)
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
        assert "RestMQ" in response.text


async def test_index_with_a_queue_still_pops(compat: httpx.AsyncClient) -> None:
    await add(compat, "jobs", "hello")
    assert (await compat.get("/", params={"queue": "jobs"})).json()["value"] == "hello"
    assert (await compat.get("/", params={"queue": "jobs"})).status_code == 404


async def test_jsonp_is_on(compat: httpx.AsyncClient) -> None:
    await add(compat, "jobs", "hello")
    response = await compat.get("/q/jobs", params={"callback": "cb"})
    assert response.text == 'cb({"key":"jobs:1","value":"hello","count":1});\n'
    assert (await compat.get("/q/jobs", params={"callback": "<x>"})).status_code == 400


async def test_the_api_description_is_the_default_modes(compat: httpx.AsyncClient, default: httpx.AsyncClient) -> None:
    assert (await compat.get("/openapi.json")).json() == (await default.get("/openapi.json")).json()


# -- /ws/<queue> ----------------------------------------------------------------------------------------------


async def test_websocket_echoes_text_that_is_not_a_command(compat: httpx.AsyncClient) -> None:
    url = str(compat.base_url).replace("http", "ws", 1) + "/ws/test"
    async with websockets.connect(url) as ws:
        await ws.send("hello from the browser")
        assert await ws.recv() == "hello from the browser"
        await ws.send('{"no": "cmd"}')
        assert await ws.recv() == '{"no": "cmd"}'
        await ws.send('{"cmd": "add", "queue": "other", "value": "v"}')
        assert orjson.loads(await ws.recv()) == {"queue": "other", "value": "v", "key": "other:1"}
        await add(compat, "test", "pushed")
        assert orjson.loads(await ws.recv()) == {"key": "test:1", "value": "pushed"}
        await ws.send('{"cmd": "bogus"}')  # a command, if not a known one: an error frame, as in the default mode
        assert orjson.loads(await ws.recv())["code"] == "PARAMETER_INVALID"
        await ws.send(b"\x00binary")  # 2010 took text frames only: binary ones are commands or errors, never echoed
        assert orjson.loads(await ws.recv())["code"] == "JSON_INVALID"
        await ws.send("still here")
        assert await ws.recv() == "still here"


# -- the default mode, unchanged --------------------------------------------------------------------------------------


async def test_default_mode_keeps_its_shapes(default: httpx.AsyncClient) -> None:
    assert (await default.post("/p/jobs", data={"policy": "roundrobin"})).json() == {
        "queue": "jobs",
        "value": "roundrobin",
    }
    assert (await default.get("/control/jobs")).json()["status"] == "start"
    assert (await default.get("/")).status_code == 200
    assert (await default.get("/queue")).status_code == 405
    assert (await default.get("/control/")).status_code == 404
    assert (await default.get("/static/index.html")).status_code == 404
    unknown = await command(default, '{"cmd": "peek", "queue": "jobs"}')
    assert unknown.status_code == 400
    assert (await default.get("/stats/jobs", params={"callback": "cb"})).status_code == 400


async def test_default_websocket_answers_chat_with_an_error_frame(default: httpx.AsyncClient) -> None:
    url = str(default.base_url).replace("http", "ws", 1) + "/ws/test"
    async with websockets.connect(url) as ws:
        await ws.send("hello")
        assert orjson.loads(await ws.recv())["code"] == "JSON_INVALID"


# -- the option ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("server", ["uvicorn", "granian"])
def test_the_config_file_turns_it_on(redis_url: str, tmp_path: Path, server: str) -> None:
    """On granian the settings reach the worker process through the environment: compat with them."""
    config = tmp_path / "restmq.toml"
    config.write_text(f'compat = "2010"\nredis = "{redis_url}"\nserver = "{server}"\n')
    process = ServeProcess(["--config", str(config)], free_port(), tmp_path / "serve.log")
    try:
        process.wait_ready()
        index = httpx.get(process.url + "/")
        assert (index.status_code, index.headers["location"]) == (302, "/static/index.html")
        assert httpx.post(process.url + "/p/jobs", data={"policy": "broadcast"}).content == b"OK\r\n"
    finally:
        process.stop()


def test_the_environment_turns_it_on_and_other_values_are_refused(tmp_path: Path) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RESTMQ_")}
    shown = subprocess.run(
        [sys.executable, "-m", "restmq", "config"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**clean, "RESTMQ_COMPAT": "2010", "COLUMNS": "200"},
    )
    assert any("--compat" in line and "2010" in line and "environment" in line for line in shown.stdout.splitlines())
    refused = subprocess.run(
        [sys.executable, "-m", "restmq", "serve", "--compat", "2011", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean,
    )
    assert refused.returncode == 2 and "'2011' is not '2010'" in refused.stderr
