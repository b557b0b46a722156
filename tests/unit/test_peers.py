"""The client address and scheme a request gets (restmq/web/peers.py, restmq/web/addresses.py), on
constructed ASGI scopes: X-Forwarded-* only from named proxies, strict parsing, IPv4-mapped peers as
IPv4 (issue 13). tests/integration/test_security_addresses.py checks the same on real servers."""

from __future__ import annotations

import ipaddress
from typing import Any

import orjson
import pytest

from restmq.errors import InvalidForwarded
from restmq.web.addresses import canonical_network, forwarded_address, parse_networks
from restmq.web.peers import PeerAddress

pytestmark = pytest.mark.unit


async def settle(
    proxies: tuple[str, ...], peer: str | None, headers: dict[str, str] | list[tuple[str, str]], kind: str = "http"
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """Run one request through PeerAddress: the scope the app saw (None when it was not called) and
    what the middleware sent itself."""
    seen: list[dict[str, Any]] = []
    sent: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope)

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"} if kind == "websocket" else {"type": "http.request", "body": b""}

    async def send(message: Any) -> None:
        sent.append(message)

    pairs = headers.items() if isinstance(headers, dict) else headers
    scope = {
        "type": kind,
        "method": "GET",
        "path": "/q/jobs",
        "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in pairs],
        "client": (peer, 40000) if peer is not None else None,
        "scheme": "http" if kind == "http" else "ws",
    }
    await PeerAddress(app, proxies)(scope, receive, send)
    return (seen[0] if seen else None), sent


async def client_of(proxies: tuple[str, ...], peer: str | None, **headers: str) -> str | None:
    scope, sent = await settle(proxies, peer, {k.replace("_", "-"): v for k, v in headers.items()})
    assert scope is not None, sent
    return scope["client"][0] if scope["client"] else None


async def test_without_named_proxies_forwarded_headers_change_nothing() -> None:
    for value in ("8.8.8.8", "garbage", ""):
        scope, _ = await settle((), "127.0.0.1", {"X-Forwarded-For": value, "X-Forwarded-Proto": "https"})
        assert scope is not None and scope["client"] == ("127.0.0.1", 40000) and scope["scheme"] == "http"


async def test_a_peer_that_is_not_a_named_proxy_is_the_client() -> None:
    assert await client_of(("10.0.0.0/8",), "192.0.2.1", X_Forwarded_For="8.8.8.8") == "192.0.2.1"


@pytest.mark.parametrize(
    ("forwarded_for", "client"),
    [
        ("8.8.8.8", "8.8.8.8"),
        ("1.1.1.1, 8.8.8.8", "8.8.8.8"),  # the left part is the client's to write
        ("8.8.8.8, 10.0.0.2", "8.8.8.8"),  # named proxies on the way are skipped
        ("10.0.0.3, 10.0.0.2", "10.0.0.3"),  # all named proxies: the left-most
        ("garbage, 8.8.8.8", "8.8.8.8"),  # entries left of the client are not read
        ("8.8.8.8:4711", "8.8.8.8"),
        ("[2001:db8::1]", "2001:db8::1"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("2001:db8::1", "2001:db8::1"),
        ("::ffff:8.8.8.8", "8.8.8.8"),
        ("[::ffff:10.0.0.2], 8.8.4.4", "8.8.4.4"),
    ],
)
async def test_a_named_proxy_forwards_the_right_most_address_that_is_not_a_proxy(
    forwarded_for: str, client: str
) -> None:
    assert await client_of(("127.0.0.1", "10.0.0.0/8"), "127.0.0.1", X_Forwarded_For=forwarded_for) == client


async def test_several_forwarded_for_headers_are_one_list() -> None:
    headers = [("X-Forwarded-For", "8.8.8.8"), ("X-Forwarded-For", "1.2.3.4, 10.0.0.1")]
    scope, _ = await settle(("127.0.0.1", "10.0.0.0/8"), "127.0.0.1", headers)
    assert scope is not None and scope["client"] == ("1.2.3.4", 0)


@pytest.mark.parametrize(
    "value", ["garbage", "8.8.8.8, garbage", "8.8.8.8,", "", "999.1.2.3", "unknown", "[::1", "[::1]x", "1.2.3.4:x"]
)
async def test_an_unparsable_forwarded_address_from_a_named_proxy_is_400(value: str) -> None:
    scope, sent = await settle(("127.0.0.1",), "127.0.0.1", {"X-Forwarded-For": value})
    assert scope is None
    assert sent[0]["status"] == 400
    assert orjson.loads(sent[1]["body"])["code"] == "FORWARDED_INVALID"


async def test_an_unparsable_forwarded_address_closes_a_websocket_before_it_is_accepted() -> None:
    scope, sent = await settle(("127.0.0.1",), "127.0.0.1", {"X-Forwarded-For": "garbage"}, kind="websocket")
    assert scope is None
    assert sent == [{"type": "websocket.close", "code": 1008, "reason": sent[0]["reason"]}]
    assert "garbage" in sent[0]["reason"]


@pytest.mark.parametrize(
    ("kind", "proto", "scheme"),
    [
        ("http", "https", "https"),
        ("http", "HTTP", "http"),
        ("http", "wss", "https"),
        ("websocket", "https", "wss"),
        ("websocket", "http", "ws"),
        ("http", "http, https", "https"),  # the nearest proxy's, the right-most
    ],
)
async def test_a_named_proxy_sets_the_scheme(kind: str, proto: str, scheme: str) -> None:
    seen, _ = await settle(("127.0.0.1",), "127.0.0.1", {"X-Forwarded-Proto": proto}, kind=kind)
    assert seen is not None and seen["scheme"] == scheme


async def test_an_unknown_forwarded_scheme_is_400() -> None:
    scope, sent = await settle(("127.0.0.1",), "127.0.0.1", {"X-Forwarded-Proto": "gopher"})
    assert scope is None and sent[0]["status"] == 400


async def test_an_ipv4_mapped_peer_is_ipv4_and_can_be_the_named_proxy() -> None:
    assert await client_of((), "::ffff:127.0.0.1") == "127.0.0.1"
    assert await client_of((), "::1") == "::1"
    assert await client_of(("127.0.0.1",), "::ffff:127.0.0.1", X_Forwarded_For="8.8.8.8") == "8.8.8.8"
    assert await client_of((), None) is None


def test_proxy_lists_and_acl_networks_are_parsed_strictly() -> None:
    assert parse_networks(["127.0.0.1", "10.0.0.5/8", "::1"]) == (
        ipaddress.ip_network("127.0.0.1/32"),
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("::1/128"),
    )
    with pytest.raises(ValueError, match="'\\*' is not an address or CIDR network"):
        parse_networks(["*"])
    assert canonical_network(ipaddress.ip_network("::ffff:10.0.0.0/104")) == ipaddress.ip_network("10.0.0.0/8")
    assert canonical_network(ipaddress.ip_network("::/0")) == ipaddress.ip_network("::/0")


def test_forwarded_entries() -> None:
    assert forwarded_address(" 8.8.8.8 ") == (ipaddress.ip_address("8.8.8.8"), 0)
    assert forwarded_address("[::1]:80") == (ipaddress.ip_address("::1"), 80)
    for bad in ("8.8.8.8:99999", "[::1]:", "1.2.3", "010.1.1.1"):
        with pytest.raises(InvalidForwarded):
            forwarded_address(bad)
