"""The SQS wire protocols on a real `restmq serve` (issue 18): one queue through every door, the query protocol's
XML, the 2010 `POST /` form kept, hostile input, --sqs-port, metrics, and who may call."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import botocore.exceptions
import httpx
import pytest

from tests.helpers.server import ServeProcess, free_port, serve
from tests.helpers.sqs import sqs_client

pytestmark = pytest.mark.integration
NS = {"sqs": "http://queue.amazonaws.com/doc/2012-11-05/"}
JSON_10 = {"Content-Type": "application/x-amz-json-1.0"}
SQS_SERVER_ARGS = ["--max-body", "100000"]  # the sqs_server fixture's (conftest.py): a known limit for oversize bodies


def test_one_queue_every_door(sqs: Any, sqs_server: ServeProcess) -> None:
    url = sqs.create_queue(QueueName="doors")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="from boto3")
    got = httpx.get(f"{sqs_server.url}/q/doors")
    assert got.status_code == 200 and got.json()["value"] == "from boto3"
    assert httpx.post(f"{sqs_server.url}/q/doors", data={"value": "from REST"}).status_code == 200
    message = sqs.receive_message(QueueUrl=url, AttributeNames=["All"])["Messages"][0]
    assert message["Body"] == "from REST"
    assert message["MessageId"].startswith("doors:")  # a message added through REST: its key is its id
    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    stats = httpx.get(f"{sqs_server.url}/stats/doors").json()
    assert stats["added"] == 2 and stats["length"] == 0


def test_a_queue_made_by_rest_is_reachable(sqs: Any, sqs_server: ServeProcess) -> None:
    httpx.post(f"{sqs_server.url}/q/rest-made", data={"value": "v"})
    url = sqs.get_queue_url(QueueName="rest-made")["QueueUrl"]
    assert sqs.receive_message(QueueUrl=url)["Messages"][0]["Body"] == "v"


def test_the_2010_index_form_keeps_its_meaning(sqs_server: ServeProcess) -> None:
    added = httpx.post(f"{sqs_server.url}/", data={"queue": "legacy", "value": "old"})
    assert added.status_code == 200 and added.text == "legacy:1\r\n"
    assert httpx.get(f"{sqs_server.url}/?queue=legacy").json()["value"] == "old"


def query(server: ServeProcess, path: str = "/", **params: str) -> httpx.Response:
    return httpx.post(server.url + path, data=params)


def test_query_protocol_replies_in_xml(sqs_server: ServeProcess) -> None:
    created = query(sqs_server, Action="CreateQueue", QueueName="xml", **{"Attribute.1.Name": "VisibilityTimeout",
                                                                         "Attribute.1.Value": "40"})  # fmt: skip
    assert created.status_code == 200
    url = ET.fromstring(created.text).findtext("sqs:CreateQueueResult/sqs:QueueUrl", namespaces=NS)
    assert url == f"{sqs_server.url}/000000000000/xml"
    sent = query(
        sqs_server,
        "/000000000000/xml",  # to the queue's URL, without a QueueUrl parameter, as old SDKs do
        Action="SendMessage",
        MessageBody="<b>&</b>",
        **{"MessageAttribute.1.Name": "k", "MessageAttribute.1.Value.DataType": "String",
           "MessageAttribute.1.Value.StringValue": "v"},
    )  # fmt: skip
    result = ET.fromstring(sent.text).find("sqs:SendMessageResult", NS)
    assert result is not None
    assert result.findtext("sqs:MD5OfMessageBody", namespaces=NS) == hashlib.md5(b"<b>&</b>").hexdigest()
    received = query(
        sqs_server, Action="ReceiveMessage", QueueUrl=url, **{"MessageAttributeName.1": "All", "AttributeName.1": "All"}
    )
    message = ET.fromstring(received.text).find("sqs:ReceiveMessageResult/sqs:Message", NS)
    assert message is not None
    assert message.findtext("sqs:Body", namespaces=NS) == "<b>&</b>"
    names = [a.findtext("sqs:Name", namespaces=NS) for a in message.findall("sqs:Attribute", NS)]
    assert "ApproximateReceiveCount" in names
    attribute = message.find("sqs:MessageAttribute", NS)
    assert attribute is not None and attribute.findtext("sqs:Value/sqs:StringValue", namespaces=NS) == "v"
    listed = httpx.get(f"{sqs_server.url}/?Action=ListQueues&QueueNamePrefix=xm")
    assert [e.text for e in ET.fromstring(listed.text).iter(f"{{{NS['sqs']}}}QueueUrl")] == [url]


def test_query_protocol_errors_in_xml(sqs_server: ServeProcess) -> None:
    missing = query(sqs_server, Action="GetQueueUrl", QueueName="never")
    assert missing.status_code == 400
    error = ET.fromstring(missing.text).find("sqs:Error", NS)
    assert error is not None
    assert error.findtext("sqs:Code", namespaces=NS) == "AWS.SimpleQueueService.NonExistentQueue"
    assert error.findtext("sqs:Type", namespaces=NS) == "Sender"


@pytest.mark.parametrize(
    ("headers", "body", "code"),
    [
        ({"X-Amz-Target": "AmazonSQS.ListQueues"}, b"{not json", "SerializationException"),
        ({"X-Amz-Target": "AmazonSQS.ListQueues"}, b'{"QueueNamePrefix": "\xff\xfe"}', "SerializationException"),
        ({"X-Amz-Target": "AmazonSQS.ListQueues"}, b"[1, 2]", "SerializationException"),
        ({"X-Amz-Target": "AmazonSQS.NoSuchOperation"}, b"{}", "InvalidAction"),
        ({"X-Amz-Target": "AmazonSQS.AddPermission"}, b"{}", "UnsupportedOperation"),
        ({"X-Amz-Target": "AmazonSQS.SendMessage"}, b'{"QueueUrl": 5, "MessageBody": "x"}', "MissingParameter"),
        ({"X-Amz-Target": "AmazonSQS.DeleteMessage"}, b'{"QueueUrl": "/000000000000/hostile", "ReceiptHandle": "@@"}',
         "ReceiptHandleIsInvalid"),
    ],
)  # fmt: skip
def test_hostile_json_requests(
    sqs_server: ServeProcess, sqs: Any, headers: dict[str, str], body: bytes, code: str
) -> None:
    sqs.create_queue(QueueName="hostile")
    reply = httpx.post(sqs_server.url + "/", content=body, headers={**JSON_10, **headers})
    assert reply.status_code == 400, reply.text
    assert reply.json()["__type"].endswith("#" + code)
    assert httpx.get(sqs_server.url + "/ready").status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        b"Action=NoSuch",
        b"Action=SendMessage&QueueUrl=%ff%fe&MessageBody=x",
        b"Action=CreateQueue&QueueName=q&Attribute.1=x&Attribute.1.Name=y",
        b"Action=CreateQueue&QueueName=q&Attribute.x.Name=y",
        b"Action=ListQueues&MaxResults=abc",
    ],
)
def test_hostile_query_requests(sqs_server: ServeProcess, body: bytes) -> None:
    reply = httpx.post(
        sqs_server.url + "/", content=body, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert reply.status_code == 400, reply.text
    assert ET.fromstring(reply.text).find("sqs:Error/sqs:Code", NS) is not None


def test_oversize_bodies_are_refused_and_nothing_is_lost(sqs: Any, sqs_server: ServeProcess) -> None:
    url = sqs.create_queue(QueueName="big")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="kept")
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        sqs.send_message(QueueUrl=url, MessageBody="x" * 200_000)  # over --max-body 100000
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413
    assert sqs.receive_message(QueueUrl=url)["Messages"][0]["Body"] == "kept"


def test_metrics_count_sqs_operations(sqs: Any, sqs_server: ServeProcess) -> None:
    sqs.list_queues()
    metrics = httpx.get(sqs_server.url + "/metrics").text
    assert 'handler="list_queues"' in metrics


def test_sqs_port_serves_sqs_at_any_path(tmp_path: Path) -> None:
    port = free_port()
    with serve(["--data-dir", str(tmp_path / "data"), "--sqs-port", str(port)], tmp_path) as process:
        elsewhere = sqs_client(f"http://127.0.0.1:{port}")
        url = elsewhere.create_queue(QueueName="own-port")["QueueUrl"]
        assert url == f"http://127.0.0.1:{port}/000000000000/own-port"
        elsewhere.send_message(QueueUrl=url, MessageBody="p")
        assert httpx.get(f"{process.url}/q/own-port").json()["value"] == "p"  # the same queues as the main port
        not_rest = httpx.get(f"http://127.0.0.1:{port}/q/own-port")
        assert not_rest.status_code == 400 and "MissingAction" in not_rest.text


def test_acl_address_rules_apply(tmp_path: Path) -> None:
    acl = tmp_path / "acl.conf"
    acl.write_text("[rest:producer]\nhosts_allow = 10.0.0.0/8\n[rest:consumer]\nhosts_allow = 127.0.0.0/8\n")
    with serve(["--data-dir", str(tmp_path / "data"), "--acl", str(acl)], tmp_path) as process:
        client = sqs_client(process.url)
        with pytest.raises(botocore.exceptions.ClientError) as caught:
            client.create_queue(QueueName="acl")  # admin: the producer section, which 127.0.0.1 is not in
        assert caught.value.response["Error"]["Code"] == "AccessDenied"
        assert client.list_queues().get("QueueUrls", []) == []  # read: the consumer section admits loopback


def test_token_mode_refuses_made_up_keys(tmp_path: Path) -> None:
    with serve(["--data-dir", str(tmp_path / "data"), "--auth", "tokens"], tmp_path) as process:
        with pytest.raises(botocore.exceptions.ClientError) as caught:
            sqs_client(process.url).list_queues()  # signed with "test": no such access key
        assert caught.value.response["Error"]["Code"] == "InvalidClientTokenId"
        assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_the_boto3_quickstart_example_runs(sqs_server: ServeProcess) -> None:
    example = Path(__file__).parents[2] / "examples" / "sqs" / "boto3_quickstart.py"
    done = subprocess.run([sys.executable, str(example), sqs_server.url], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert lines[1] == {"sent": 5, "failed": 0}
    assert lines[-1] == {"done": 5}
