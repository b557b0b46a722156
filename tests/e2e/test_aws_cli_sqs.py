"""The AWS CLI (`aws sqs ...`, the awscli package: its own botocore, the query/JSON protocol it picks, its own
SigV4 signing and MD5 checks) against a real `restmq serve --auth tokens` with a key from `restmq token create
--sqs`, run as a user runs it: a process per command, the endpoint and the keys in its options and environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers.auth import bearer, create_token
from tests.helpers.server import ServeProcess, serve
from tests.helpers.sqs import create_sqs_key

pytestmark = pytest.mark.e2e


@pytest.fixture
def server(redis_url: str, tmp_path: Path) -> Iterator[ServeProcess]:
    with serve(["--redis", redis_url, "--auth", "tokens"], tmp_path) as running:
        yield running


class AwsCli:
    """`aws sqs` for one server and one key; no profile, config or credentials file of the user is read."""

    def __init__(self, url: str, key_id: str, secret: str, home: Path) -> None:
        self.url = url
        self.env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": key_id,
            "AWS_SECRET_ACCESS_KEY": secret,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": str(home / "aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(home / "aws-credentials"),
            "AWS_PAGER": "",
            "HOME": str(home),
        }

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "awscli", "sqs", *args, "--endpoint-url", self.url, "--output", "json"]
        return subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=120)

    def __call__(self, *args: str) -> Any:
        done = self.run(*args)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout) if done.stdout.strip() else None


def test_the_aws_cli_drives_a_queue_end_to_end(server: ServeProcess, redis_url: str, tmp_path: Path) -> None:
    key_id, secret = create_sqs_key(redis_url, "cli-*", "read,write,admin")
    aws = AwsCli(server.url, key_id, secret, tmp_path)
    url = aws("create-queue", "--queue-name", "cli-jobs", "--attributes", "VisibilityTimeout=30")["QueueUrl"]
    assert aws("get-queue-url", "--queue-name", "cli-jobs")["QueueUrl"] == url
    assert aws("list-queues", "--queue-name-prefix", "cli-")["QueueUrls"] == [url]

    attributes = json.dumps({"kind": {"DataType": "String", "StringValue": "invoice"}})
    sent = aws("send-message", "--queue-url", url, "--message-body", "first", "--message-attributes", attributes)
    assert sent["MessageId"] and sent["MD5OfMessageAttributes"]  # the CLI checked both MD5s
    entries = json.dumps([{"Id": f"e{i}", "MessageBody": f"batch-{i}"} for i in range(3)])
    assert len(aws("send-message-batch", "--queue-url", url, "--entries", entries)["Successful"]) == 3

    got = aws(
        "receive-message",
        "--queue-url",
        url,
        "--max-number-of-messages",
        "1",
        "--wait-time-seconds",
        "5",
        "--attribute-names",
        "ApproximateReceiveCount",
        "--message-attribute-names",
        "All",
    )["Messages"][0]
    assert got["Body"] == "first"
    assert got["Attributes"]["ApproximateReceiveCount"] == "1"
    assert got["MessageAttributes"]["kind"]["StringValue"] == "invoice"
    handle = got["ReceiptHandle"]
    aws("change-message-visibility", "--queue-url", url, "--receipt-handle", handle, "--visibility-timeout", "0")
    again = aws("receive-message", "--queue-url", url, "--wait-time-seconds", "5", "--attribute-names", "All")
    assert [(m["Body"], m["Attributes"]["ApproximateReceiveCount"]) for m in again["Messages"]] == [("first", "2")]
    assert again["Messages"][0]["ReceiptHandle"] != handle  # one handle per receive
    aws("delete-message", "--queue-url", url, "--receipt-handle", again["Messages"][0]["ReceiptHandle"])

    counts = aws("get-queue-attributes", "--queue-url", url, "--attribute-names", "All")["Attributes"]
    assert (counts["ApproximateNumberOfMessages"], counts["VisibilityTimeout"]) == ("3", "30")
    aws("tag-queue", "--queue-url", url, "--tags", "team=billing")
    assert aws("list-queue-tags", "--queue-url", url)["Tags"] == {"team": "billing"}

    # one queue, every door: the native API sees what the CLI sent
    token = create_token(redis_url, "cli-*", "read")
    native = httpx.get(f"{server.url}/q/cli-jobs", headers=bearer(token), timeout=30)
    assert native.status_code == 200 and native.json()["value"] == "batch-0"

    aws("purge-queue", "--queue-url", url)
    aws("delete-queue", "--queue-url", url)
    assert (aws("list-queues", "--queue-name-prefix", "cli-") or {}).get("QueueUrls", []) == []
    assert secret not in server.log()


def test_the_aws_cli_is_refused_with_a_wrong_secret_or_outside_its_queues(
    server: ServeProcess, redis_url: str, tmp_path: Path
) -> None:
    key_id, secret = create_sqs_key(redis_url, "cli-*", "read,write,admin")
    wrong = AwsCli(server.url, key_id, secret[:-1] + ("A" if secret[-1] != "A" else "B"), tmp_path)
    refused = wrong.run("list-queues")
    assert refused.returncode != 0 and "SignatureDoesNotMatch" in refused.stderr

    aws = AwsCli(server.url, key_id, secret, tmp_path)
    outside = aws.run("create-queue", "--queue-name", "payroll")
    assert outside.returncode != 0 and "AccessDenied" in outside.stderr
