"""collectd's write_http plugin into RestMQ (issue 17): the real `collectd` daemon posts value lists in both its
formats and its notifications to `POST /collectd/data` and `/collectd/event`; the routes are producer routes
(ACL and tokens, write on the target queue), bounded by the body limit, and bad input is a clear 400."""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from restmq.config import Limits
from tests.helpers.auth import basic, bearer, create_token_async, write_acl
from tests.helpers.server import run_app, serve
from tests.helpers.wait import wait_until

pytestmark = pytest.mark.integration

COLLECTD = shutil.which("collectd") or "/usr/sbin/collectd"
TYPES_DB = Path("/usr/share/collectd/types.db")
WRITE_HTTP = Path("/usr/lib/collectd/write_http.so")
needs_collectd = pytest.mark.skipif(
    not (Path(COLLECTD).exists() and WRITE_HTTP.exists()), reason="collectd-core is not installed (see .ci/run)"
)

CONFIG = """\
Hostname "testhost"
Interval 1
BaseDir "{dir}"
PIDFile "{dir}/collectd.pid"
TypesDB "{types_db}"
LoadPlugin logfile
<Plugin logfile>
  LogLevel info
  File "{dir}/collectd.log"
</Plugin>
LoadPlugin memory
LoadPlugin threshold
LoadPlugin write_http
# A warning on every reading: memory used is always below this minimum.
<Plugin threshold>
  <Type "memory">
    Instance "used"
    WarningMin 1000000000000000
    Persist true
  </Type>
</Plugin>
<Plugin write_http>
  <Node "json">
    URL "{url}/collectd/data"
    Format "JSON"
    BufferSize 1024
  </Node>
  <Node "command">
    URL "{url}/collectd/data"
    Format "Command"
    BufferSize 1024
  </Node>
  <Node "events">
    URL "{url}/collectd/event"
    Format "JSON"
    Metrics false
    Notifications true
  </Node>
</Plugin>
"""


