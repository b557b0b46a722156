"""Safe defaults of `restmq serve` (issue 13): the authentication mode (`--auth tokens|acl|none`, or
unset: auto), the rule that a non-loopback bind needs effective authentication, and a server that
once required tokens never opening up again when the last token is revoked.

Servers that must bind 0.0.0.0 or :: run in a private network namespace with only loopback up
(tests/helpers/netns.py), with their clients inside it too."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers.auth import basic, bearer, create_token, restmq_cli, token_id, write_acl
from tests.helpers.netns import NetNamespace, network_namespace
from tests.helpers.server import ServeProcess, free_port, serve
from tests.helpers.wait import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TOKEN_CACHE = 5.0  # seconds a server trusts its last look at the token list (restmq/web/auth.py)
EFFECTIVE_ACL = "[rest:producer]\nhosts_allow = 127.0.0.1\n"
SERVERS = {"uvicorn": [], "uvicorn-workers": ["--workers", "2"], "granian": ["--server", "granian"]}


@pytest.fixture
def netns() -> Iterator[NetNamespace]:
    with network_namespace() as namespace:
        yield namespace


def revoke(redis_url: str, token: str) -> None:
    result = restmq_cli("token", "revoke", token_id(token), "--redis", redis_url)
    assert result.returncode == 0 and f"revoked {token_id(token)}" in result.stdout, result.stdout + result.stderr


def stays(predicate: Callable[[], bool], seconds: float, what: str) -> None:
    """Assert `predicate` holds at every look for `seconds`: a cache that could reopen the server
    expires within that time, so the property is watched across it rather than checked once."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert predicate(), what
        time.sleep(0.25)


def revoke_and_stay_closed(redis_url: str, token: str, status: Callable[[dict[str, str]], int]) -> None:
    """Revoke `token`, wait until a request with it is refused, then watch that a request without any token
    stays refused across the token cache (`status(headers)`: the status of GET /q/x with these headers)."""
    revoke(redis_url, token)
    wait_until(
        lambda: status(bearer(token)) == 401,
        timeout=TOKEN_CACHE * 4,
        interval=0.2,
        what="the revoked token to be refused",
    )
    stays(lambda: status({}) == 401, TOKEN_CACHE + 1, "open after the revoke")


def refused_at_start(process: ServeProcess) -> str:
    """The log of a `restmq serve` that must refuse to start (exit 2), never serve."""
    code = process.start_outcome()
    log = process.log()
    assert code is not None, f"the server started and served instead of refusing:\n{log}"
    assert code == 2, log
    assert "Traceback" not in log, log
    return log


# -- a non-loopback bind needs effective authentication ------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["", "[rest:producer]\n[rest:consumer]\n", "[rest:consumer]\nhosts_deny = 10.0.0.1\n"],
    ids=["empty", "sections-without-rules", "deny-only"],
)
def test_an_acl_file_without_rules_does_not_open_a_public_address(
    redis_url: str, tmp_path: Path, netns: NetNamespace, text: str
) -> None:
    """`--acl empty.conf --host 0.0.0.0` used to start fully open (13)."""
    acl = write_acl(tmp_path, text, "empty.conf")
    log = refused_at_start(netns.serve(["--redis", redis_url, "--host", "0.0.0.0", "--acl", acl], tmp_path))
    assert "refusing to listen on 0.0.0.0" in log and "empty.conf has no rule" in log, log
    assert "--insecure-open" in log, log


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_a_public_address_without_any_authentication_is_refused(
    redis_url: str, tmp_path: Path, netns: NetNamespace, host: str
) -> None:
    """No --auth, no --acl, no token: refused, and the message names every way out (13)."""
    log = refused_at_start(netns.serve(["--redis", redis_url, "--host", host], tmp_path))
    assert f"refusing to listen on {host} without access control" in log, log
    for way_out in ("--acl FILE", "restmq token create", "--auth tokens", "--insecure-open"):
        assert way_out in log, (way_out, log)


