"""The rules for browser-borne requests (issue 13), without sockets: Host parsing and the allowlist, origins."""

from __future__ import annotations

import pytest

from restmq.web.browser import OriginPolicy, origin_of
from restmq.web.hosts import HostAllowlist, local_addresses, split_authority

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("example.com", ("example.com", None)),
        ("Example.COM:8080", ("example.com", "8080")),
        ("localhost.", ("localhost", None)),
        ("[::1]:8888", ("::1", "8888")),
        ("[::1]", ("::1", None)),
        ("127.0.0.1:1", ("127.0.0.1", "1")),
        ("::1", None),  # IPv6 needs its brackets
        ("a b", ("a b", None)),  # split only; the allowlist refuses the name
        ("host:", None),
        ("host:x", None),
        ("[::1", None),
        ("[]", None),
        ("", None),
        (":80", None),
    ],
)
def test_split_authority(text: str, parts: tuple[str, str | None] | None) -> None:
    assert split_authority(text) == parts


def test_the_default_allowlist_serves_loopback_localhost_and_the_bound_address() -> None:
    hosts = HostAllowlist([], "10.9.8.7")
    served = [b"localhost", b"LocalHost:1", b"api.localhost", b"127.0.0.1", b"127.255.0.9:80", b"[::1]:8888"]
    served += [b"10.9.8.7", b"10.9.8.7:8888", b"[::ffff:127.0.0.1]"]
    for host in served:
        assert hosts.allows(host), host
    refused = [b"example.com", b"localhost.example.com", b"127.0.0.1.nip.io", b"10.9.8.6", b"a b", b"x:y", b"[::2]"]
    for host in refused:
        assert not hosts.allows(host), host


def test_the_machine_s_own_addresses_are_served() -> None:
    hosts = HostAllowlist([], "0.0.0.0")
    own = sorted(local_addresses())
    assert "127.0.0.1" in own
    for address in own:
        assert hosts.allows((f"[{address}]" if ":" in address else address).encode()), address


def test_listed_names_patterns_and_star() -> None:
    hosts = HostAllowlist(["queue.example.com", "*.corp.example", "[2001:db8::7]", "10.1.2.3:9"], "127.0.0.1")
    for host in (b"queue.example.com", b"QUEUE.example.com.:1", b"a.corp.example", b"x.y.corp.example"):
        assert hosts.allows(host), host
    for host in (b"[2001:db8::7]:80", b"10.1.2.3"):
        assert hosts.allows(host), host
    for host in (b"corp.example", b"acorp.example", b"queue.example.com.evil", b"example.com"):
        assert not hosts.allows(host), host
    assert HostAllowlist(["*"], "127.0.0.1").allows(b"anything.example")


@pytest.mark.parametrize("entry", ["bad host", "*.", "*", "a..b", "-x.example", "*x.example", "http://x"])
def test_a_bad_entry_is_refused(entry: str) -> None:
    if entry == "*":
        HostAllowlist([entry], "127.0.0.1")  # the one wildcard that stands alone
        return
    with pytest.raises(ValueError, match="not a host name"):
        HostAllowlist([entry], "127.0.0.1")


def test_made_up_hosts_do_not_grow_the_cache_without_bound() -> None:
    hosts = HostAllowlist([], "127.0.0.1")
    for n in range(5000):
        assert not hosts.allows(b"n%d.example" % n)
    assert len(hosts._verdicts) <= 1024


def test_own_origin_is_the_host_and_port_of_the_request() -> None:
    policy = OriginPolicy([])
    assert policy.own("http://mq:8888", b"mq:8888", tls=False)
    assert policy.own("https://mq.example.com", b"mq.example.com", tls=False)  # a TLS proxy in front
    assert policy.own("https://mq.example.com", b"mq.example.com:443", tls=True)
    assert policy.own("http://mq", b"mq:80", tls=False)
    assert not policy.own("http://mq:8889", b"mq:8888", tls=False)
    assert not policy.own("http://mq.example.com", b"mq.example.com", tls=True)  # an http page on a TLS server
    assert not policy.own("https://mq", b"mq:80", tls=False)
    assert not policy.own("http://other:8888", b"mq:8888", tls=False)
    assert not policy.own("null", b"mq:8888", tls=False)
    assert not policy.own("http://mq:8888", None, tls=False)
    assert not policy.own("ftp://mq:8888", b"mq:8888", tls=False)


def test_listed_origins_and_the_wildcard() -> None:
    policy = OriginPolicy(["https://App.example/", "*"])
    assert policy.trusted("https://app.example", b"mq", tls=False)
    assert not policy.trusted("https://evil.example", b"mq", tls=False)  # '*' never trusts credentials
    assert policy.allows("https://evil.example", b"mq", tls=False)
    listed_only = OriginPolicy(["https://app.example"])
    assert not listed_only.allows("https://evil.example", b"mq", tls=False)


def test_origin_of_a_referer() -> None:
    assert origin_of("https://App.example/page.html?x=1#y") == "https://app.example"
    assert origin_of("http://127.0.0.1:3000") == "http://127.0.0.1:3000"
    assert origin_of("https://evil.example/https://app.example") == "https://evil.example"
