"""COMET, SSE and WebSocket on one server: wire formats, backlog, live delivery, SSE resume, WS commands."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.helpers.queues import add, stats
from tests.helpers.server import run_app
from tests.helpers.streams import CometReader, comet, sse, wait_consumers, ws, ws_url
from tests.helpers.wait import wait_for

pytestmark = pytest.mark.integration


def comet_line(key: str, value: str) -> bytes:
    return orjson.dumps({"key": key, "value": value}) + b"\r\n"


# -- COMET ------------------------------------------------------------------------------------


@pytest.fixture
async def jsonp_server(redis_url: str) -> AsyncIterator[str]:
    """A server started with --jsonp (JSONP is off by default)."""
    async with run_app(redis_url, jsonp=True) as base:
        yield base


async def test_comet_delivers_backlog_on_connect_then_live_messages(server: str, http: httpx.AsyncClient) -> None:
    for value in ("a", "b", "c"):
        await add(http, "cq", value, base=server)
    async with comet(server, "cq") as reader:
        await reader.wait_count(3)
        assert bytes(reader.raw) == comet_line("cq:1", "a") + comet_line("cq:2", "b") + comet_line("cq:3", "c")
        await add(http, "cq", "live é", base=server)
        await reader.wait_count(4)
        assert reader.messages[3] == {"key": "cq:4", "value": "live é"}
        assert reader.raw.endswith(comet_line("cq:4", "live é"))
        response = reader.response
        assert response is not None and response.status_code == 200
        assert response.headers["content-type"].startswith("application/x-ndjson")
        assert "no-cache" in response.headers["cache-control"]
        assert response.headers["x-accel-buffering"] == "no"
    assert (await stats(http, "cq", base=server))["length"] == 0


async def test_comet_lines_are_json_objects_ending_in_crlf(server: str, http: httpx.AsyncClient) -> None:
    async with comet(server, "crlf") as reader:
        await wait_consumers(http, server, "crlf", 1)
        values = ['{"nested": [1, 2]}', "line\nbreak", "tab\tand \\ backslash", ""]
        for value in values:
            await add(http, "crlf", value, base=server)
        await reader.wait_count(len(values))
    assert reader.messages == [{"key": f"crlf:{i}", "value": v} for i, v in enumerate(values, 1)]
    assert reader.raw.count(b"\r\n") == len(values)
    assert b"\n" not in bytes(reader.raw).replace(b"\r\n", b"")


async def test_comet_jsonp_wraps_each_line_in_the_callback(jsonp_server: str, http: httpx.AsyncClient) -> None:
    await add(http, "jp", "first", base=jsonp_server)
    async with comet(jsonp_server, "jp", callback="on_msg") as reader:
        await wait_for_lines(reader, 1)
        await add(http, "jp", "second", base=jsonp_server)
        await wait_for_lines(reader, 2)
        assert reader.response is not None
        assert reader.response.headers["content-type"].startswith("application/javascript")
    assert bytes(reader.raw) == (
        b'on_msg({"key":"jp:1","value":"first"});\r\non_msg({"key":"jp:2","value":"second"});\r\n'
    )


async def wait_for_lines(reader: CometReader, n: int) -> None:
    async def enough() -> bool:
        return len(reader.lines) >= n

    await wait_for(enough, 10, what=f"{n} JSONP lines")


async def test_comet_refuses_a_bad_callback_and_a_bad_queue_name(jsonp_server: str, http: httpx.AsyncClient) -> None:
    await add(http, "keep", "x", base=jsonp_server)
    bad_callback = await http.get(f"{jsonp_server}/c/keep", params={"callback": "alert(1)"})
    assert bad_callback.status_code == 400 and bad_callback.json()["code"] == "CALLBACK_INVALID"
    bad_name = await http.get(f"{jsonp_server}/c/bad!name")
    assert bad_name.status_code == 400
    assert "error" in bad_name.json()
    assert (await stats(http, "keep", base=jsonp_server))["length"] == 1  # nothing was consumed


# -- SSE --------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["sse", "c"])
async def test_sse_starts_with_retry_then_id_and_data_events(server: str, http: httpx.AsyncClient, path: str) -> None:
    await add(http, "ev", "backlog", base=server)
    async with sse(server, "ev", path=path) as reader:
        await reader.wait_count(1)
        await add(http, "ev", '{"json": true}', base=server)
        await reader.wait_count(2)
        response = reader.response
        assert response is not None and response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert "no-cache" in response.headers["cache-control"]
        assert response.headers["x-accel-buffering"] == "no"
    raw = bytes(reader.raw)
    assert raw.startswith(b"retry: ")
    assert reader.events[0].retry is not None and reader.events[0].retry > 0
    assert reader.events[0].data is None
    expected = (
        b'id: ev:1\ndata: {"key":"ev:1","value":"backlog"}\n\n'
        b'id: ev:2\ndata: {"key":"ev:2","value":"{\\"json\\": true}"}\n\n'
    )
    assert raw.endswith(expected)
    assert [e.id for e in reader.events[1:]] == ["ev:1", "ev:2"]
    assert reader.messages == [{"key": "ev:1", "value": "backlog"}, {"key": "ev:2", "value": '{"json": true}'}]


async def test_sse_last_event_id_replays_exactly_the_missed_messages(server: str, http: httpx.AsyncClient) -> None:
    async with comet(server, "resume") as other:
        async with sse(server, "resume") as first:
            await wait_consumers(http, server, "resume", 2)
            for i in range(1, 4):
                await add(http, "resume", f"m{i}", base=server)
            await first.wait_count(3)
            last_seen = first.keys[-1]
        assert last_seen == "resume:3"
        await wait_consumers(http, server, "resume", 1)
        for i in range(4, 7):  # broadcast to the other consumer while the first is away
            await add(http, "resume", f"m{i}", base=server)
        await other.wait_count(6)
        async with sse(server, "resume", last_event_id=last_seen) as again:
            await again.wait_count(3)
            await add(http, "resume", "m7", base=server)
            await again.wait_count(4)
            await other.wait_count(7)
    assert [e.event for e in again.events] == [None] * len(again.events)  # no gap
    assert again.messages == [{"key": f"resume:{i}", "value": f"m{i}"} for i in range(4, 8)]
    assert other.keys == [f"resume:{i}" for i in range(1, 8)]


async def test_sse_resume_while_messages_keep_flowing_has_no_gap_and_no_duplicate(
    server: str, http: httpx.AsyncClient
) -> None:
    async with comet(server, "flow") as other:
        await wait_consumers(http, server, "flow", 1)
        for i in range(1, 11):
            await add(http, "flow", str(i), base=server)
        await other.wait_count(10)

        async def produce() -> None:
            async with httpx.AsyncClient(base_url=server, timeout=30) as producer:
                for i in range(11, 111):
                    await add(producer, "flow", str(i), base=server)

        producing = asyncio.create_task(produce())
        async with sse(server, "flow", last_event_id="flow:5") as again:
            await producing
            await other.wait_count(110)
            await again.wait_count(105)
            assert again.keys == [f"flow:{i}" for i in range(6, 111)]


@pytest.mark.parametrize("last_event_id", ["nosuch:9", "gap:0"])
async def test_sse_unknown_last_event_id_gets_a_gap_event_first(
    server: str, http: httpx.AsyncClient, last_event_id: str
) -> None:
    async with comet(server, "gap") as other:
        await wait_consumers(http, server, "gap", 1)
        for i in range(1, 4):
            await add(http, "gap", f"v{i}", base=server)
        await other.wait_count(3)
    async with sse(server, "gap", last_event_id=last_event_id) as again:
        await again.wait_count(3)
    assert again.events[0].retry is not None
    gap = again.events[1]
    assert gap.event == "gap" and gap.data is not None
    assert orjson.loads(gap.data) == {"last_event_id": last_event_id, "oldest": "gap:1"}
    assert again.keys == ["gap:1", "gap:2", "gap:3"]  # whatever history is retained, oldest first


async def test_sse_last_event_id_older_than_the_retained_history_gets_a_gap(
    server: str, http: httpx.AsyncClient
) -> None:
    app_streams_history = 1000  # StreamConfig.history default
    async with comet(server, "old") as other:
        await wait_consumers(http, server, "old", 1)
        batch = [f"v{i}" for i in range(app_streams_history + 5)]
        added = await http.post("/q/old", json=batch)
        assert added.status_code == 200, added.text
        await other.wait_count(len(batch), timeout=30)
    async with sse(server, "old", last_event_id="old:2") as again:
        await again.wait_count(app_streams_history)
    assert again.events[1].event == "gap"
    assert orjson.loads(again.events[1].data or "{}")["oldest"] == "old:6"
    assert again.keys == [f"old:{i}" for i in range(6, len(batch) + 1)]


# -- WebSocket ---------------------------------------------------------------------------------


async def test_ws_delivers_backlog_and_live_messages_as_json_text_frames(server: str, http: httpx.AsyncClient) -> None:
    await add(http, "wsq", "before", base=server)
    async with ws(server, "wsq") as reader:
        await reader.wait_count(1)
        await add(http, "wsq", "after", base=server)
        await reader.wait_count(2)
    assert reader.messages == [{"key": "wsq:1", "value": "before"}, {"key": "wsq:2", "value": "after"}]


async def test_ws_commands_default_to_the_connection_queue(server: str, http: httpx.AsyncClient) -> None:
    await http.post("/control/wcmd", data={"status": "stop"})  # keep added messages queued, not streamed
    async with ws(server, "wcmd") as reader:
        assert await reader.command({"cmd": "add", "value": "one"}) == {
            "queue": "wcmd",
            "value": "one",
            "key": "wcmd:1",
        }
        assert (await reader.command({"cmd": "add", "value": {"n": 2}}))["key"] == "wcmd:2"
        # get/take without a queue go to the connection's (stopped) queue, not to some other one
        assert (await reader.command({"cmd": "get"}))["code"] == "QUEUE_STOPPED"
        assert (await reader.command({"cmd": "take"}))["code"] == "QUEUE_STOPPED"
        assert await reader.command({"cmd": "del", "key": "wcmd:1"}) == {
            "queue": "wcmd",
            "key": "wcmd:1",
            "deleted": True,
        }
        assert (await stats(http, "wcmd", base=server))["length"] == 1

        for value in ("x", "y"):
            await reader.command({"cmd": "add", "queue": "side", "value": value})
        assert await reader.command({"cmd": "get", "queue": "side"}) == {
            "queue": "side",
            "value": "x",
            "key": "side:1",
            "count": 1,
        }
        taken = await reader.command({"cmd": "take", "queue": "side"})
        assert (taken["key"], taken["value"]) == ("side:1", "x")
        assert await reader.command({"cmd": "del", "queue": "side", "key": "side:2"}) == {
            "queue": "side",
            "key": "side:2",
            "deleted": True,
        }
        assert (await reader.command({"cmd": "take", "queue": "side"}))["error"] == "empty queue"
        assert reader.messages == []

        await http.post("/control/wcmd", data={"status": "start"})
        await reader.wait_count(1)
        assert reader.messages == [{"key": "wcmd:2", "value": '{"n":2}'}]


@pytest.mark.parametrize("frame", ["not json", "[]", '{"cmd":"nope"}', '{"cmd":"take","queue":"bad name!"}', "{}"])
async def test_ws_malformed_frame_gets_an_error_frame_and_the_connection_stays_usable(
    server: str, http: httpx.AsyncClient, frame: str
) -> None:
    async with ws(server, "wbad") as reader:
        await wait_consumers(http, server, "wbad", 1)
        error = await reader.command(frame)
        assert set(error) == {"error", "code"}, error
        assert isinstance(error["error"], str) and error["error"]
        assert isinstance(error["code"], str) and error["code"]
        added = await reader.command({"cmd": "add", "queue": "wbad-side", "value": "ok"})
        assert added["key"] == "wbad-side:1"
        await add(http, "wbad", "still flowing", base=server)
        await reader.wait_count(1)
        assert reader.messages == [{"key": "wbad:1", "value": "still flowing"}]
        assert not reader.ended.is_set()


async def test_ws_binary_frame_is_a_command_too(server: str, http: httpx.AsyncClient) -> None:
    async with ws(server, "wbin") as reader:
        assert reader.connection is not None
        await reader.connection.send(b'{"cmd":"add","value":"bin"}')
        reply = await asyncio.wait_for(reader.replies.get(), 10)
        assert reply["key"] == "wbin:1"


@pytest.mark.parametrize("queue", ["bad%20name", "a" * 201, "semi;colon"])
async def test_ws_invalid_queue_name_closes_with_1008(server: str, queue: str) -> None:
    try:
        async with connect(ws_url(server, queue), open_timeout=10) as client:
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(client.recv(), 10)
    except InvalidStatus as exc:  # pragma: no cover - a refused handshake carries no close code
        raise AssertionError(f"handshake refused with HTTP {exc.response.status_code}, not close code 1008") from exc
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1008


async def test_stream_consumers_count_and_drop_to_zero(server: str, http: httpx.AsyncClient) -> None:
    async with comet(server, "cnt"), sse(server, "cnt"), ws(server, "cnt"):
        await wait_consumers(http, server, "cnt", 3)
    await wait_consumers(http, server, "cnt", 0)
