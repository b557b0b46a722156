"""Hostile input, generated: arbitrary queue names, bodies, content types and parameters against the
add and get routes never produce a 5xx and never lose a message that was stored before or during
the run (every key answered 200 is later either consumed by a 200 answer or still in its queue)."""

from __future__ import annotations

import asyncio
import re
from collections import defaultdict
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from restmq.core.names import check_callback, check_queue_name
from restmq.errors import RestMQError
from tests.helpers.server import run_app

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,  # the same inputs on every run: a failure here is a real bug, never noise
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
KEEP = "kept.safe"  # stored before the run; the generated input never names it as such
KEPT = [f"kept value {i}" for i in range(5)]

names = st.one_of(
    st.text(max_size=40),
    st.text(alphabet="abc.:-_@/%?#&=+ {}|*[]\\\x00\n", max_size=12),
    st.sampled_from(["q", "..", ".", "a/b", "q?x=1", "q#f", "%2F", "q%00", "{q}", "a|dead", "q:dead", "x" * 201]),
    st.just("fz.").flatmap(lambda p: st.text(alphabet="abcxyz019_-.:@", min_size=1, max_size=10).map(p.__add__)),
).filter(lambda name: "kept" not in name.lower())
BODY_INTS = st.integers(-(2**63), 2**64 - 1)  # what orjson can write; the JSON commands below go beyond
INTS = st.integers()
CONTENT_TYPES = st.sampled_from(
    [
        None,
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=xyz",
        "multipart/form-data",
        "application/json",
        "application/x-ndjson",
        "application/jsonl",
        "text/plain",
        "text/plain; charset=latin-1",
        "application/octet-stream",
        "application/json; charset=utf-8",
        "garbage/;;;",
    ]
)
form_keys = st.one_of(st.sampled_from(["value", "msg", "queue", "body", "id"]), st.text(max_size=8)).filter(
    lambda key: key not in ("delay", "ttl", "priority")
)
bodies = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=300).map(str.encode),
    st.dictionaries(form_keys, st.one_of(st.text(max_size=30), names), max_size=4).map(lambda d: urlencode(d).encode()),
    st.lists(st.one_of(st.text(max_size=20), BODY_INTS, st.none(), st.booleans()), max_size=6).map(orjson.dumps),
    st.recursive(
        st.one_of(st.none(), st.booleans(), BODY_INTS, st.floats(allow_nan=False), st.text(max_size=10)),
        lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)),
        max_leaves=8,
    ).map(orjson.dumps),
    st.sampled_from([b"[", b"{", b'["a",', b"\xff\xfe", b"value=%ff", b"value=a&value=b", b"\x00" * 10, b"a\nb\n[\n"]),
)
PARAM_VALUES = ["", "0", "1", "2", "-1", "abc", "nan", "inf", "-inf", "1e309", "0.05", "61", "1001", "１", "0x10"]
get_params = st.dictionaries(
    st.sampled_from(["count", "wait", "lease", "callback", "token", "x"]),
    st.one_of(st.sampled_from(PARAM_VALUES), st.text(max_size=12)),
    max_size=3,
).filter(lambda p: "lease" not in p or not _positive(p["lease"]))  # a granted lease hides, it does not consume
json_commands = st.fixed_dictionaries(
    {"cmd": st.sampled_from(["add", "take", "get", "nope", "", None])},
    optional={
        "queue": st.one_of(names, INTS, st.none()),
        "value": st.one_of(st.text(max_size=20), INTS, st.lists(INTS, max_size=3), st.none()),
        "id": st.one_of(st.text(max_size=5), INTS),
    },
)


def qpath(name: str) -> str:
    """/q/<name>, every character that could change the path escaped (dots too: no dot-segment normalising)."""
    return "/q/" + quote(name, safe="").replace(".", "%2E")


def _positive(raw: str) -> bool:
    try:
        return float(raw) > 0
    except ValueError:
        return False


def _valid(name: str) -> bool:
    try:
        check_queue_name(name)
    except RestMQError:
        return False
    return True


class Ledger:
    """Keys answered 200 to an add, and keys handed out by a consuming 200 answer."""

    def __init__(self) -> None:
        self.added: set[str] = set()
        self.consumed: set[str] = set()
        self.requests = 0
        self.statuses: dict[int, int] = defaultdict(int)

    def outstanding(self) -> dict[str, set[str]]:
        by_queue: dict[str, set[str]] = defaultdict(set)
        for key in self.added - self.consumed:
            by_queue[key.rsplit(":", 1)[0]].add(key)
        return by_queue


