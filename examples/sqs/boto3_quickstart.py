"""RestMQ as Amazon SQS, through boto3 unchanged (docs/sqs.md).

    restmq serve                                   # in one terminal
    python examples/sqs/boto3_quickstart.py        # in another (or: ... http://host:port)

Creates a queue with a dead-letter queue, sends a batch with message attributes, receives with a long-poll,
deletes what it handled, and prints what happened as JSON lines. Any access key works on a server without
authentication configured.
"""

from __future__ import annotations

import json
import sys

import boto3


def main(endpoint: str) -> None:
    sqs = boto3.client(
        "sqs", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="any", aws_secret_access_key="any"
    )
    dlq = sqs.create_queue(QueueName="quickstart-dead")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    policy = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 3})
    url = sqs.create_queue(QueueName="quickstart", Attributes={"VisibilityTimeout": "30", "RedrivePolicy": policy})[
        "QueueUrl"
    ]
    print(json.dumps({"queue": url, "dead_letters": dlq}))
    entries = [
        {
            "Id": f"order-{i}",
            "MessageBody": json.dumps({"order": i}),
            "MessageAttributes": {"priority": {"DataType": "Number", "StringValue": str(i % 3)}},
        }
        for i in range(5)
    ]
    sent = sqs.send_message_batch(QueueUrl=url, Entries=entries)
    print(json.dumps({"sent": len(sent["Successful"]), "failed": len(sent.get("Failed", []))}))
    handled = 0
    while handled < len(entries):
        reply = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=5, MessageAttributeNames=["All"]
        )
        for message in reply.get("Messages", []):
            priority = message["MessageAttributes"]["priority"]["StringValue"]
            print(json.dumps({"received": json.loads(message["Body"]), "priority": priority}))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            handled += 1
    print(json.dumps({"done": handled}))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8888")
