"""acl.conf parsing and host/credential rules, on constructed inputs (no server).

Requests are built as real Starlette connections from an ASGI scope with a chosen client address,
so addresses other than 127.0.0.1 can be checked without a network.
"""

from __future__ import annotations

import base64
import tempfile
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import HTTPConnection

from restmq.errors import BadRequest, Forbidden, Unauthorized
from restmq.web.acl_file import load_acl
from restmq.web.auth import CATEGORIES, COMET, CONSUMER, PRODUCER, WEBSOCKET, Access, AclRule
from restmq.web.browser import OriginPolicy

pytestmark = pytest.mark.unit


def rule(allow: str = "", deny: str = "", **credentials: str) -> AclRule:
    """An AclRule parsed exactly as acl.conf would give it."""
    return load_acl_text(
        "[rest:producer]\n"
        + (f"hosts_allow = {allow}\n" if allow else "")
        + (f"hosts_deny = {deny}\n" if deny else "")
        + "".join(f"{k} = {v}\n" for k, v in credentials.items())
    )[PRODUCER]


def load_acl_text(text: str) -> dict[str, AclRule]:
    with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as handle:
        handle.write(text)
    path = Path(handle.name)
    try:
        return load_acl(path)
    finally:
        path.unlink()


def connection(
    client: str | None = "127.0.0.1",
    *,
    kind: str = "http",
    headers: dict[str, str] | None = None,
    query: str = "",
) -> HTTPConnection:
    scope = {
        "type": kind,
        "method": "GET",
        "path": "/q/jobs",
        "raw_path": b"/q/jobs",
        "query_string": query.encode(),
        "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()],
        "client": (client, 40000) if client is not None else None,
        "server": ("127.0.0.1", 8888),
        "scheme": "http" if kind == "http" else "ws",
    }
    return HTTPConnection(scope)


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


# -- AclRule.admits: exact addresses, CIDR networks, deny first ------------------------------------


@pytest.mark.parametrize(
    ("allow", "deny", "address", "admitted"),
    [
        ("10.0.0.1", "", "10.0.0.1", True),
        ("10.0.0.1", "", "10.0.0.12", False),  # an address is not a prefix
        ("10.0.0.1", "", "10.0.0.10", False),
        ("10.0.0.1", "", "110.0.0.1", False),
        ("10.0.0.0/24", "", "10.0.0.0", True),
        ("10.0.0.0/24", "", "10.0.0.255", True),
        ("10.0.0.0/24", "", "10.0.1.0", False),
        ("10.0.0.0/24", "", "9.255.255.255", False),
        ("10.0.0.0/8", "10.0.0.12", "10.0.0.12", False),  # a deny rule wins
        ("10.0.0.0/8", "10.0.0.12", "10.0.0.13", True),
        ("10.0.0.0/8", "10.0.0.12", "10.0.0.1", True),
        ("10.0.0.12", "10.0.0.0/24", "10.0.0.12", False),  # deny wins even over an exact allow
        ("", "10.0.0.0/24", "10.0.0.7", False),
        ("", "10.0.0.0/24", "10.0.1.7", True),  # no allow list: everything not denied
        ("127.0.0.1, 10.0.0.0/8", "", "127.0.0.1", True),
        ("127.0.0.1, 10.0.0.0/8", "", "127.0.0.2", False),
        ("127.0.0.1 10.0.0.0/8", "", "10.9.9.9", True),  # spaces separate too
        ("::1", "", "::1", True),
        ("::1", "", "127.0.0.1", False),
        ("127.0.0.1", "", "::1", False),
        ("fd00::/8", "", "fd12:3456::1", True),
        ("fd00::/8", "", "fe80::1", False),
        ("", "::1", "::1", False),
        ("", "", "203.0.113.9", True),
        # issue 13: an IPv4 client on a dual-stack socket is matched as IPv4
        ("127.0.0.1", "", "::ffff:127.0.0.1", True),
        ("", "127.0.0.0/8", "::ffff:127.0.0.5", False),
        ("10.0.0.0/8", "", "::ffff:10.1.2.3", True),
        ("10.0.0.0/8", "", "::ffff:11.1.2.3", False),
        ("::ffff:10.0.0.0/104", "", "10.1.2.3", True),  # a rule written IPv4-mapped is its IPv4 network
        ("", "::ffff:10.0.0.12", "10.0.0.12", False),
        ("::1", "", "::ffff:0.0.0.1", False),
    ],
)
def test_admits(allow: str, deny: str, address: str, admitted: bool) -> None:
    assert rule(allow, deny).admits(address) is admitted


