"""A Celery application on kombu's SQS transport pointed at a RestMQ server, for tests/e2e/test_celery_sqs.py.

The worker subprocess imports it (`celery -A tests.helpers.celery_sqs_app worker`). Settings come from the
environment: RESTMQ_URL (the server), RESTMQ_SQS_KEY / RESTMQ_SQS_SECRET (an access key, or any words when the
server has no authentication), RESTMQ_VISIBILITY (seconds), RESTMQ_REPORT_TOKEN (a bearer token for the reports,
when the server requires one). Tasks report through RestMQ's own HTTP API (a form
`POST /q/<queue>`): results need no extra service, and the test reads them from the same server.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import orjson
from celery import Celery

URL = os.environ.get("RESTMQ_URL", "http://127.0.0.1:8888")
REPORTS = "celery-reports"  # the RestMQ queue tasks write their outcomes to
WORK_QUEUE = "celery-work"
# The work queue's VisibilityTimeout, the same in the worker and in the test that sends: kombu creates the queue
# from whichever side comes first, and SQS refuses a CreateQueue of an existing name with other attributes.
VISIBILITY = int(os.environ.get("RESTMQ_VISIBILITY", "10"))


def broker_url(url: str, key: str = "any", secret: str = "any") -> str:
    """Celery's broker URL for the RestMQ server at `url` (http://host:port): SQS, the server as its endpoint."""
    return f"sqs://{quote(key, safe='')}:{quote(secret, safe='')}@{url.removeprefix('http://')}"


app = Celery(
    "restmq_sqs",
    broker=broker_url(URL, os.environ.get("RESTMQ_SQS_KEY", "any"), os.environ.get("RESTMQ_SQS_SECRET", "any")),
)
app.conf.update(
    broker_transport_options={
        "region": "us-east-1",
        "visibility_timeout": VISIBILITY,
        "wait_time_seconds": 1,  # long-poll receives of 1 s: a stopping worker is not held up
        "polling_interval": 0.1,
    },
    broker_connection_retry_on_startup=True,
    task_default_queue=WORK_QUEUE,
    task_acks_late=True,  # delete the SQS message after the task: a killed worker's task comes back
    task_ignore_result=True,  # no result backend: tasks report through RestMQ (report below)
    worker_prefetch_multiplier=1,
    worker_enable_remote_control=False,  # SQS has no fan-out exchanges for pidbox
)


def report(**fields: object) -> None:
    """One outcome, as a JSON message on the RestMQ queue REPORTS."""
    value = orjson.dumps({**fields, "pid": os.getpid(), "at": time.time()}).decode()
    token = os.environ.get("RESTMQ_REPORT_TOKEN")  # a bearer token, when the server requires one
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    httpx.post(f"{URL}/q/{REPORTS}", data={"value": value}, headers=headers, timeout=30).raise_for_status()


@app.task
def add(x: int, y: int, tag: str) -> int:
    report(tag=tag, result=x + y)
    return x + y


@app.task
def halting(tag: str, marker: str) -> None:
    """On its first run it reports `started` and then works on (the test kills its worker meanwhile); a later run
    (the redelivery) reports `done`."""
    first = not Path(marker).exists()
    Path(marker).touch()  # before the report: the test kills this worker as soon as it reads it
    report(tag=tag, state="started", first=first)
    if first:
        time.sleep(600)  # the long task the worker is killed in
    report(tag=tag, state="done")


@app.task(bind=True, max_retries=3)
def flaky(self: Any, tag: str, fail_times: int) -> None:
    """Fails its first `fail_times` runs, each retried after a 1-second countdown; reports every attempt."""
    attempt = self.request.retries
    report(tag=tag, attempt=attempt)
    if attempt < fail_times:
        raise self.retry(countdown=1, exc=RuntimeError(f"attempt {attempt} fails"))