def _unwrap(response: httpx.Response, params: dict[str, str]) -> Any:
    text = response.text
    callback = params.get("callback")
    if callback is not None and response.headers.get("content-type", "").startswith("application/javascript"):
        check_callback(callback)  # only a valid name is ever echoed
        match = re.fullmatch(re.escape(callback) + r"\((.*)\);\n", text, re.S)
        assert match, text
        text = match.group(1)
    return orjson.loads(text)


def check(response: httpx.Response, ledger: Ledger) -> None:
    ledger.requests += 1
    ledger.statuses[response.status_code] += 1
    assert response.status_code < 500, (response.request.method, response.request.url, response.text)
    if response.status_code >= 400 and response.headers.get("content-type", "").startswith("application/json"):
        body = response.json()
        assert set(body) == {"error", "code"} and isinstance(body["code"], str), body


def _record_messages(data: Any, ledger: Ledger) -> None:
    items = data if isinstance(data, list) else [data]
    for item in items:
        if isinstance(item, dict) and "key" in item and "value" in item:
            ledger.consumed.add(item["key"])


def fuzz(base: str, ledger: Ledger) -> None:
    with httpx.Client(base_url=base, timeout=30) as client:

        @FUZZ
        @given(name=names, body=bodies, content_type=CONTENT_TYPES, params=get_params, command=json_commands)
        def one_round(name: str, body: bytes, content_type: str | None, params: dict[str, str], command: Any) -> None:
            path = qpath(name)
            headers = {"Content-Type": content_type} if content_type else {}

            added = client.post(path, content=body, headers=headers)
            check(added, ledger)
            if added.status_code == 200:
                if added.headers["content-type"].startswith("application/json"):
                    ledger.added.update(added.json()["keys"])
                else:
                    ledger.added.add(added.text.removesuffix("\r\n"))

            index = client.post("/", content=body, headers=headers)
            check(index, ledger)
            if index.status_code == 200:
                ledger.added.add(index.text.removesuffix("\r\n"))

            got = client.get(path, params=params)
            check(got, ledger)
            if got.status_code == 200:
                data = _unwrap(got, params)
                if not _valid(name):  # "" or "\n": the listing (GET /q/; Starlette's $ also matches before "\n")
                    assert isinstance(data, dict) and "queues" in data, (name, data)
                _record_messages(data, ledger)

            by_index = client.get("/", params={"queue": name, **params})
            check(by_index, ledger)
            if by_index.status_code == 200 and not by_index.headers["content-type"].startswith("text/html"):
                _record_messages(_unwrap(by_index, params), ledger)

            protocol = client.post("/queue", json=command)
            check(protocol, ledger)
            if protocol.status_code == 200:
                reply = protocol.json()
                if command.get("cmd") == "add" and "key" in reply:
                    ledger.added.add(reply["key"])
                elif command.get("cmd") == "take" and "key" in reply:
                    ledger.consumed.add(reply["key"])

        one_round()


async def test_generated_input_never_fails_the_server_or_loses_messages(redis_url: str) -> None:
    async with run_app(redis_url, jsonp=True) as base:  # callback= is among the parameters: wrap, never lose
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            for value in KEPT:
                assert (await client.post(f"/q/{KEEP}", data={"value": value})).status_code == 200
            ledger = Ledger()
            await asyncio.to_thread(fuzz, base, ledger)
            assert ledger.requests >= 5 * 100 and ledger.statuses[200] > 0, dict(ledger.statuses)

            for queue, keys in ledger.outstanding().items():
                remaining: set[str] = set()
                while (response := await client.get(qpath(queue), params={"count": 1000})).status_code == 200:
                    remaining.update(m["key"] for m in response.json())
                assert response.status_code == 204, response.text
                missing = keys - remaining
                assert not missing, f"{queue}: lost {sorted(missing)[:5]} of {len(keys)}"

            kept = await client.get(f"/q/{KEEP}", params={"count": 100})
            assert [m["value"] for m in kept.json()] == KEPT
            assert (await client.get("/health")).status_code == 200
