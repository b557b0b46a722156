"""Push delivery across `restmq serve` processes (issue 19): a process killed with SIGKILL mid-delivery loses
nothing and no message gets a second 2xx; max_in_flight and rate hold over two processes together."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers.receiver import Receiver, receiver
from tests.helpers.server import ServeProcess, free_port
from tests.helpers.wait import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def target() -> Iterator[Receiver]:
    with receiver() as found:
        yield found


def start(redis_url: str, tmp_path: Path, name: str) -> ServeProcess:
    args = ["--redis", redis_url, "--push-allow", "127.0.0.1"]
    return ServeProcess(args, free_port(), tmp_path / f"{name}.log").wait_ready()


def stats(url: str, queue: str) -> dict[str, int]:
    found: dict[str, int] = httpx.get(f"{url}/stats/{queue}", timeout=10).json()
    return found


def test_a_process_killed_mid_delivery_loses_nothing(redis_url: str, tmp_path: Path, target: Receiver) -> None:
    first = start(redis_url, tmp_path, "first")
    second: ServeProcess | None = None
    try:
        # slow replies: the kill lands while the receiver still holds the first deliveries
        sub = {"url": target.url + "/slow?s=1.5", "timeout": 3, "max_in_flight": 5}
        assert httpx.post(f"{first.url}/push/jobs", json=sub).status_code == 200
        httpx.post(f"{first.url}/q/jobs", json=[f"m{i}" for i in range(20)])
        wait_until(lambda: target.count() >= 5, 15, what="deliveries under way")
        first.kill(signal.SIGKILL)
        killed_at = time.monotonic()
        second = start(redis_url, tmp_path, "second")
        url = second.url

        def settled() -> bool:
            s = stats(url, "jobs")
            return s["length"] + s["leased"] + s["delayed"] == 0

        wait_until(settled, 60, 0.1, "every message acknowledged")
        keys = {f"jobs:{i}" for i in range(1, 21)}
        assert set(target.acked) == keys  # each message answered 2xx to a connected sender...
        assert all(n == 1 for n in target.acked.values()), target.acked  # ...exactly once
        assert set(target.ids()) == keys
        assert stats(url, "jobs:dead")["length"] == 0
        # the killed process's deliveries came back after their lease (timeout 3 + margin 5), not before
        again = [d for d in target.deliveries if d.headers["restmq-delivery-count"] == "2"]
        assert again and min(d.at for d in again) - killed_at > 2
    finally:
        first.stop()
        if second is not None:
            second.stop()


def test_limits_hold_over_two_processes(redis_url: str, tmp_path: Path, target: Receiver) -> None:
    first, second = start(redis_url, tmp_path, "a"), start(redis_url, tmp_path, "b")
    try:
        sub = {"url": target.url + "/slow?s=0.2", "max_in_flight": 4}
        assert httpx.post(f"{first.url}/push/wide", json=sub).status_code == 200
        httpx.post(f"{first.url}/q/wide", json=[f"m{i}" for i in range(60)])
        wait_until(lambda: target.count("/slow") >= 60, 60, what="60 deliveries")
        assert target.max_in_flight == 4  # over both processes: each alone would allow 4

        sub = {"url": target.url + "/ok", "rate": 20}
        assert httpx.post(f"{second.url}/push/paced", json=sub).status_code == 200
        httpx.post(f"{first.url}/q/paced", json=[f"m{i}" for i in range(60)])
        wait_until(lambda: target.count("/ok") >= 60, 60, what="60 paced deliveries")
        times = sorted(d.at for d in target.deliveries if d.path == "/ok")
        span = times[-1] - times[0]
        # 60 at 20/s with a burst of 2: at least 2.9 s; two processes each allowed 20/s would take 1.5 s
        assert span >= 2.6, span
        processes = {d.headers.get("user-agent") for d in target.deliveries}
        assert processes == {"RestMQ-Push/1"}
        for url in (first.url, second.url):  # both processes delivered some
            metrics = httpx.get(f"{url}/metrics", timeout=10).text
            line = next(
                x for x in metrics.splitlines() if x.startswith('restmq_push_deliveries_total{outcome="delivered"}')
            )
            assert float(line.split()[-1]) > 0, url
    finally:
        first.stop()
        second.stop()


def test_a_stopped_process_gives_its_deliveries_back_at_once(redis_url: str, tmp_path: Path, target: Receiver) -> None:
    first, second = start(redis_url, tmp_path, "first"), start(redis_url, tmp_path, "second")
    try:
        sub = {"url": target.url + "/slow?s=30", "timeout": 40, "max_in_flight": 2}
        assert httpx.post(f"{first.url}/push/stop", json=sub).status_code == 200
        httpx.post(f"{first.url}/q/stop", json=["a", "b"])
        wait_until(lambda: target.count("/slow") >= 2, 20, what="two slow deliveries under way")
        # the second process now delivers to a fast target; the first still holds both messages (leases of 45 s)
        httpx.post(f"{second.url}/push/stop", json={"url": target.url + "/ok"}).raise_for_status()
        stopped_at = time.monotonic()
        first.stop()  # SIGTERM: its deliveries are cut short and their messages released
        wait_until(lambda: target.count("/ok") >= 2, 30, what="both messages delivered by the second process")
        assert time.monotonic() - stopped_at < 25  # well before the 45 s leases would have run out
        assert sorted(d.body for d in target.deliveries if d.path == "/ok") == [b"a", b"b"]
    finally:
        first.stop()
        second.stop()