def test_a_host_network_written_loosely_is_its_network() -> None:
    # 10.0.0.5/24 is read as 10.0.0.0/24 (strict=False), not refused and not a single host.
    loose = rule("10.0.0.5/24")
    assert loose.admits("10.0.0.200") and not loose.admits("10.0.1.5")


def test_an_unknown_peer_is_admitted_only_by_a_rule_without_host_lists() -> None:
    """Issue 13: a deny-only rule fails closed too; an address that cannot be parsed is never allowed."""
    assert not rule("127.0.0.1").admits(None)
    assert not rule("127.0.0.1").admits("not-an-address")
    assert rule().admits(None)
    assert rule(username="u", password="p").admits(None)
    assert not rule(deny="10.0.0.1").admits(None)
    assert not rule(deny="10.0.0.1").admits("garbage")
    assert not rule(deny="127.0.0.0/8").admits("")


def test_credentials_are_compared_exactly() -> None:
    secured = rule(username="producer", password="s3cret")
    assert secured.credentials_match("producer", "s3cret")
    assert not secured.credentials_match("producer", "s3cret ")
    assert not secured.credentials_match("Producer", "s3cret")
    assert not secured.credentials_match("producer", "")
    assert not secured.credentials_match("", "s3cret")
    assert not rule().credentials_match("", "")  # no username configured: nobody matches


# -- load_acl: the original format, and clear errors for bad files -----------------------------------


def test_the_documented_example_loads() -> None:
    rules = load_acl_text(
        "[rest:producer]        ; adds, and admin actions\n"
        "hosts_allow = 127.0.0.1, 10.0.0.0/8\n"
        "hosts_deny = 10.0.0.12\n"
        "username = producer\n"
        "password = secret\n"
        "\n"
        "[rest:consumer]\n"
        "hosts_allow = 10.0.0.0/8\n"
        "\n"
        "[comet:consumer]\n"
        "\n"
        "[websocket:consumer]\n"
        "username = ws\n"
        "password = secret\n"
    )
    assert set(rules) == set(CATEGORIES)
    producer = rules[PRODUCER]
    assert producer.username == "producer" and producer.password == "secret"
    assert producer.admits("10.1.2.3") and not producer.admits("10.0.0.12") and not producer.admits("192.168.0.1")
    assert rules[COMET] == AclRule()  # an empty section is open
    assert rules[WEBSOCKET].username == "ws"


def test_a_missing_section_is_absent() -> None:
    rules = load_acl_text("[rest:producer]\nhosts_allow = 10.0.0.0/8\n")
    assert set(rules) == {PRODUCER}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[rest:admin]\nhosts_allow = 127.0.0.1\n", "unknown section [rest:admin]"),
        ("[rest:producer]\nhost_allow = 127.0.0.1\n", "unknown keys host_allow"),
        ("[rest:producer]\nhosts_allow = 10.0.0.0/33\n", "'10.0.0.0/33' is not an address or CIDR network"),
        ("[rest:producer]\nhosts_allow = 10.0.0.256\n", "'10.0.0.256' is not an address or CIDR network"),
        ("[rest:consumer]\nhosts_deny = localhost\n", "'localhost' is not an address or CIDR network"),
        ("[rest:producer]\npassword = secret\n", "username and password go together"),
    ],
)
def test_a_bad_file_is_refused_with_a_clear_error(text: str, message: str) -> None:
    with pytest.raises(ValueError) as raised:
        load_acl_text(text)
    assert message in str(raised.value)
    assert ".conf" in str(raised.value)  # names the file


def test_an_unreadable_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot read ACL file"):
        load_acl(tmp_path / "missing.conf")


def test_a_file_that_is_not_ini_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "acl.conf"
    path.write_text("hosts_allow = 127.0.0.1\n")  # no section header
    with pytest.raises(Exception, match="section"):
        load_acl(path)


# -- Access.check: decisions that are made before the backend is asked -------------------------------
# (store=None: any of these reaching the backend would fail the test with an AttributeError)


async def test_a_denied_host_is_forbidden_before_anything_else() -> None:
    access = Access(None, {PRODUCER: rule("10.0.0.0/8", "10.0.0.12")})  # type: ignore[arg-type]
    with pytest.raises(Forbidden, match="10.0.0.12 may not use rest:producer") as raised:
        await access.check(connection("10.0.0.12", headers=basic("u", "p")), PRODUCER, "jobs", "write")
    assert raised.value.status == 403 and raised.value.code == "FORBIDDEN"
    with pytest.raises(Forbidden):
        await access.check(connection("192.168.1.1"), PRODUCER, "jobs", "write")
    with pytest.raises(Forbidden):  # even a bearer token does not admit a denied host
        await access.check(connection("10.0.0.12", headers={"Authorization": "Bearer rmq_x"}), PRODUCER, "q", "write")


