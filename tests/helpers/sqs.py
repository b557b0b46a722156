"""SQS clients for tests: boto3 pointed at a real `restmq serve`, as users point it."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config

from tests.helpers.auth import restmq_cli


def sqs_client(url: str, key_id: str = "test", secret: str = "test", **config: Any) -> Any:
    """A boto3 SQS client (current botocore: the AWS JSON 1.0 protocol) for the server at `url`; by default
    made-up keys, as with a server that has no authentication configured."""
    return boto3.client(
        "sqs",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": 1}, read_timeout=60, **config),
    )


def create_sqs_key(redis_url: str, queues: str, rights: str, *extra: str) -> tuple[str, str]:
    """`restmq token create --sqs` run as a user runs it: (access key id, secret access key) from its AWS_* lines."""
    result = restmq_cli(
        "token", "create", "--sqs", "--redis", redis_url, "--queues", queues, "--rights", rights, *extra
    )
    assert result.returncode == 0, result.stderr
    lines = dict(line.split("=", 1) for line in result.stdout.splitlines())
    return lines["AWS_ACCESS_KEY_ID"], lines["AWS_SECRET_ACCESS_KEY"]
