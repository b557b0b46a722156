"""SQS queue operations through boto3 against a real `restmq serve` (issue 18)."""

from __future__ import annotations

import json
from typing import Any

import botocore.exceptions
import pytest

from tests.helpers.server import ServeProcess

pytestmark = pytest.mark.integration


def code_of(exc: botocore.exceptions.ClientError) -> str:
    return str(exc.response["Error"]["Code"])


def test_create_get_url_and_delete(sqs: Any, sqs_server: ServeProcess) -> None:
    url = sqs.create_queue(QueueName="orders")["QueueUrl"]
    assert url == f"{sqs_server.url}/000000000000/orders"
    assert sqs.get_queue_url(QueueName="orders")["QueueUrl"] == url
    assert sqs.create_queue(QueueName="orders")["QueueUrl"] == url  # same attributes: idempotent
    sqs.delete_queue(QueueUrl=url)
    with pytest.raises(sqs.exceptions.QueueDoesNotExist) as caught:
        sqs.get_queue_url(QueueName="orders")
    assert code_of(caught.value) == "AWS.SimpleQueueService.NonExistentQueue"


def test_create_with_other_attributes_is_refused(sqs: Any) -> None:
    sqs.create_queue(QueueName="differs", Attributes={"VisibilityTimeout": "10"})
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        sqs.create_queue(QueueName="differs", Attributes={"VisibilityTimeout": "11"})
    assert code_of(caught.value) == "QueueAlreadyExists"


@pytest.mark.parametrize("name", ["has space", "a" * 81, "dots.in.name", "colon:x", "", "x.fifo.fifo"])
def test_names_sqs_cannot_have_are_refused(sqs: Any, name: str) -> None:
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        sqs.create_queue(QueueName=name)
    assert code_of(caught.value) == "InvalidParameterValue"


def test_list_with_prefix_and_pages(sqs: Any) -> None:
    names = [f"lst-{i:02d}" for i in range(7)]
    for name in names:
        sqs.create_queue(QueueName=name)
    sqs.create_queue(QueueName="other-lst")
    every = sqs.list_queues(QueueNamePrefix="lst-")["QueueUrls"]
    assert [u.rsplit("/", 1)[1] for u in every] == names
    seen: list[str] = []
    token: str | None = None
    while True:
        page = sqs.list_queues(QueueNamePrefix="lst-", MaxResults=3, **({"NextToken": token} if token else {}))
        seen += [u.rsplit("/", 1)[1] for u in page.get("QueueUrls", [])]
        token = page.get("NextToken")
        if not token:
            break
    assert seen == names


def test_purge_empties_but_keeps_the_queue(sqs: Any) -> None:
    url = sqs.create_queue(QueueName="purged", Attributes={"DelaySeconds": "0"})["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="x")
    sqs.purge_queue(QueueUrl=url)
    assert sqs.receive_message(QueueUrl=url).get("Messages") is None
    assert sqs.get_queue_url(QueueName="purged")["QueueUrl"] == url
    assert url in sqs.list_queues(QueueNamePrefix="purged")["QueueUrls"]


def test_queue_attributes_round_trip(sqs: Any) -> None:
    url = sqs.create_queue(QueueName="attrs", Attributes={"VisibilityTimeout": "45"})["QueueUrl"]
    sqs.set_queue_attributes(
        QueueUrl=url, Attributes={"DelaySeconds": "2", "MessageRetentionPeriod": "3600", "MaximumMessageSize": "2048"}
    )
    sqs.send_message(QueueUrl=url, MessageBody="later")
    found = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert found["VisibilityTimeout"] == "45"
    assert found["DelaySeconds"] == "2"
    assert found["MessageRetentionPeriod"] == "3600"
    assert found["QueueArn"] == "arn:aws:sqs:us-east-1:000000000000:attrs"
    assert found["ApproximateNumberOfMessagesDelayed"] == "1"
    assert int(found["CreatedTimestamp"]) > 0
    one = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["VisibilityTimeout"])["Attributes"]
    assert one == {"VisibilityTimeout": "45"}


@pytest.mark.parametrize(
    ("attributes", "code"),
    [
        ({"VisibilityTimeout": "43201"}, "InvalidAttributeValue"),
        ({"DelaySeconds": "-1"}, "InvalidAttributeValue"),
        ({"NoSuchThing": "1"}, "InvalidAttributeName"),
        ({"RedrivePolicy": "not json"}, "InvalidParameterValue"),
    ],
)
def test_bad_attributes_are_refused(sqs: Any, attributes: dict[str, str], code: str) -> None:
    url = sqs.create_queue(QueueName="badattrs")["QueueUrl"]
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)
    assert code_of(caught.value) == code


def test_tags(sqs: Any) -> None:
    url = sqs.create_queue(QueueName="tagged", tags={"team": "core"})["QueueUrl"]
    sqs.tag_queue(QueueUrl=url, Tags={"env": "test", "team": "ops"})
    assert sqs.list_queue_tags(QueueUrl=url)["Tags"] == {"team": "ops", "env": "test"}
    sqs.untag_queue(QueueUrl=url, TagKeys=["team"])
    assert sqs.list_queue_tags(QueueUrl=url)["Tags"] == {"env": "test"}


def test_dead_letter_sources_are_listed(sqs: Any) -> None:
    dlq = sqs.create_queue(QueueName="dlq-src")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    policy = json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": "3"})
    source = sqs.create_queue(QueueName="with-dlq", Attributes={"RedrivePolicy": policy})["QueueUrl"]
    assert sqs.list_dead_letter_source_queues(QueueUrl=dlq)["queueUrls"] == [source]
    sqs.set_queue_attributes(QueueUrl=source, Attributes={"RedrivePolicy": ""})
    assert sqs.list_dead_letter_source_queues(QueueUrl=dlq)["queueUrls"] == []


def test_redrive_policy_needs_an_existing_target(sqs: Any) -> None:
    policy = json.dumps({"deadLetterTargetArn": "arn:aws:sqs:us-east-1:000000000000:absent", "maxReceiveCount": 2})
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        sqs.create_queue(QueueName="orphan", Attributes={"RedrivePolicy": policy})
    assert code_of(caught.value) == "InvalidParameterValue"


def test_unknown_queue_url(sqs: Any, sqs_server: ServeProcess) -> None:
    with pytest.raises(sqs.exceptions.QueueDoesNotExist):
        sqs.send_message(QueueUrl=f"{sqs_server.url}/000000000000/never-made", MessageBody="x")
