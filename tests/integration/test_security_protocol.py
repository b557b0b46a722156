"""Issue 13: a JSON-protocol command with a field of the wrong type is a 400 with a JSON error (an error
frame on a WebSocket), never a 500: `{"cmd": ["add"]}` to POST /queue was a 500 with a traceback, before
authentication. Generated: every field of every command as arbitrary JSON (lists, objects, numbers of
any size, null, booleans, strings), against a real `restmq serve`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.sync.client import ClientConnection, connect

from restmq.storage.engine import EmbeddedEngine
from tests.helpers.auth import create_token
from tests.helpers.server import ServeProcess, serve
from tests.helpers.streams import ws_url

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FUZZ = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,  # the same inputs on every run: a failure here is a real bug, never noise
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
COMMANDS = ["add", "get", "take", "del", "ack", "release", "extend"]
FIELDS = ["cmd", "queue", "value", "key", "count", "lease", "delay", "ttl", "priority", "id"]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),  # beyond 64 bits too
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0, -1, 1.5, 2**53, 2**63, -(2**63), 2**64, 1e300, -0.0, "", "0", "add", "fz", "fz:1"]),
    st.text(max_size=12),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=6,
)
commands = st.builds(
    lambda cmd, field, value, drop: {
        **{k: v for k, v in {"cmd": cmd, "queue": "fz", "value": "v", "key": "fz:1"}.items() if k != drop},
        field: value,
    },
    st.sampled_from(COMMANDS),
    st.sampled_from(FIELDS),
    json_values,
    st.sampled_from([None, "queue", "value", "key"]),
)


@pytest.fixture(scope="module")
def server(engine: EmbeddedEngine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    with serve(["--redis", engine.url], tmp_path_factory.mktemp("protocol")) as process:
        yield process


def assert_json_error(reply: httpx.Response, sent: object) -> None:
    assert reply.status_code < 500, (sent, reply.status_code, reply.text)
    assert reply.headers["content-type"] == "application/json", (sent, reply.text)
    if reply.status_code >= 400:
        body = reply.json()
        assert isinstance(body["error"], str) and body["code"] != "INTERNAL", (sent, body)


def test_the_reported_command_is_a_400(server: ServeProcess, redis_url: str) -> None:
    reply = httpx.post(server.url + "/queue", json={"cmd": ["add"]}, timeout=20)
    assert reply.status_code == 400 and reply.json()["code"] == "PARAMETER_INVALID", reply.text
    assert "Traceback" not in server.log()


def test_wrong_types_in_any_field_are_400s(server: ServeProcess, redis_url: str) -> None:
    with httpx.Client(base_url=server.url, timeout=20) as http:

        @FUZZ
        @given(command=commands, as_form=st.booleans())
        def check(command: dict[str, Any], as_form: bool) -> None:
            raw = json.dumps(command)  # the standard library writes integers of any size
            if as_form:
                reply = http.post("/queue", data={"body": raw})
            else:
                reply = http.post("/queue", content=raw, headers={"Content-Type": "application/json"})
            assert_json_error(reply, command)

        check()
    assert "Traceback" not in server.log()


def receive_reply(ws: ClientConnection) -> dict[str, Any]:
    reply = json.loads(ws.recv(timeout=20))
    assert isinstance(reply, dict)
    return reply


def test_wrong_types_in_any_frame_field_are_error_frames(server: ServeProcess, redis_url: str) -> None:
    # a stopped queue streams nothing, so every frame the socket receives is a reply
    assert httpx.post(server.url + "/control/wsq", data={"status": "stop"}, timeout=20).status_code == 200
    with connect(ws_url(server.url, "wsq")) as ws:

        @FUZZ
        @given(command=commands)
        def check(command: dict[str, Any]) -> None:
            ws.send(json.dumps(command))
            reply = receive_reply(ws)
            if "error" in reply:
                assert reply.get("code") not in (None, "INTERNAL"), (command, reply)

        check()
        ws.send(json.dumps({"cmd": "add", "queue": "after", "value": "still open"}))
        assert receive_reply(ws)["key"] == "after:1"
    assert "Traceback" not in server.log()


def test_a_malformed_command_is_refused_before_authentication(tmp_path: Path) -> None:
    with EmbeddedEngine(tmp_path / "engine") as own:  # its own engine: the token stays out of the shared one
        create_token(own.url, "*", "admin")
        with serve(["--redis", own.url], tmp_path) as server:
            for command in ({"cmd": ["add"]}, {"cmd": "add", "queue": {"q": 1}}, {"cmd": "take", "queue": None}):
                reply = httpx.post(server.url + "/queue", json=command, timeout=20)
                assert reply.status_code == 400 and reply.json()["code"] in ("PARAMETER_INVALID", "FIELD_MISSING")
            well_formed = httpx.post(server.url + "/queue", json={"cmd": "take", "queue": "q"}, timeout=20)
            assert well_formed.status_code == 401
