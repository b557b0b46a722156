"""Bad input gets a clear 4xx with a stable code, and never loses a stored message (SPEC sections 2 and 6)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from restmq.config import Limits
from tests.helpers.queues import add
from tests.helpers.server import run_app

pytestmark = pytest.mark.integration

RULE = "queue names are 1-200 characters of A-Z a-z 0-9 _ - . : @"
# Queue names as they appear in a URL path (percent-encoded where needed).
BAD_PATH_NAMES = {
    "space": "a%20b",
    "only a space": "%20",
    "open brace": "a%7Bb",
    "close brace": "a%7Db",
    "hash tag": "%7Bjobs%7D",
    "201 characters": "a" * 201,
    "unicode": "caf%C3%A9",
    "emoji": "%F0%9F%9A%80",
    "pipe": "a%7Cdead",
    "star": "a*",
    "newline": "a%0Ab",
    "nul": "a%00b",
}


@pytest.fixture
async def stored(http: httpx.AsyncClient) -> AsyncIterator[str]:
    """A message that every hostile request below must leave in place."""
    key = await add(http, "keep", "precious")
    yield key
    intact = await http.get("/stats/keep")
    assert intact.json()["length"] == 1, "a bad request lost the stored message"


async def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    assert body["code"] == code
    assert isinstance(body["error"], str) and body["error"]
    return body


@pytest.mark.parametrize("name", BAD_PATH_NAMES.values(), ids=BAD_PATH_NAMES.keys())
async def test_invalid_queue_names_are_400_on_every_queue_route(
    http: httpx.AsyncClient, stored: str, name: str
) -> None:
    requests: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", f"/q/{name}", {}),
        ("POST", f"/q/{name}", {"data": {"value": "x"}}),
        ("POST", f"/q/{name}", {"json": ["x"]}),
        ("DELETE", f"/q/{name}", {}),
        ("GET", f"/p/{name}", {}),
        ("POST", f"/p/{name}", {"data": {"policy": "roundrobin"}}),
        ("GET", f"/control/{name}", {}),
        ("POST", f"/control/{name}", {"data": {"status": "stop"}}),
        ("GET", f"/stats/{name}", {}),
        ("GET", f"/j/{name}", {}),
    ]
    for method, path, kwargs in requests:
        body = await assert_error(await http.request(method, path, **kwargs), 400, "QUEUE_NAME_INVALID")
        assert RULE in body["error"]


@pytest.mark.parametrize("name", ["", " ", "a/b", "{q}", "a" * 201, "ünï", "q\r\n"])
async def test_invalid_queue_names_in_fields_are_400(http: httpx.AsyncClient, stored: str, name: str) -> None:
    body = await assert_error(await http.post("/", data={"queue": name, "value": "x"}), 400, "QUEUE_NAME_INVALID")
    assert RULE in body["error"]
    await assert_error(await http.get("/", params={"queue": name}), 400, "QUEUE_NAME_INVALID")
    for cmd in ({"cmd": "add", "queue": name, "value": "x"}, {"cmd": "take", "queue": name}):
        await assert_error(await http.post("/queue", json=cmd), 400, "QUEUE_NAME_INVALID")


async def test_200_characters_is_still_a_valid_name(http: httpx.AsyncClient) -> None:
    name = "n" * 200
    assert await add(http, name, "long") == f"{name}:1"
    assert (await http.get(f"/q/{name}")).json()["value"] == "long"


async def test_a_slash_encoded_name_is_an_invalid_queue_name(http: httpx.AsyncClient, stored: str) -> None:
    for method in ("GET", "POST", "DELETE"):
        await assert_error(await http.request(method, "/q/a%2Fb", data={"value": "x"}), 400, "QUEUE_NAME_INVALID")


async def test_a_slash_encoded_name_never_stores_anything(http: httpx.AsyncClient, stored: str) -> None:
    # Whatever the status, a%2Fb must not become a queue or touch another one.
    for method in ("GET", "POST", "DELETE"):
        assert 400 <= (await http.request(method, "/q/a%2Fb", data={"value": "x"})).status_code < 500
    assert (await http.get("/q/")).json()["queues"] == ["keep"]


@pytest.mark.parametrize(
    ("content", "headers"),
    [
        (b"\xff\xfe", {}),
        (b"ok then \xc3", {"Content-Type": "text/plain"}),
        (b"value=%FF%FE", {"Content-Type": "application/x-www-form-urlencoded"}),
        (b"value=\xff", {"Content-Type": "application/x-www-form-urlencoded"}),
        (b'["\xff"]', {"Content-Type": "application/json"}),
        (b'"\xff"\n', {"Content-Type": "application/x-ndjson"}),
    ],
)
async def test_a_value_that_is_not_utf8_is_400(
    http: httpx.AsyncClient, stored: str, content: bytes, headers: dict[str, str]
) -> None:
    await assert_error(await http.post("/q/keep", content=content, headers=headers), 400, "VALUE_INVALID")


async def test_a_raw_text_body_is_the_message(http: httpx.AsyncClient, stored: str) -> None:
    response = await http.post("/q/raw", content="plain body ✓".encode(), headers={"Content-Type": "text/plain"})
    assert response.text == "raw:1\r\n"
    assert (await http.get("/q/raw")).json()["value"] == "plain body ✓"


async def test_json_protocol_body_that_is_not_utf8_is_400(http: httpx.AsyncClient, stored: str) -> None:
    await assert_error(await http.post("/queue", content=b'{"cmd":"take","queue":"keep\xff"}'), 400, "VALUE_INVALID")


@pytest.mark.parametrize("fields", [{}, {"val": "x"}, {"queue": "keep"}])
async def test_a_form_without_value_is_400_field_missing(
    http: httpx.AsyncClient, stored: str, fields: dict[str, str]
) -> None:
    body = await assert_error(await http.post("/q/keep", data=fields), 400, "FIELD_MISSING")
    assert "value" in body["error"]


async def test_index_post_without_queue_or_value_is_400(http: httpx.AsyncClient, stored: str) -> None:
    await assert_error(await http.post("/", data={"value": "x"}), 400, "FIELD_MISSING")
    await assert_error(await http.post("/", data={"queue": "keep"}), 400, "FIELD_MISSING")


@pytest.mark.parametrize(
    "path", ["/q/keep?lease=abc", "/q/keep?lease=0", "/q/keep?lease=-5", "/q/keep?wait=x", "/q/keep?count=0"]
)
async def test_bad_read_parameters_are_400_and_consume_nothing(http: httpx.AsyncClient, stored: str, path: str) -> None:
    await assert_error(await http.get(path), 400, "PARAMETER_INVALID")


@pytest.mark.parametrize("key", ["keep:0", "keep:01", "keep:x", "other:1", "keep:%C2%B2", "keep:99999999999999999999"])
async def test_bad_message_keys_are_refused_without_touching_the_queue(
    http: httpx.AsyncClient, stored: str, key: str
) -> None:
    response = await http.delete(f"/q/keep/{key}")
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "PARAMETER_INVALID"


# -- body size limits ----------------------------------------------------------------------------


@pytest.fixture
async def small(redis_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A server that accepts bodies of at most 1024 bytes, with one stored message."""
    async with run_app(redis_url, limits=Limits(max_body=1024)) as url, httpx.AsyncClient(base_url=url) as client:
        await add(client, "keep", "precious")
        yield client
        assert (await client.get("/stats/keep")).json()["length"] == 1


