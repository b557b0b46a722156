"""SQS message operations through boto3 against a real `restmq serve` (issue 18): sends with attributes (boto3
checks every MD5), receives, long-polls, visibility timeouts, stale receipt handles, batches, dead letters."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import botocore.exceptions
import httpx
import pytest

from tests.helpers.server import ServeProcess
from tests.helpers.sqs import sqs_client
from tests.helpers.wait import wait_until

pytestmark = pytest.mark.integration


def make(sqs: Any, name: str, **attributes: str) -> str:
    return str(sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"])


ATTRIBUTES = {
    "text": {"DataType": "String", "StringValue": "héllo"},
    "count": {"DataType": "Number", "StringValue": "-12.5e3"},
    "blob": {"DataType": "Binary", "BinaryValue": b"\x00\xffbytes"},
    "custom": {"DataType": "String.custom", "StringValue": "c"},
}


def test_send_receive_delete_with_attributes(sqs: Any) -> None:
    url = make(sqs, "basic")
    sent = sqs.send_message(QueueUrl=url, MessageBody="hello ✓", MessageAttributes=ATTRIBUTES)
    assert "MD5OfMessageAttributes" in sent  # boto3 compared both digests with its own
    got = sqs.receive_message(
        QueueUrl=url, MessageAttributeNames=["All"], MessageSystemAttributeNames=["All"], WaitTimeSeconds=1
    )["Messages"]
    assert len(got) == 1
    message = got[0]
    assert message["Body"] == "hello ✓"
    assert message["MessageId"] == sent["MessageId"]
    assert message["MessageAttributes"]["blob"]["BinaryValue"] == b"\x00\xffbytes"
    assert message["Attributes"]["ApproximateReceiveCount"] == "1"
    assert abs(int(message["Attributes"]["SentTimestamp"]) - time.time() * 1000) < 60_000
    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    assert sqs.receive_message(QueueUrl=url).get("Messages") is None


def test_message_attribute_names_select(sqs: Any) -> None:
    url = make(sqs, "select")
    attributes = {
        "a.x": {"DataType": "String", "StringValue": "1"},
        "a.y": {"DataType": "String", "StringValue": "2"},
        "b": {"DataType": "String", "StringValue": "3"},
    }
    sqs.send_message(QueueUrl=url, MessageBody="m", MessageAttributes=attributes)
    message = sqs.receive_message(QueueUrl=url, MessageAttributeNames=["a.*"], VisibilityTimeout=0)["Messages"][0]
    assert set(message["MessageAttributes"]) == {"a.x", "a.y"}  # and boto3 checked the digest of those two
    message = sqs.receive_message(QueueUrl=url)["Messages"][0]
    assert "MessageAttributes" not in message


def test_batches(sqs: Any) -> None:
    url = make(sqs, "batch")
    entries: list[dict[str, Any]] = [{"Id": f"e{i}", "MessageBody": f"body {i}"} for i in range(10)]
    entries[3]["MessageAttributes"] = {"k": {"DataType": "Number", "StringValue": "not a number"}}
    sent = sqs.send_message_batch(QueueUrl=url, Entries=entries)
    assert len(sent["Successful"]) == 9
    assert [(f["Id"], f["Code"], f["SenderFault"]) for f in sent["Failed"]] == [("e3", "InvalidParameterValue", True)]
    got: list[dict[str, Any]] = []
    while len(got) < 9:
        got += sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)["Messages"]
    assert sorted(m["Body"] for m in got) == sorted(f"body {i}" for i in range(10) if i != 3)
    deleted = sqs.delete_message_batch(
        QueueUrl=url,
        Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)]
        + [{"Id": "bad", "ReceiptHandle": "not-a-handle"}],
    )
    assert len(deleted["Successful"]) == 9
    assert [(f["Id"], f["Code"]) for f in deleted["Failed"]] == [("bad", "ReceiptHandleIsInvalid")]
    counts = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert (counts["ApproximateNumberOfMessages"], counts["ApproximateNumberOfMessagesNotVisible"]) == ("0", "0")


BATCH = "AWS.SimpleQueueService."


@pytest.mark.parametrize(
    ("entries", "code"),
    [
        ([{"Id": str(i), "MessageBody": "x"} for i in range(11)], BATCH + "TooManyEntriesInBatchRequest"),
        ([{"Id": "same", "MessageBody": "x"}, {"Id": "same", "MessageBody": "y"}], BATCH + "BatchEntryIdsNotDistinct"),
        ([], BATCH + "EmptyBatchRequest"),
        ([{"Id": "no spaces", "MessageBody": "x"}], BATCH + "InvalidBatchEntryId"),
    ],
)
def test_bad_batches_are_refused(sqs: Any, entries: list[dict[str, str]], code: str) -> None:
    url = make(sqs, "badbatch")
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        sqs.send_message_batch(QueueUrl=url, Entries=entries)
    assert caught.value.response["Error"]["Code"] == code


def test_long_poll_returns_as_soon_as_a_message_arrives(sqs: Any, sqs_server: ServeProcess) -> None:
    url = make(sqs, "longpoll")
    result: dict[str, Any] = {}

    def receive() -> None:
        started = time.monotonic()
        result["reply"] = sqs_client(sqs_server.url).receive_message(QueueUrl=url, WaitTimeSeconds=20)
        result["took"] = time.monotonic() - started

    def parked() -> bool:
        metrics = httpx.get(sqs_server.url + "/metrics").text
        return any(line == "restmq_process_long_polls_waiting 1.0" for line in metrics.splitlines())

    thread = threading.Thread(target=receive)
    thread.start()
    wait_until(parked, 10, 0.02, "the receive to park in its long-poll")
    sqs.send_message(QueueUrl=url, MessageBody="wake")
    thread.join(30)
    assert result["reply"]["Messages"][0]["Body"] == "wake"
    assert result["took"] < 10  # far below the 20 s wait


def test_visibility_timeout_expires_and_the_old_handle_is_stale(sqs: Any) -> None:
    url = make(sqs, "visibility", VisibilityTimeout="30")
    sqs.send_message(QueueUrl=url, MessageBody="again")
    first = sqs.receive_message(QueueUrl=url)["Messages"][0]
    assert sqs.receive_message(QueueUrl=url).get("Messages") is None  # hidden for 30 s
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=first["ReceiptHandle"], VisibilityTimeout=1)
    second = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=10)["Messages"][0]
    assert second["Body"] == "again"
    assert first["ReceiptHandle"] != second["ReceiptHandle"]
    sqs.delete_message(QueueUrl=url, ReceiptHandle=first["ReceiptHandle"])  # succeeds, deletes nothing (as AWS)
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=first["ReceiptHandle"], VisibilityTimeout=0)
    assert caught.value.response["Error"]["Code"] == "ReceiptHandleIsInvalid"
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=second["ReceiptHandle"], VisibilityTimeout=0)
    third = sqs.receive_message(QueueUrl=url, AttributeNames=["ApproximateReceiveCount"])["Messages"][0]
    assert third["Attributes"]["ApproximateReceiveCount"] == "3"
    sqs.delete_message(QueueUrl=url, ReceiptHandle=third["ReceiptHandle"])
    assert sqs.receive_message(QueueUrl=url, VisibilityTimeout=0).get("Messages") is None


def test_a_stale_handle_in_a_delete_batch_deletes_nothing(sqs: Any) -> None:
    url = make(sqs, "stalebatch", VisibilityTimeout="30")
    sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": "a", "MessageBody": "a"}, {"Id": "b", "MessageBody": "b"}])
    first = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=2, WaitTimeSeconds=5)["Messages"]
    assert len(first) == 2
    stale = next(m for m in first if m["Body"] == "a")
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=stale["ReceiptHandle"], VisibilityTimeout=0)
    again = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=5)["Messages"][0]
    assert again["Body"] == "a"
    entries = [{"Id": m["Body"], "ReceiptHandle": m["ReceiptHandle"]} for m in first]  # a's handle is stale
    deleted = sqs.delete_message_batch(QueueUrl=url, Entries=entries)
    assert sorted(e["Id"] for e in deleted["Successful"]) == ["a", "b"] and not deleted["Failed"]
    counts = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert counts["ApproximateNumberOfMessagesNotVisible"] == "1"  # a, under its second receive, is still there
    sqs.delete_message_batch(QueueUrl=url, Entries=[{"Id": "a", "ReceiptHandle": again["ReceiptHandle"]}])
    counts = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert counts["ApproximateNumberOfMessagesNotVisible"] == "0"


def test_change_visibility_batch_extends(sqs: Any) -> None:
    url = make(sqs, "extend", VisibilityTimeout="1")
    sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": "a", "MessageBody": "a"}, {"Id": "b", "MessageBody": "b"}])
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=2, WaitTimeSeconds=1)["Messages"]
    changed = sqs.change_message_visibility_batch(
        QueueUrl=url,
        Entries=[
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 60} for i, m in enumerate(got)
        ],
    )
    assert len(changed["Successful"]) == len(got) and not changed["Failed"]
    time.sleep(2)  # past the queue's 1 s: only the extension keeps them hidden
    assert sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages") is None


def test_delay_seconds(sqs: Any) -> None:
    url = make(sqs, "delayed")
    sqs.send_message(QueueUrl=url, MessageBody="soon", DelaySeconds=4)
    assert sqs.receive_message(QueueUrl=url).get("Messages") is None  # hidden for 4 s
    assert sqs.receive_message(QueueUrl=url, WaitTimeSeconds=15)["Messages"][0]["Body"] == "soon"


def test_dead_letters_after_max_receive_count_and_move_back(sqs: Any) -> None:
    dlq = make(sqs, "dead-end")
    arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    policy = json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": 2})
    url = make(sqs, "fragile", RedrivePolicy=policy)
    sqs.send_message(
        QueueUrl=url, MessageBody="poison", MessageAttributes={"k": {"DataType": "String", "StringValue": "v"}}
    )
    for _ in range(2):
        message = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=5)["Messages"][0]
        sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0)
    assert sqs.receive_message(QueueUrl=url).get("Messages") is None  # the third delivery went to the DLQ instead

    def dead_count() -> int:
        found = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["ApproximateNumberOfMessages"])
        return int(found["Attributes"]["ApproximateNumberOfMessages"])

    wait_until(lambda: dead_count() == 1, 10, 0.1, "the dead letter to show in the DLQ's count")
    dead = sqs.receive_message(QueueUrl=dlq, MessageAttributeNames=["All"], VisibilityTimeout=0)["Messages"][0]
    assert dead["Body"] == "poison"
    assert dead["MessageAttributes"] == {"k": {"DataType": "String", "StringValue": "v"}}
    wait_until(lambda: dead_count() == 1, 10, 0.1, "the received dead letter to be visible again")
    sqs.start_message_move_task(SourceArn=arn)  # moves the waiting dead letters back to their source
    back = sqs.receive_message(QueueUrl=url, MessageAttributeNames=["All"], WaitTimeSeconds=5)["Messages"][0]
    assert back["Body"] == "poison"
    assert back["MessageAttributes"]["k"]["StringValue"] == "v"


def test_fifo_deduplication(sqs: Any) -> None:
    url = make(sqs, "jobs.fifo", FifoQueue="true", ContentBasedDeduplication="true")
    first = sqs.send_message(QueueUrl=url, MessageBody="once", MessageGroupId="g")
    again = sqs.send_message(QueueUrl=url, MessageBody="once", MessageGroupId="g")
    assert first["MessageId"] == again["MessageId"]
    explicit = sqs.send_message(QueueUrl=url, MessageBody="once", MessageGroupId="g", MessageDeduplicationId="other")
    assert explicit["MessageId"] != first["MessageId"]
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"])["Messages"]
    assert [m["Body"] for m in got] == ["once"]  # one message of a group in flight at a time
    assert got[0]["Attributes"]["MessageGroupId"] == "g"
    sqs.delete_message(QueueUrl=url, ReceiptHandle=got[0]["ReceiptHandle"])
    second = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=5)["Messages"]
    assert second[0]["MessageId"] == explicit["MessageId"]
    with pytest.raises(botocore.exceptions.ClientError):
        sqs.send_message(QueueUrl=url, MessageBody="no group")


def test_fifo_groups_keep_order_with_one_message_in_flight(sqs: Any) -> None:
    url = make(sqs, "orders.fifo", FifoQueue="true")
    for group, body in [("a", "a1"), ("b", "b1"), ("a", "a2"), ("a", "a3"), ("b", "b2")]:
        sqs.send_message(QueueUrl=url, MessageBody=body, MessageGroupId=group, MessageDeduplicationId=body)

    def receive() -> list[dict[str, Any]]:
        return list(sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []))

    first = receive()
    assert sorted(m["Body"] for m in first) == ["a1", "b1"]
    assert receive() == []  # both groups have a message in flight
    handles = {m["Body"]: m["ReceiptHandle"] for m in first}
    sqs.delete_message(QueueUrl=url, ReceiptHandle=handles["a1"])
    assert [m["Body"] for m in receive()] == ["a2"]
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=handles["b1"], VisibilityTimeout=0)
    again = receive()
    assert [m["Body"] for m in again] == ["b1"]  # the group's head comes back before b2
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"DelaySeconds": "5"})
        sqs.send_message(QueueUrl=url, MessageBody="late", MessageGroupId="c", MessageDeduplicationId="late")
    assert caught.value.response["Error"]["Code"] == "InvalidParameterValue"
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"DelaySeconds": "0"})
    batch = [{"Id": "1", "MessageBody": "c1", "MessageGroupId": "c", "MessageDeduplicationId": "c1",
              "MessageAttributes": {"k": {"DataType": "String", "StringValue": "v"}}}]  # fmt: skip
    assert sqs.send_message_batch(QueueUrl=url, Entries=batch)["Successful"]
    c1 = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"])["Messages"]
    assert [(m["Body"], m["MessageAttributes"]["k"]["StringValue"]) for m in c1] == [("c1", "v")]


def test_oversize_and_bad_bodies_are_refused(sqs: Any) -> None:
    url = make(sqs, "limits", MaximumMessageSize="1024")
    for body in ["x" * 1025, "bad \x01 control", ""]:
        with pytest.raises(botocore.exceptions.ClientError) as caught:
            sqs.send_message(QueueUrl=url, MessageBody=body)
        assert caught.value.response["Error"]["Code"] in ("InvalidParameterValue", "InvalidMessageContents")
    sqs.send_message(QueueUrl=url, MessageBody="x" * 1024)
    assert sqs.receive_message(QueueUrl=url)["Messages"][0]["Body"] == "x" * 1024
