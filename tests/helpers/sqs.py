"""SQS clients for tests: boto3 pointed at a real `restmq serve`, as users point it."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config


def sqs_client(url: str, **config: Any) -> Any:
    """A boto3 SQS client (current botocore: the AWS JSON 1.0 protocol) for the server at `url`; any keys, as with
    a server that has no authentication configured."""
    return boto3.client(
        "sqs",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(retries={"max_attempts": 1}, read_timeout=60, **config),
    )
