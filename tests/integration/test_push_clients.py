"""Push subscriptions through the Python client (sync and async) and `restmq push add|list|remove` (issue 19),
against a real `restmq serve --push-allow 127.0.0.1` delivering to a real receiver."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from restmq.client import AsyncClient, Client
from restmq.client.errors import APIError
from tests.helpers.receiver import Receiver, receiver
from tests.helpers.server import ServeProcess, serve
from tests.helpers.wait import wait_until

pytestmark = pytest.mark.integration

SECRET = "whsec_" + base64.b64encode(os.urandom(24)).decode()


@pytest.fixture
def target() -> Iterator[Receiver]:
    with receiver() as found:
        yield found


@pytest.fixture
def pushing(redis_url: str, tmp_path: Path) -> Iterator[ServeProcess]:
    with serve(["--redis", redis_url, "--push-allow", "127.0.0.1"], tmp_path) as process:
        yield process


def cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "restmq", "push", *args, "--url", url]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def test_sync_client(pushing: ServeProcess, target: Receiver) -> None:
    with Client(pushing.url) as client:
        shown = client.push_add("jobs", target.url + "/ok", secret=SECRET, rate=100, backoff={"base": 0.5})
        assert shown["secret"] is True and shown["backoff"] == {"base": 0.5, "cap": 300.0}
        client.add("jobs", "hello")
        wait_until(lambda: target.count() == 1, 20, what="the delivery")
        wait_until(lambda: client.push_get("jobs")["delivered"] == 1, 20, what="the count")
        assert [s["queue"] for s in client.push_list()] == ["jobs"]
        assert client.push_remove("jobs") is True
        with pytest.raises(APIError) as refused:
            client.push_get("jobs")
        assert refused.value.status == 404
        with pytest.raises(TypeError):
            client.push_add("jobs", target.url, colour="red")


async def test_async_client(pushing: ServeProcess, target: Receiver) -> None:
    async with AsyncClient(pushing.url) as client:
        await client.push_add("a", target.url + "/ok", max_in_flight=2)
        await client.add("a", "x")
        await target.wait_count(1)
        assert (await client.push_list())[0]["max_in_flight"] == 2
        with pytest.raises(APIError) as refused:
            await client.push_add("a", "http://10.0.0.1/")
        assert refused.value.code == "PUSH_TARGET_NOT_ALLOWED"
        assert await client.push_remove("a") is True


def test_cli(pushing: ServeProcess, target: Receiver) -> None:
    added = cli(pushing.url, "add", "jobs", target.url + "/ok", "--secret", SECRET, "--rate", "5", "--backoff-cap", "9")
    assert added.returncode == 0, added.stderr
    shown = json.loads(added.stdout)
    assert (shown["rate"], shown["backoff"]["cap"], shown["secret"]) == (5.0, 9.0, True)
    assert SECRET not in added.stdout
    listed = cli(pushing.url, "list")
    assert listed.returncode == 0 and listed.stdout.startswith(f"jobs {target.url}/ok active delivered=0")
    as_json = cli(pushing.url, "list", "--json")
    assert json.loads(as_json.stdout)["queue"] == "jobs"
    bad = cli(pushing.url, "add", "jobs", "ftp://x")
    assert bad.returncode == 1 and "PARAMETER_INVALID" in bad.stderr + bad.stdout
    assert cli(pushing.url, "remove", "jobs").stdout.strip() == "removed the push subscription of jobs"
    assert cli(pushing.url, "remove", "jobs").stdout.strip() == "jobs had no push subscription"