def test_auth_none_on_a_public_address_needs_insecure_open(redis_url: str, tmp_path: Path, netns: NetNamespace) -> None:
    """`--auth none` is no authentication even when tokens exist: refused on 0.0.0.0 unless
    --insecure-open, and with it the server is open to requests without credentials (13)."""
    create_token(redis_url, "*", "admin")  # a token used to be enough to get onto 0.0.0.0
    args = ["--redis", redis_url, "--host", "0.0.0.0", "--auth", "none"]
    log = refused_at_start(netns.serve(args, tmp_path, "refused"))
    assert "--auth none" in log and "--insecure-open" in log, log
    server = netns.serve([*args, "--insecure-open"], tmp_path, "insecure").wait_ready()
    try:
        assert netns.request(server.url + "/q/x") == 204
        assert "auth: none" in server.log(), server.log()
    finally:
        server.stop()


def test_a_public_address_allowed_by_a_token_stays_closed_when_it_is_revoked(
    redis_url: str, tmp_path: Path, netns: NetNamespace
) -> None:
    """Unset --auth on 0.0.0.0 with a token in the backend resolves to tokens at start-up, for
    good: revoking the last token used to make the server open to everyone (13)."""
    token = create_token(redis_url, "*", "admin")
    server = netns.serve(["--redis", redis_url, "--host", "0.0.0.0"], tmp_path).wait_ready()
    try:
        assert "auth: tokens" in server.log(), server.log()
        assert netns.request(server.url + "/q/x", headers=bearer(token)) == 204
        assert netns.request(server.url + "/q/x") == 401
        revoke_and_stay_closed(redis_url, token, lambda headers: netns.request(server.url + "/q/x", headers=headers))
    finally:
        server.stop()


# -- --auth tokens ---------------------------------------------------------------------------------


@pytest.mark.parametrize("server_args", SERVERS.values(), ids=SERVERS.keys())
def test_tokens_mode_without_any_token_answers_401(redis_url: str, tmp_path: Path, server_args: list[str]) -> None:
    """`--auth tokens` never falls back to open, on every server and in every worker (13)."""
    with serve(["--redis", redis_url, "--auth", "tokens", *server_args], tmp_path) as server:
        assert "auth: tokens" in server.log(), server.log()
        with httpx.Client(base_url=server.url, timeout=10) as client:
            for _ in range(4):  # several connections: with --workers 2 both workers answer
                with httpx.Client(base_url=server.url, timeout=10) as fresh:
                    response = fresh.get("/q/x")
                assert response.status_code == 401, response.text
                assert response.json()["code"] == "UNAUTHORIZED"
            assert client.post("/q/x", data={"value": "v"}).status_code == 401
            assert client.get("/stats/").status_code == 401
            assert client.get("/metrics").status_code == 401
            assert client.get("/sse/x").status_code == 401
            assert client.get("/health").status_code == 200 and client.get("/ready").status_code == 200


def test_tokens_mode_stays_closed_after_the_last_token_is_revoked(redis_url: str, tmp_path: Path) -> None:
    with serve(["--redis", redis_url, "--auth", "tokens"], tmp_path) as server:
        token = create_token(redis_url, "*", "admin")
        with httpx.Client(base_url=server.url, timeout=10) as client:
            assert client.get("/q/x", headers=bearer(token)).status_code == 204
            revoke_and_stay_closed(redis_url, token, lambda headers: client.get("/q/x", headers=headers).status_code)


def test_tokens_mode_applies_acl_host_rules_too(redis_url: str, tmp_path: Path) -> None:
    """With --acl, tokens mode still checks the host rules; Basic credentials do not replace a token."""
    acl = write_acl(tmp_path, "[rest:producer]\nusername = p\npassword = s\n[rest:consumer]\nhosts_deny = 127.0.0.1\n")
    token = create_token(redis_url, "*", "admin")
    with serve(["--redis", redis_url, "--auth", "tokens", "--acl", acl], tmp_path) as server:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            assert client.get("/q/x", headers=bearer(token)).status_code == 403  # the host rule
            assert client.post("/q/x", data={"value": "v"}, headers=basic("p", "s")).status_code == 401
            assert client.post("/q/x", data={"value": "v"}, headers=bearer(token)).status_code == 200


# -- unset --auth on loopback: today's behaviour, latched ------------------------------------------