@pytest.mark.parametrize(("client", "admitted"), [("10.0.0.1", True), ("10.0.0.12", False), ("10.0.0.10", False)])
async def test_an_exact_address_admits_only_itself(client: str, admitted: bool) -> None:
    access = Access(None, {CONSUMER: rule("10.0.0.1", username="c", password="p")})  # type: ignore[arg-type]
    conn = connection(client, headers=basic("c", "p"))
    if admitted:
        assert await access.check(conn, CONSUMER, "jobs", "read") is None
    else:
        with pytest.raises(Forbidden):
            await access.check(conn, CONSUMER, "jobs", "read")


async def test_ipv6_loopback() -> None:
    access = Access(None, {CONSUMER: rule("::1", username="c", password="p")})  # type: ignore[arg-type]
    assert await access.check(connection("::1", headers=basic("c", "p")), CONSUMER, "q", "read") is None
    with pytest.raises(Forbidden):
        await access.check(connection("127.0.0.1", headers=basic("c", "p")), CONSUMER, "q", "read")


async def test_basic_credentials_right_wrong_missing() -> None:
    access = Access(None, {PRODUCER: rule(username="producer", password="secret")})  # type: ignore[arg-type]
    assert await access.check(connection(headers=basic("producer", "secret")), PRODUCER, "q", "write") is None
    for headers in ({}, basic("producer", "wrong"), basic("other", "secret"), {"Authorization": "Basic " + "cHJv"}):
        with pytest.raises((Unauthorized, BadRequest)) as raised:
            await access.check(connection(headers=headers), PRODUCER, "q", "write")
        assert raised.value.status in (400, 401)
    with pytest.raises(Unauthorized) as missing:
        await access.check(connection(), PRODUCER, "q", "write")
    assert missing.value.code == "UNAUTHORIZED" and "rest:producer" in missing.value.message


async def test_malformed_basic_credentials_are_a_bad_request() -> None:
    access = Access(None, {PRODUCER: rule(username="u", password="p")})  # type: ignore[arg-type]
    with pytest.raises(BadRequest) as raised:
        await access.check(connection(headers={"Authorization": "Basic !!notbase64"}), PRODUCER, "q", "write")
    assert raised.value.code == "AUTH_INVALID"


async def test_the_websocket_cookie_counts_only_on_websockets() -> None:
    access = Access(None, {WEBSOCKET: rule(username="ws", password="secret")})  # type: ignore[arg-type]
    cookie = {"Cookie": "auth=ws:secret"}
    assert await access.check(connection(kind="websocket", headers=cookie), WEBSOCKET, "q", "read") is None
    with pytest.raises(Unauthorized):
        await access.check(connection(kind="websocket", headers={"Cookie": "auth=ws:nope"}), WEBSOCKET, "q", "read")
    with pytest.raises(Unauthorized):
        await access.check(connection(kind="websocket", headers={"Cookie": "auth=wssecret"}), WEBSOCKET, "q", "read")
    with pytest.raises(Unauthorized):  # a plain HTTP request cannot use the cookie
        await access.check(connection(kind="http", headers=cookie), WEBSOCKET, "q", "read")


async def test_the_websocket_cookie_counts_only_from_trusted_origins() -> None:
    """Issue 13: a page on any origin that opens a WebSocket to this host carries the cookie."""
    access = Access(None, {WEBSOCKET: rule(username="ws", password="secret")})  # type: ignore[arg-type]
    app = Starlette()
    app.state.origins = OriginPolicy(["*", "https://app.example"])

    def socket(origin: str) -> HTTPConnection:
        conn = connection(kind="websocket", headers={"Cookie": "auth=ws:secret", "Origin": origin, "Host": "mq:8888"})
        conn.scope["app"] = app
        return conn

    for trusted in ("https://app.example", "http://mq:8888", "https://mq:8888"):
        assert await access.check(socket(trusted), WEBSOCKET, "q", "read") is None, trusted
    for foreign in ("https://evil.example", "null", "http://mq:8889", "http://app.example"):
        with pytest.raises(Unauthorized):
            await access.check(socket(foreign), WEBSOCKET, "q", "read")


async def test_a_malformed_bearer_token_is_invalid_without_a_backend_lookup() -> None:
    access = Access(None, {})  # type: ignore[arg-type]
    for token in ("nope", "rmq_short_secret", "rmq_0123456789ab", "rmq_0123456789ab_"):
        with pytest.raises(Unauthorized) as raised:
            await access.check(connection(headers={"Authorization": f"Bearer {token}"}), CONSUMER, "q", "read")
        assert raised.value.code == "TOKEN_INVALID"
        with pytest.raises(Unauthorized):
            await access.check(connection(query=f"token={token}"), CONSUMER, "q", "read")