async def chunked(data: bytes) -> AsyncIterator[bytes]:
    """A body without Content-Length: the limit must hold while reading, not only from the header."""
    for start in range(0, len(data), 256):
        yield data[start : start + 256]


def multipart(client: httpx.AsyncClient, fields: dict[str, str]) -> tuple[bytes, str]:
    request = client.build_request("POST", "/", files={name: (None, value) for name, value in fields.items()})
    return request.read(), request.headers["content-type"]


async def test_a_body_at_the_limit_is_accepted(small: httpx.AsyncClient) -> None:
    value = "v" * (1024 - len("value="))
    assert (await small.post("/q/big", data={"value": value})).status_code == 200


@pytest.mark.parametrize(
    ("path", "content_type", "body"),
    [
        ("/q/keep", "application/x-www-form-urlencoded", b"value=" + b"x" * 1100),
        ("/q/keep", "text/plain", b"x" * 1100),
        ("/q/keep", "application/json", b'["' + b"x" * 1100 + b'"]'),
        ("/q/keep", "application/x-ndjson", b'"x"\n' * 300),
        ("/", "application/x-www-form-urlencoded", b"queue=keep&value=" + b"x" * 1100),
        ("/queue", "application/json", b'{"cmd":"add","queue":"keep","value":"' + b"x" * 1100 + b'"}'),
    ],
)
@pytest.mark.parametrize("send", ["content-length", "chunked"])
async def test_a_body_over_max_body_is_413(
    small: httpx.AsyncClient, path: str, content_type: str, body: bytes, send: str
) -> None:
    content: Any = body if send == "content-length" else chunked(body)
    response = await small.post(path, content=content, headers={"Content-Type": content_type})
    error = await assert_error(response, 413, "PAYLOAD_TOO_LARGE")
    assert "1024" in error["error"]


@pytest.mark.parametrize("send", ["content-length", "chunked"])
async def test_a_multipart_body_over_max_body_is_413(small: httpx.AsyncClient, send: str) -> None:
    # Three parts under the limit each, over it together.
    body, content_type = multipart(small, {"value": "a" * 600, "x": "b" * 600, "y": "c" * 600})
    content: Any = body if send == "content-length" else chunked(body)
    response = await small.post("/q/keep", content=content, headers={"Content-Type": content_type})
    await assert_error(response, 413, "PAYLOAD_TOO_LARGE")


async def test_a_multipart_file_upload_is_refused_with_a_json_error(small: httpx.AsyncClient) -> None:
    response = await small.post("/q/keep", files={"value": ("file.txt", b"data", "text/plain")})
    await assert_error(response, 400, "VALUE_INVALID")


async def test_a_value_over_max_value_is_413(redis_url: str) -> None:
    async with run_app(redis_url, limits=Limits(max_value=10)) as url, httpx.AsyncClient(base_url=url) as client:
        await assert_error(await client.post("/q/v", data={"value": "x" * 11}), 413, "PAYLOAD_TOO_LARGE")
        await assert_error(await client.post("/q/v", data={"value": "é" * 6}), 413, "PAYLOAD_TOO_LARGE")  # 12 bytes
        assert (await client.post("/q/v", data={"value": "x" * 10})).status_code == 200
