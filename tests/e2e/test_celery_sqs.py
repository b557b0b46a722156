"""A real Celery worker on kombu's SQS transport (`celery[sqs]`, pycurl) running tasks through a real
`restmq serve` (issue 18): results arrive, a task whose worker is killed (-9) mid-task comes back after the
visibility timeout (acks_late), countdowns wait. Tasks report through RestMQ's HTTP API (see
tests/helpers/celery_sqs_app.py); the test reads the reports with `GET /q/celery-reports?wait=`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.helpers.auth import bearer, create_token
from tests.helpers.celery_sqs_app import REPORTS, VISIBILITY, WORK_QUEUE, add, app, broker_url, flaky, halting
from tests.helpers.server import ServeProcess, serve
from tests.helpers.sqs import create_sqs_key, sqs_client

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServeProcess]:
    with serve(["--data-dir", str(tmp_path / "data"), "--auth", "none"], tmp_path) as running:
        yield running


class Worker:
    """`celery worker` in its own process group (killed whole), its output in a file."""

    def __init__(self, url: str, log: Path, **env: str) -> None:
        self.log_path = log
        self._log = open(log, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "tests.helpers.celery_sqs_app", "worker", "--pool", "solo"]
            + ["--loglevel", "INFO", "--without-gossip", "--without-mingle", "--without-heartbeat"],
            cwd=ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "RESTMQ_URL": url, "RESTMQ_VISIBILITY": str(VISIBILITY), **env},
            start_new_session=True,
        )

    def kill(self) -> None:
        """SIGKILL to the whole group (a solo pool: the worker is one process, killed mid-task)."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)
        self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[list[Worker]]:
    started: list[Worker] = []
    yield started
    for worker in started:
        worker.kill()  # a test's worker holds nothing worth a warm shutdown


def next_report(server: ServeProcess, worker: Worker, timeout: float = 90.0, token: str = "") -> dict[str, Any]:
    """The next report a task wrote, waiting for it with long-polls."""
    deadline = time.monotonic() + timeout
    headers = bearer(token) if token else {}
    while time.monotonic() < deadline:
        got = httpx.get(f"{server.url}/q/{REPORTS}", params={"wait": 5}, headers=headers, timeout=30)
        if got.status_code == 200:
            report: dict[str, Any] = orjson.loads(got.json()["value"])
            return report
        assert worker.proc.poll() is None or worker.proc.returncode == -signal.SIGKILL, worker.log()
    raise AssertionError(f"no task report within {timeout} s; worker log:\n{worker.log()}")


def start_worker(server: ServeProcess, workers: list[Worker], tmp_path: Path, **env: str) -> Worker:
    worker = Worker(server.url, tmp_path / f"worker{len(workers)}.log", **env)
    workers.append(worker)
    return worker


def test_results_arrive_and_countdowns_wait(server: ServeProcess, workers: list[Worker], tmp_path: Path) -> None:
    with app.connection_for_write(broker_url(server.url)) as producer:
        add.apply_async((2, 3, "now"), connection=producer)  # before any worker: the sender creates the queue
    worker = start_worker(server, workers, tmp_path)
    assert {k: v for k, v in next_report(server, worker).items() if k in ("tag", "result")} == {
        "tag": "now",
        "result": 5,
    }
    sent = time.time()
    with app.connection_for_write(broker_url(server.url)) as producer:
        add.apply_async((20, 22, "later"), countdown=3, connection=producer)
    report = next_report(server, worker)
    assert (report["tag"], report["result"]) == ("later", 42)
    assert report["at"] >= sent + 3 - 0.05  # never before its countdown
    # the broker's queue is an SQS queue like any: boto3 sees it, and it is empty once the tasks are acked
    sqs = sqs_client(server.url)
    url = sqs.get_queue_url(QueueName=WORK_QUEUE)["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attributes["ApproximateNumberOfMessages"] == "0"


def test_retries_run_again_after_their_countdown(server: ServeProcess, workers: list[Worker], tmp_path: Path) -> None:
    worker = start_worker(server, workers, tmp_path)
    with app.connection_for_write(broker_url(server.url)) as producer:
        flaky.apply_async(("retried", 2), connection=producer)
    attempts = [next_report(server, worker) for _ in range(3)]
    assert [a["attempt"] for a in attempts] == [0, 1, 2]  # two failures, then success
    for before, after in zip(attempts, attempts[1:], strict=False):
        assert after["at"] >= before["at"] + 1 - 0.05  # each retry waits its countdown
    assert "Retry in 1s" in worker.log()


def test_a_killed_workers_task_is_redelivered(server: ServeProcess, workers: list[Worker], tmp_path: Path) -> None:
    marker = tmp_path / "first-run-started"
    first = start_worker(server, workers, tmp_path)
    with app.connection_for_write(broker_url(server.url)) as producer:
        halting.apply_async(("job-1", str(marker)), connection=producer)
    report = next_report(server, first)
    assert (report["tag"], report["state"], report["first"]) == ("job-1", "started", True)
    killed_at = time.time()
    first.kill()  # mid-task: the message was received, never deleted
    sqs = sqs_client(server.url)
    url = sqs.get_queue_url(QueueName=WORK_QUEUE)["QueueUrl"]
    in_flight = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert (in_flight["ApproximateNumberOfMessages"], in_flight["ApproximateNumberOfMessagesNotVisible"]) == ("0", "1")
    second = start_worker(server, workers, tmp_path)
    again = next_report(server, second)
    assert (again["tag"], again["state"], again["first"]) == ("job-1", "started", False)
    assert again["at"] >= killed_at  # after the kill; its lease ran out (VISIBILITY) before a receive could see it
    done = next_report(server, second)
    assert (done["tag"], done["state"]) == ("job-1", "done")


def test_a_worker_signs_with_an_sqs_access_key(redis_url: str, workers: list[Worker], tmp_path: Path) -> None:
    """Under --auth tokens, Celery's broker URL carries a `restmq token create --sqs` key (sqs://id:secret@host)
    and kombu signs every request with it; a wrong secret gets nothing through."""
    key_id, secret = create_sqs_key(redis_url, "celery-*", "read,write,admin")
    token = create_token(redis_url, REPORTS, "read,write")
    with serve(["--redis", redis_url, "--auth", "tokens"], tmp_path) as server:
        worker = start_worker(
            server, workers, tmp_path, RESTMQ_SQS_KEY=key_id, RESTMQ_SQS_SECRET=secret, RESTMQ_REPORT_TOKEN=token
        )
        with app.connection_for_write(broker_url(server.url, key_id, secret)) as producer:
            add.apply_async((1, 1, "signed"), connection=producer)
        report = next_report(server, worker, token=token)
        assert (report["tag"], report["result"]) == ("signed", 2)
        worker.kill()
        with app.connection_for_write(broker_url(server.url, key_id, secret[::-1])) as producer:
            with pytest.raises(Exception, match="SignatureDoesNotMatch"):
                add.apply_async((1, 2, "forged"), connection=producer, retry=False)
        assert secret not in server.log() and secret not in worker.log()
