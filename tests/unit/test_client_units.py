"""The client's pure parts, and its HTTP behaviour against a mock transport (no server)."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import pytest

from restmq.client import (
    APIError,
    AuthError,
    BackendUnavailableError,
    BadRequestError,
    Client,
    ConnectionFailed,
    LeaseExpired,
    LeaseStale,
    Message,
    MessageNotFound,
    NotFoundError,
    RequestTimeout,
    ServerError,
    TransportError,
    _calls,
)
from restmq.client._stream import SSEEvent, SSEParser, StreamState
from restmq.client.errors import api_error, from_transport
from restmq.errors import Conflict, NotFound, RestMQError

pytestmark = pytest.mark.unit


def test_the_client_imports_no_server_module() -> None:
    code = (
        "import sys, restmq; restmq.Client; restmq.AsyncClient; import restmq.client\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('starlette', 'redis', 'uvicorn')"
        " or (m.split('.')[1:2] in (['web'], ['core'], ['storage'], ['cli']) and m.startswith('restmq.')"
        " and m not in ('restmq.core', 'restmq.core.names'))]\n"
        "print(bad)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


# -- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        (400, "QUEUE_NAME_INVALID", BadRequestError),
        (401, "UNAUTHORIZED", AuthError),
        (403, "FORBIDDEN", AuthError),
        (404, "MESSAGE_NOT_FOUND", MessageNotFound),
        (404, "QUEUE_EMPTY", NotFoundError),
        (409, "LEASE_EXPIRED", LeaseExpired),
        (409, "LEASE_STALE", LeaseStale),
        (503, "BACKEND_UNAVAILABLE", BackendUnavailableError),
        (500, "INTERNAL", ServerError),
        (418, "TEAPOT", APIError),
    ],
)
def test_error_answers_map_to_classes_with_the_server_code(status: int, code: str, kind: type[APIError]) -> None:
    error = api_error(status, json.dumps({"error": "text", "code": code}).encode())
    assert type(error) is kind
    assert (error.status, error.code, error.message) == (status, code, "text")
    assert isinstance(error, RestMQError) and error.body == {"error": "text", "code": code}
    assert code in str(error) and str(status) in str(error)


def test_client_errors_are_also_the_server_family() -> None:
    assert issubclass(LeaseStale, Conflict) and issubclass(MessageNotFound, NotFound)


def test_a_non_json_error_body_still_gives_a_code() -> None:
    error = api_error(405, b"Method Not Allowed")
    assert (error.code, error.message) == ("HTTP_405", "Method Not Allowed")
    assert api_error(502, b"", "Bad Gateway").message == "Bad Gateway"


def test_transport_errors() -> None:
    url = "http://h:1"
    assert isinstance(from_transport(httpx.ConnectError("refused"), url), ConnectionFailed)
    assert isinstance(from_transport(httpx.ConnectTimeout("slow"), url), ConnectionFailed)
    assert isinstance(from_transport(httpx.ReadTimeout("slow"), url), RequestTimeout)
    broken = from_transport(httpx.RemoteProtocolError(""), url)
    assert type(broken) is TransportError and "RemoteProtocolError" in broken.message and broken.status == 0


# -- configuration and encoding ---------------------------------------------------------------


def test_url_and_token_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RESTMQ_URL", raising=False)
    monkeypatch.delenv("RESTMQ_TOKEN", raising=False)
    assert _calls.resolve_url(None) == "http://127.0.0.1:8888"
    assert _calls.resolve_url("mq.local:9000/") == "http://mq.local:9000"
    monkeypatch.setenv("RESTMQ_URL", "https://mq.example/")
    assert _calls.resolve_url(None) == "https://mq.example"
    assert _calls.resolve_url("http://other") == "http://other"
    assert _calls.resolve_token(None) is None
    monkeypatch.setenv("RESTMQ_TOKEN", "rmq_x")
    assert _calls.resolve_token(None) == "rmq_x" and _calls.resolve_token("mine") == "mine"


def test_values_are_text() -> None:
    assert _calls.encode_value("é") == "é"
    assert _calls.encode_value(b"\xc3\xa9") == "é"
    assert _calls.encode_value({"a": [1, "é"]}) == '{"a":[1,"é"]}'
    assert _calls.encode_value(7) == "7"


def test_bad_names_never_reach_a_url() -> None:
    for name in ("", "a/b", "x/redrive", "sp ace", "é", "a" * 201):
        with pytest.raises(BadRequestError):
            _calls.add(name, "v")
    with pytest.raises(BadRequestError):
        _calls.ack("no-number")
    assert _calls.queue_of("a:b:12") == "a:b"


def test_message_helpers() -> None:
    message = Message("q", "q:12", '{"x": 1}', 2, 30.0)
    assert message.n == 12 and message.leased and message.json() == {"x": 1}
    assert not Message("q", "q:1", "v").leased


def test_backoff() -> None:
    assert [_calls.retry_delay(n, 0.5, 3) for n in (1, 2, 3, 4, 5)] == [0.5, 1, 2, 3, 3]


def test_jittered_backoff_is_spread_between_zero_and_the_capped_exponential() -> None:
    for attempt, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (6, 3.0)]:
        delays = [_calls.jittered_delay(attempt, 0.5, 3) for _ in range(400)]
        assert all(0 <= d <= ceiling for d in delays)
        assert min(delays) < ceiling / 4 and max(delays) > ceiling * 3 / 4  # full jitter, not a fixed step


def test_the_servers_retry_replaces_the_reconnect_base_and_lifts_the_cap() -> None:
    state = StreamState("q", None, None)
    assert max(state.reconnect_delay(1, 0.25, 5) for _ in range(200)) <= 0.25
    state.handle(SSEEvent(retry=4000))
    delays = [state.reconnect_delay(1, 0.25, 5) for _ in range(200)]
    assert max(delays) <= 4 and max(delays) > 1
    assert max(state.reconnect_delay(5, 0.25, 5) for _ in range(200)) <= 5  # doubled, up to the client's cap
    state.handle(SSEEvent(retry=10_000))
    assert max(state.reconnect_delay(3, 0.25, 5) for _ in range(200)) > 5  # the cap is never below the retry
    state.handle(SSEEvent(retry=100))
    assert max(state.reconnect_delay(1, 5, 5) for _ in range(200)) <= 0.1
    state.handle(SSEEvent(retry=0))  # still a backoff: failed reconnects do not spin
    assert max(state.reconnect_delay(8, 5, 5) for _ in range(200)) > 0.3


# -- HTTP, with a mock transport --------------------------------------------------------------


def test_requests_carry_token_agent_and_long_poll_timeout() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.method == "POST":
            return httpx.Response(200, text="jobs:1\r\n")
        return httpx.Response(204)

    client = Client("http://mq", token="rmq_secret", timeout=7, transport=httpx.MockTransport(handler))
    assert client.add("jobs", {"a": 1}, delay=1.5, priority=3, idempotency_key="k1") == "jobs:1"
    assert client.get("jobs", wait=20, lease=30) is None
    client.close()
    add, get = seen
    assert add.headers["authorization"] == "Bearer rmq_secret" and add.headers["idempotency-key"] == "k1"
    assert add.headers["user-agent"].startswith("restmq-python/")
    assert dict(httpx.QueryParams(add.content.decode())) == {"value": '{"a":1}', "delay": "1.5", "priority": "3"}
    assert get.url.params["wait"] == "20" and get.url.params["lease"] == "30"
    assert get.extensions["timeout"]["read"] == 27  # the long-poll's wait is added to the read timeout


def test_no_token_no_authorization_header(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RESTMQ_TOKEN", raising=False)
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"status": "ok"})

    with Client("http://mq", transport=httpx.MockTransport(handler)) as client:
        client.health()
    assert "authorization" not in seen[0].headers


def test_settling_a_message_sends_its_count() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"queue": "q", "key": "q:3", "count": 2, "status": "ack"})

    with Client("http://mq", transport=httpx.MockTransport(handler)) as client:
        client.ack(Message("q", "q:3", "v", 2, 30))
        client.release("q:3", delay=5)
        client.extend("q:3", 60, count=2)
    assert [(r.method, r.url.path, dict(r.url.params)) for r in seen] == [
        ("DELETE", "/q/q/q:3", {"count": "2"}),
        ("POST", "/q/q/q:3/release", {"delay": "5"}),
        ("POST", "/q/q/q:3/extend", {"count": "2", "lease": "60"}),
    ]


def test_soft_get_reads_empty_and_stopped_as_none() -> None:
    replies = iter(
        [{"error": "empty queue", "code": "QUEUE_EMPTY"}, {"error": "queue stopped", "code": "QUEUE_STOPPED"}]
    )

    def handler(request: httpx.Request) -> httpx.Response:
        assert json.loads(request.content) == {"cmd": "get", "queue": "q"}
        return httpx.Response(200, json=next(replies))

    with Client("http://mq", transport=httpx.MockTransport(handler)) as client:
        assert client.soft_get("q") is None and client.soft_get("q") is None


# -- SSE ----------------------------------------------------------------------------------------


def feed(parser: SSEParser, text: str) -> list[SSEEvent]:
    events = []
    for line in text.split("\n"):
        event = parser.feed(line)
        if event is not None:
            events.append(event)
    return events


def test_sse_parser() -> None:
    parser = SSEParser()
    events = feed(
        parser, 'retry: 3000\n\n: heartbeat\n\nid: q:1\ndata: {"key":"q:1"}\n\nevent: gap\ndata: a\ndata: b\n\n'
    )
    assert [(e.event, e.data, e.id, e.retry) for e in events] == [
        ("message", "", None, 3000),
        ("message", '{"key":"q:1"}', "q:1", None),
        ("gap", "a\nb", None, None),
    ]
    parser.feed("data: half")
    parser.reset()
    assert parser.feed("") is None


def test_stream_state_resume_dedupe_and_gaps() -> None:
    state = StreamState("q", None, "q:4")
    assert state.request_headers()["Last-Event-ID"] == "q:4" and state.request_params() == {}
    parser = SSEParser()
    [first] = feed(parser, 'id: q:5\ndata: {"key":"q:5","value":"v"}\n\n')
    message = state.handle(first)
    assert message == Message("q", "q:5", "v") and state.last_event_id == "q:5"
    assert state.handle(first) is None  # a replayed duplicate is dropped
    [gap] = feed(parser, 'event: gap\ndata: {"last_event_id":"q:1","oldest":"q:3"}\n\n')
    assert state.handle(gap) is None and state.gaps[0].oldest == "q:3"
    leased = StreamState("q", 30, "q:9")
    assert "Last-Event-ID" not in leased.request_headers() and leased.request_params() == {"lease": "30"}
    [event] = feed(SSEParser(), 'id: q:7\ndata: {"key":"q:7","value":"v","count":2}\n\n')
    again = leased.handle(event)
    assert again is not None and again.leased and again.count == 2
    assert leased.handle(event) is not None  # a redelivery in lease mode is not a duplicate