def test_auto_on_loopback_keeps_requiring_tokens_once_it_has(redis_url: str, tmp_path: Path) -> None:
    """Open on loopback until a token exists; then tokens for good, even after the last revoke (13)."""
    with serve(["--redis", redis_url], tmp_path) as server:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            assert client.get("/q/x").status_code == 204  # no token yet: open on loopback
            token = create_token(redis_url, "*", "admin")
            wait_until(
                lambda: client.get("/q/x").status_code == 401,
                timeout=TOKEN_CACHE * 4,
                interval=0.2,
                what="the first token to lock the server",
            )
            assert client.get("/q/x", headers=bearer(token)).status_code == 204
            revoke_and_stay_closed(redis_url, token, lambda headers: client.get("/q/x", headers=headers).status_code)


def test_auto_on_loopback_starts_locked_when_tokens_exist(redis_url: str, tmp_path: Path) -> None:
    """A token that exists at start-up latches the server before its first request."""
    token = create_token(redis_url, "*", "admin")
    with serve(["--redis", redis_url], tmp_path) as server:
        assert "auth: tokens" in server.log(), server.log()
        revoke(redis_url, token)
        with httpx.Client(base_url=server.url, timeout=10) as client:
            assert client.get("/q/x").status_code == 401


# -- --auth acl and --auth none --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("acl_text", "message"),
    [(None, "--auth acl needs --acl FILE"), ("[rest:consumer]\nhosts_deny = 10.0.0.1\n", "acl.conf has no rule")],
    ids=["no-file", "no-rule"],
)
def test_acl_mode_needs_an_acl_file_with_rules(
    redis_url: str, tmp_path: Path, acl_text: str | None, message: str
) -> None:
    args = ["--redis", redis_url, "--auth", "acl"]
    if acl_text is not None:
        args += ["--acl", write_acl(tmp_path, acl_text)]
    log = refused_at_start(ServeProcess(args, free_port(), tmp_path / "serve.log"))
    assert message in log, log


def test_acl_mode_lets_the_acl_decide_and_accepts_tokens(redis_url: str, tmp_path: Path) -> None:
    """`--auth acl`: the file's rules decide, whether or not tokens exist; a bearer token is accepted
    where the file asks for credentials, and a wrong one is refused."""
    token = create_token(redis_url, "*", "admin")
    acl = write_acl(tmp_path, "[rest:producer]\nusername = p\npassword = s\n[rest:consumer]\nhosts_allow = 127.0.0.1\n")
    with serve(["--redis", redis_url, "--auth", "acl", "--acl", acl], tmp_path) as server:
        assert "auth: acl" in server.log(), server.log()
        with httpx.Client(base_url=server.url, timeout=10) as client:
            assert client.get("/q/x").status_code == 204  # admitted by the host rule, no token needed
            assert client.post("/q/x", data={"value": "v"}).status_code == 401
            assert client.post("/q/x", data={"value": "v"}, headers=basic("p", "s")).status_code == 200
            assert client.post("/q/x", data={"value": "v"}, headers=bearer(token)).status_code == 200
            assert client.post("/q/x", data={"value": "v"}, headers=bearer("rmq_0123456789ab_no")).status_code == 401


def test_none_mode_is_open_but_checks_the_tokens_it_is_shown(redis_url: str, tmp_path: Path) -> None:
    """`--auth none` on loopback: open even with tokens in the backend; a presented token is still
    checked, so a client with a wrong or revoked token learns it (401) instead of passing unnoticed."""
    token = create_token(redis_url, "x", "read")
    with serve(["--redis", redis_url, "--auth", "none"], tmp_path) as server:
        assert "auth: none" in server.log(), server.log()
        with httpx.Client(base_url=server.url, timeout=10) as client:
            assert client.get("/q/x").status_code == 204
            assert client.post("/q/x", data={"value": "v"}).status_code == 200
            assert client.get("/q/x", headers=bearer("rmq_0123456789ab_no")).status_code == 401
            assert client.get("/q/y", headers=bearer(token)).status_code == 403  # its scope still holds


def test_none_mode_with_an_acl_file_is_refused(redis_url: str, tmp_path: Path) -> None:
    args = ["--redis", redis_url, "--auth", "none", "--acl", write_acl(tmp_path, EFFECTIVE_ACL)]
    log = refused_at_start(ServeProcess(args, free_port(), tmp_path / "serve.log"))
    assert "--auth none" in log and "--acl" in log, log
