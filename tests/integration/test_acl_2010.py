"""acl.conf in its 2010 syntax on a real `restmq serve` (issue 17): the example file the 2010 release
shipped starts the server as it is, and `all`, trailing-dot prefixes and `username` alone decide as RestMQ
2010 did. Clients connect from several loopback addresses (127.0.0.0/8 all reach the server), so the
address rules meet real peers."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.helpers.auth import SHIPPED_2010, basic, restmq_cli, uncommented_2010, write_acl
from tests.helpers.server import ServeProcess, serve

pytestmark = pytest.mark.integration

ACL_2010 = """\
[rest:producer]
hosts_allow = 127.0.0.1 127.0.2.
hosts_deny = all
username = lero
password = lero

[rest:consumer]
hosts_allow = all
hosts_deny = 127.0.3.

[comet:consumer]
hosts_deny = all

[websocket:consumer]
username = lerr
"""


def status_from(server: ServeProcess, source: str, method: str, path: str, **kwargs: object) -> int:
    with httpx.Client(transport=httpx.HTTPTransport(local_address=source), timeout=20) as http:
        return http.request(method, server.url + path, **kwargs).status_code  # type: ignore[arg-type]


def test_the_shipped_2010_example_starts_the_server_as_it_is(redis_url: str, tmp_path: Path) -> None:
    with serve(["--redis", redis_url, "--acl", str(SHIPPED_2010)], tmp_path) as server:
        assert status_from(server, "127.0.0.1", "POST", "/q/jobs", data={"value": "hello"}) == 200
        assert status_from(server, "127.0.5.5", "GET", "/q/jobs") == 200  # every section open, as it was
    assert "acl (" in server.log()


def test_the_shipped_2010_example_with_its_rules_on(redis_url: str, tmp_path: Path) -> None:
    with serve(["--redis", redis_url, "--acl", str(uncommented_2010(tmp_path))], tmp_path) as server:
        lero = basic("lero", "lero")
        assert status_from(server, "127.0.0.1", "POST", "/q/jobs", data={"value": "x"}) == 401
        assert status_from(server, "127.0.0.1", "POST", "/q/jobs", data={"value": "x"}, headers=lero) == 200
        assert status_from(server, "127.0.0.7", "POST", "/q/jobs", data={"value": "x"}, headers=lero) == 403
        zz = basic("zz", "bla")
        assert status_from(server, "127.0.0.1", "GET", "/q/jobs", headers=zz) == 200
    assert "hosts_deny: 192.168.0. is 192.168.0.0/24" in server.log()


def test_2010_rules_decide_by_prefix_by_all_and_by_user(redis_url: str, tmp_path: Path) -> None:
    with serve(["--redis", redis_url, "--acl", write_acl(tmp_path, ACL_2010)], tmp_path) as server:
        lero, add = basic("lero", "lero"), {"data": {"value": "x"}}
        # producer: 127.0.0.1 and the prefix 127.0.2. with lero's password; `hosts_deny = all` refuses the rest
        assert status_from(server, "127.0.0.1", "POST", "/q/jobs", **add) == 401
        assert status_from(server, "127.0.0.1", "POST", "/q/jobs", headers=basic("lero", "x"), **add) == 401
        assert status_from(server, "127.0.0.1", "POST", "/q/jobs", headers=lero, **add) == 200
        assert status_from(server, "127.0.2.9", "POST", "/q/jobs", headers=lero, **add) == 200
        assert status_from(server, "127.0.4.1", "POST", "/q/jobs", headers=lero, **add) == 403
        # consumer: `hosts_allow = all` but the prefix 127.0.3.
        assert status_from(server, "127.0.4.1", "GET", "/q/jobs") == 200
        assert status_from(server, "127.0.3.200", "GET", "/q/jobs") == 403
        # comet: `hosts_deny = all` alone refuses every address
        assert status_from(server, "127.0.0.1", "GET", "/c/jobs") == 403
        assert status_from(server, "127.0.4.1", "GET", "/c/jobs") == 403
    log = server.log()
    assert "hosts_allow: 127.0.2. is 127.0.2.0/24" in log and "hosts_deny: 127.0.3. is 127.0.3.0/24" in log
    assert "hosts_deny = all without hosts_allow refuses every address" in log
    assert "username lerr without a password asks no credentials" in log


def test_a_bad_2010_prefix_stops_the_server_with_a_clear_error(tmp_path: Path) -> None:
    acl = write_acl(tmp_path, "[rest:producer]\nhosts_allow = 192.168.0.1.\n")
    result = restmq_cli("serve", "--acl", acl, "--data-dir", str(tmp_path / "data"))
    assert result.returncode == 2
    assert "'192.168.0.1.' is not an address prefix such as 192.168.0." in result.stderr
