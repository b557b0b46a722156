"""SQS wire details without a server (issue 18): attribute digests (vectors that moto's SQS tests pin as AWS's),
receipt handles, and the query protocol read into the JSON 1.0 shape. botocore checks no digest itself: these
vectors are the independent check."""

from __future__ import annotations

import base64

import pytest

from restmq.web.sqs import handles, md5
from restmq.web.sqs.errors import SqsError
from restmq.web.sqs.protocol import from_form, from_json, render_error

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("attributes", "digest"),
    [
        ({"timestamp": {"DataType": "Number", "StringValue": "1493147359900"}}, "235c5c510d26fb653d073faed50ae77c"),
        ({"timestamp": {"DataType": "Number", "StringValue": "1493147359901"}}, "994258b45346a2cc3f9cbb611aa7af30"),
        (
            {
                "ccc": {"StringValue": "testjunk", "DataType": "String"},
                "aaa": {"BinaryValue": base64.b64encode(b"\x02\x03\x04").decode(), "DataType": "Binary"},
                "zzz": {"DataType": "Number", "StringValue": "0230.01"},
                "öther_encodings": {"DataType": "String", "StringValue": "T\xfcst"},
            },
            "8ae21a7957029ef04146b42aeaa18a22",
        ),
    ],
)
def test_attribute_digests_match_aws(attributes: dict[str, dict[str, str]], digest: str) -> None:
    assert md5.of_attributes(attributes) == digest


def test_body_digest() -> None:
    assert md5.of_body("derp") == "58fd9edd83341c29f1aebba81c31e257"


def test_handles_are_unique_per_receive_and_round_trip() -> None:
    one, two = handles.encode("jobs", 7, 2), handles.encode("jobs", 7, 2)
    assert one != two
    assert handles.decode(one) == handles.Receipt("jobs", 7, 2)
    assert handles.decode(handles.encode("jobs:dead", 1, 1)).queue == "jobs:dead"


@pytest.mark.parametrize(
    "handle", ["", "x" * 2000, "@@@", base64.urlsafe_b64encode(b"bad name! 1 1 n").decode(), 5, None]
)
def test_foreign_handles_are_invalid(handle: object) -> None:
    with pytest.raises(SqsError) as caught:
        handles.decode(handle)
    assert caught.value.code == "ReceiptHandleIsInvalid"


def test_query_parameters_take_the_json_shape() -> None:
    request = from_form(
        [
            ("Action", "SendMessageBatch"),
            ("Version", "2012-11-05"),
            ("QueueUrl", "/000000000000/q"),
            ("SendMessageBatchRequestEntry.2.Id", "b"),
            ("SendMessageBatchRequestEntry.2.MessageBody", "two"),
            ("SendMessageBatchRequestEntry.1.Id", "a"),
            ("SendMessageBatchRequestEntry.1.MessageBody", "one"),
            ("SendMessageBatchRequestEntry.1.DelaySeconds", "5"),
            ("SendMessageBatchRequestEntry.1.MessageAttribute.1.Name", "k"),
            ("SendMessageBatchRequestEntry.1.MessageAttribute.1.Value.DataType", "String"),
            ("SendMessageBatchRequestEntry.1.MessageAttribute.1.Value.StringValue", "v"),
        ]
    )
    assert request.query and request.operation == "SendMessageBatch"
    assert request.params == {
        "QueueUrl": "/000000000000/q",
        "Entries": [
            {
                "Id": "a",
                "MessageBody": "one",
                "DelaySeconds": 5,
                "MessageAttributes": {"k": {"DataType": "String", "StringValue": "v"}},
            },
            {"Id": "b", "MessageBody": "two"},
        ],
    }
    listed = from_form([("Action", "GetQueueAttributes"), ("AttributeName.2", "B"), ("AttributeName.1", "A")])
    assert listed.params == {"AttributeNames": ["A", "B"]}


@pytest.mark.parametrize("body", [b"{", b"[]", b"\xff", b'"text"'])
def test_json_bodies_that_are_no_object_are_refused(body: bytes) -> None:
    with pytest.raises(SqsError) as caught:
        from_json("AmazonSQS.ListQueues", body)
    assert caught.value.code == "SerializationException"


def test_errors_carry_the_legacy_code_for_botocore() -> None:
    body, headers = render_error(SqsError("QueueDoesNotExist", "gone"), False, "rid")
    assert b"com.amazonaws.sqs#QueueDoesNotExist" in body
    assert (b"x-amzn-query-error", b"AWS.SimpleQueueService.NonExistentQueue;Sender") in headers
