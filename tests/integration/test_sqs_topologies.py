"""SQS state in every backend mode (issue 18): a queue's attribute document and a message's attributes, kept
with the message through its dead-letter queue, on one node, a ring and a Redis Cluster. Raw JSON 1.0 requests:
the server runs in this event loop, where boto3 (blocking) cannot call it."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from restmq.web.sqs import md5
from tests.helpers.wait import wait_for

pytestmark = pytest.mark.integration


async def call(http: httpx.AsyncClient, operation: str, **params: Any) -> dict[str, Any]:
    headers = {"X-Amz-Target": f"AmazonSQS.{operation}", "Content-Type": "application/x-amz-json-1.0"}
    reply = await http.post("/", content=json.dumps(params), headers=headers)
    assert reply.status_code == 200, reply.text
    result: dict[str, Any] = reply.json()
    return result


async def test_attributes_follow_a_message_to_its_dead_letter_queue(topology: str) -> None:
    async with httpx.AsyncClient(base_url=topology, timeout=30) as http:
        dlq = (await call(http, "CreateQueue", QueueName="topo-dead"))["QueueUrl"]
        arn = "arn:aws:sqs:us-east-1:000000000000:topo-dead"
        policy = json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": 1})
        url = (await call(http, "CreateQueue", QueueName="topo", Attributes={"RedrivePolicy": policy}))["QueueUrl"]
        attributes = {"k": {"DataType": "String", "StringValue": "v"}}
        sent = await call(http, "SendMessage", QueueUrl=url, MessageBody="b", MessageAttributes=attributes)
        assert sent["MD5OfMessageAttributes"] == md5.of_attributes(attributes)
        first = (await call(http, "ReceiveMessage", QueueUrl=url, MessageAttributeNames=["All"]))["Messages"][0]
        assert first["MessageAttributes"] == attributes
        await call(http, "ChangeMessageVisibility", QueueUrl=url, ReceiptHandle=first["ReceiptHandle"],
                   VisibilityTimeout=0)  # fmt: skip
        assert await call(http, "ReceiveMessage", QueueUrl=url) == {}  # its second delivery dead-letters it

        async def dead() -> list[dict[str, Any]]:
            got = await call(http, "ReceiveMessage", QueueUrl=dlq, MessageAttributeNames=["All"])
            return list(got.get("Messages", []))

        messages = await wait_for(dead, 10, 0.1, "the dead letter in the DLQ")
        assert messages[0]["Body"] == "b" and messages[0]["MessageAttributes"] == attributes
        await call(http, "DeleteMessage", QueueUrl=dlq, ReceiptHandle=messages[0]["ReceiptHandle"])
        found = await call(http, "GetQueueAttributes", QueueUrl=dlq, AttributeNames=["All"])
        assert found["Attributes"]["ApproximateNumberOfMessages"] == "0"
        await call(http, "DeleteQueue", QueueUrl=url)
        listed = await call(http, "ListQueues", QueueNamePrefix="topo")
        assert listed["QueueUrls"] == [dlq]