@contextlib.contextmanager
def collectd(url: str, directory: Path) -> Iterator[subprocess.Popen[bytes]]:
    """The real collectd daemon in the foreground, with a generated config posting to `url`."""
    config = directory / "collectd.conf"
    config.write_text(CONFIG.format(dir=directory, types_db=TYPES_DB, url=url))
    check = subprocess.run([COLLECTD, "-t", "-C", str(config)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr + check.stdout
    with open(directory / "collectd.out", "wb") as out:
        process = subprocess.Popen([COLLECTD, "-f", "-C", str(config)], stdout=out, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(20)


def drain(url: str, queue: str) -> list[Any]:
    """Every message waiting in `queue`, decoded."""
    answer = httpx.get(f"{url}/q/{queue}", params={"count": 1000})
    if answer.status_code == 204:
        return []
    assert answer.status_code == 200, answer.text
    return [orjson.loads(item["value"]) for item in answer.json()]


@needs_collectd
def test_collectd_write_http_json_command_and_notifications(redis_url: str, tmp_path: Path) -> None:
    data: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    with serve(["--redis", redis_url], tmp_path) as server, collectd(server.url, tmp_path) as daemon:

        def arrived() -> bool:
            assert daemon.poll() is None, (tmp_path / "collectd.log").read_text()
            data.extend(drain(server.url, "collectd_data"))
            events.extend(drain(server.url, "collectd_event"))
            formats = {"dsnames" in item for item in data}
            return formats == {True, False} and bool(events)

        wait_until(arrived, 60, 0.2, "collectd's value lists in both formats and a notification")
    assert {item["host"] for item in data} == {"testhost"}
    assert {item["plugin"] for item in data} == {"memory"}
    json_format = next(item for item in data if "dsnames" in item)
    command_format = next(item for item in data if "dsnames" not in item)
    assert json_format["dsnames"] == ["value"] and json_format["dstypes"] == ["gauge"]
    assert json_format.keys() - {"dsnames", "dstypes"} == command_format.keys()
    assert command_format["interval"] == 1.0 and isinstance(command_format["values"][0], int | float)
    assert events[0]["labels"]["alertname"] == "collectd_memory" and events[0]["labels"]["instance"] == "testhost"


async def test_queue_names_are_settings_and_each_value_list_is_a_message(redis_url: str) -> None:
    body = b"PUTVAL h/cpu-0/cpu-idle interval=10 1000:1 1010:2\r\nPUTVAL h/load/load N:0.5:0.25:0.125\r\n"
    async with run_app(redis_url, collectd_data_queue="metrics", collectd_event_queue="alerts") as url:
        async with httpx.AsyncClient(base_url=url) as http:
            added = await http.post("/collectd/data", content=body, headers={"Content-Type": "text/plain"})
            assert added.status_code == 200 and added.json() == {"keys": ["metrics:1", "metrics:2", "metrics:3"]}
            note = await http.post("/collectd/event", content=b"PUTNOTIF severity=okay time=5 message=back to normal")
            assert note.json() == {"keys": ["alerts:1"]}
            first = orjson.loads((await http.get("/q/metrics")).json()["value"])
            assert first["plugin_instance"] == "0" and first["values"] == [1] and first["time"] == 1000.0
            alert = orjson.loads((await http.get("/q/alerts")).json()["value"])
            assert alert == {"severity": "okay", "time": 5.0, "message": "back to normal"}


@pytest.mark.parametrize(
    ("path", "body", "code"),
    [
        ("/collectd/data", b"GARBAGE here", "VALUE_INVALID"),
        ("/collectd/data", b"[{", "VALUE_INVALID"),
        ("/collectd/data", b'[{"labels": {}}]', "VALUE_INVALID"),
        ("/collectd/event", b"Severity: LOUD\nTime: 1\n\nx", "VALUE_INVALID"),
        ("/collectd/event", b"\xff\xfe\x00", "VALUE_INVALID"),
    ],
)
async def test_bad_input_is_a_clear_400_and_adds_nothing(redis_url: str, path: str, body: bytes, code: str) -> None:
    async with run_app(redis_url) as url, httpx.AsyncClient(base_url=url) as http:
        answer = await http.post(path, content=body)
        assert answer.status_code == 400 and answer.json()["code"] == code and answer.json()["error"]
        for queue in ("collectd_data", "collectd_event"):
            assert (await http.get(f"/q/{queue}")).status_code == 204
        assert (await http.get("/health")).status_code == 200


async def test_a_body_over_the_limit_is_413(redis_url: str) -> None:
    line = b"PUTVAL h/load/load interval=1 N:1:2:3\r\n"
    async with run_app(redis_url, limits=Limits(max_body=4096)) as url, httpx.AsyncClient(base_url=url) as http:
        answer = await http.post("/collectd/data", content=line * 200)
        assert answer.status_code == 413 and answer.json()["code"] == "PAYLOAD_TOO_LARGE"
        assert (await http.get("/q/collectd_data")).status_code == 204


async def test_the_acl_producer_rules_apply(redis_url: str, tmp_path: Path) -> None:
    acl = write_acl(tmp_path, "[rest:producer]\nusername = collectd\npassword = weCh3ik0\n")
    body = b"PUTVAL h/load/load N:1:2:3\n"
    async with run_app(redis_url, acl=acl, auth="acl") as url, httpx.AsyncClient(base_url=url) as http:
        assert (await http.post("/collectd/data", content=body)).status_code == 401
        assert (await http.post("/collectd/data", content=body, headers=basic("collectd", "wrong"))).status_code == 401
        answer = await http.post("/collectd/data", content=body, headers=basic("collectd", "weCh3ik0"))
        assert answer.status_code == 200, answer.text


async def test_a_token_needs_write_on_the_target_queue(redis_url: str) -> None:
    writer = await create_token_async(redis_url, "collectd_*", "write")
    reader = await create_token_async(redis_url, "collectd_*", "read")
    elsewhere = await create_token_async(redis_url, "other", "write")
    body = b"PUTVAL h/load/load N:1:2:3\n"
    async with run_app(redis_url, auth="tokens") as url, httpx.AsyncClient(base_url=url) as http:
        assert (await http.post("/collectd/data", content=body)).status_code == 401
        assert (await http.post("/collectd/data", content=body, headers=bearer(reader))).status_code == 403
        assert (await http.post("/collectd/event", content=body, headers=bearer(elsewhere))).status_code == 403
        assert (await http.post("/collectd/data", content=body, headers=bearer(writer))).status_code == 200
