"""SQS requests under `--auth tokens` end to end (issue 18): a real `restmq serve --auth tokens`, keys made by the
real `restmq token create --sqs`, and boto3 (or botocore's signers with httpx) as users run them: rights per
operation, queue patterns (refused and hidden from ListQueues), wrong secrets, revocation, unsigned requests,
the query protocol, presigned URLs; and no secret in a reply or the server's log."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.exceptions
import httpx
import pytest
from botocore import UNSIGNED

from tests.helpers.auth import restmq_cli
from tests.helpers.server import ServeProcess, serve
from tests.helpers.sigv4 import botocore_prepared
from tests.helpers.sqs import create_sqs_key, sqs_client
from tests.helpers.wait import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def server(redis_url: str, tmp_path: Path) -> Iterator[ServeProcess]:
    with serve(["--redis", redis_url, "--auth", "tokens"], tmp_path) as running:
        yield running


def refusal(call: Any, *args: Any, **kwargs: Any) -> tuple[str, int, str]:
    """The error code, HTTP status and raw reply of a refused boto3 call."""
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        call(*args, **kwargs)
    response = caught.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"], str(response)


def test_a_key_sends_receives_and_deletes_on_its_queues(server: ServeProcess, redis_url: str) -> None:
    key_id, secret = create_sqs_key(redis_url, "orders-*", "read,write,admin")
    sqs = sqs_client(server.url, key_id, secret)
    url = sqs.create_queue(QueueName="orders-eu")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="hello")
    messages = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=5)["Messages"]
    assert [m["Body"] for m in messages] == ["hello"]
    sqs.delete_message(QueueUrl=url, ReceiptHandle=messages[0]["ReceiptHandle"])
    assert (
        sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]["ApproximateNumberOfMessages"]
        == "0"
    )
    assert secret not in server.log()


def test_queues_outside_the_patterns_are_refused_and_hidden(server: ServeProcess, redis_url: str) -> None:
    admin = sqs_client(server.url, *create_sqs_key(redis_url, "*", "admin"))
    for name in ("orders-eu", "orders-us", "payroll"):
        admin.create_queue(QueueName=name)
    key_id, secret = create_sqs_key(redis_url, "orders-*", "read,write")
    sqs = sqs_client(server.url, key_id, secret)
    listed = [url.rsplit("/", 1)[1] for url in sqs.list_queues()["QueueUrls"]]
    assert listed == ["orders-eu", "orders-us"]
    assert len(admin.list_queues()["QueueUrls"]) == 3
    payroll = server.url + "/000000000000/payroll"
    for call, kwargs in (
        (sqs.send_message, {"QueueUrl": payroll, "MessageBody": "x"}),
        (sqs.receive_message, {"QueueUrl": payroll}),
        (sqs.get_queue_url, {"QueueName": "payroll"}),
        (sqs.get_queue_attributes, {"QueueUrl": payroll}),
        (sqs.purge_queue, {"QueueUrl": payroll}),
    ):
        code, status, reply = refusal(call, **kwargs)
        assert (code, status) == ("AccessDenied", 403), call
        assert secret not in reply
    # admin operations need admin even on a covered queue
    assert refusal(sqs.delete_queue, QueueUrl=server.url + "/000000000000/orders-eu")[:2] == ("AccessDenied", 403)
    assert refusal(sqs.create_queue, QueueName="orders-new")[:2] == ("AccessDenied", 403)


def test_a_read_only_key_receives_but_cannot_send(server: ServeProcess, redis_url: str) -> None:
    writer = sqs_client(server.url, *create_sqs_key(redis_url, "jobs", "write,admin"))
    url = writer.create_queue(QueueName="jobs")["QueueUrl"]
    writer.send_message(QueueUrl=url, MessageBody="one")
    reader = sqs_client(server.url, *create_sqs_key(redis_url, "jobs", "read"))
    messages = reader.receive_message(QueueUrl=url, WaitTimeSeconds=5)["Messages"]
    reader.change_message_visibility(QueueUrl=url, ReceiptHandle=messages[0]["ReceiptHandle"], VisibilityTimeout=5)
    reader.delete_message(QueueUrl=url, ReceiptHandle=messages[0]["ReceiptHandle"])
    assert refusal(reader.send_message, QueueUrl=url, MessageBody="two")[:2] == ("AccessDenied", 403)
    assert refusal(reader.set_queue_attributes, QueueUrl=url, Attributes={"DelaySeconds": "1"})[:2] == (
        "AccessDenied",
        403,
    )


def test_a_wrong_secret_is_refused(server: ServeProcess, redis_url: str) -> None:
    key_id, secret = create_sqs_key(redis_url, "*", "read,write,admin")
    wrong = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    code, status, reply = refusal(sqs_client(server.url, key_id, wrong).list_queues)
    assert (code, status) == ("SignatureDoesNotMatch", 403)
    assert secret not in reply and wrong not in reply
    assert secret not in server.log() and wrong not in server.log()


def test_a_revoked_key_is_refused_within_the_cache_time(server: ServeProcess, redis_url: str) -> None:
    key_id, secret = create_sqs_key(redis_url, "*", "read,write,admin")
    sqs = sqs_client(server.url, key_id, secret)
    sqs.create_queue(QueueName="revoked")
    revoked = restmq_cli("token", "revoke", key_id, "--redis", redis_url)
    assert revoked.returncode == 0, revoked.stderr

    def refused() -> bool:
        try:
            sqs.list_queues()
        except botocore.exceptions.ClientError as exc:
            assert exc.response["Error"]["Code"] == "InvalidClientTokenId"
            return True
        return False

    wait_until(refused, timeout=30, interval=0.2, what="the revoked key to be refused (cache: 5 s)")


def test_unsigned_requests(server: ServeProcess, tmp_path: Path) -> None:
    code, status, _ = refusal(sqs_client(server.url, signature_version=UNSIGNED).list_queues)
    assert (code, status) == ("MissingAuthenticationToken", 403)
    with serve(["--data-dir", str(tmp_path / "open"), "--auth", "none"], tmp_path, "open") as open_server:
        fake = sqs_client(open_server.url, "AKIAIOSFODNN7EXAMPLE", "made-up")
        url = fake.create_queue(QueueName="open")["QueueUrl"]
        fake.send_message(QueueUrl=url, MessageBody="any key")
        anonymous = sqs_client(open_server.url, signature_version=UNSIGNED)
        assert [m["Body"] for m in anonymous.receive_message(QueueUrl=url, WaitTimeSeconds=5)["Messages"]] == [
            "any key"
        ]


def test_the_query_protocol_signed_in_the_header(server: ServeProcess, redis_url: str) -> None:
    key_id, secret = create_sqs_key(redis_url, "legacy", "read,write,admin")
    sqs_client(server.url, key_id, secret).create_queue(QueueName="legacy")
    form = "Action=SendMessage&MessageBody=from+an+old+SDK&Version=2012-11-05"
    headers = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}

    def post(secret_used: str) -> httpx.Response:
        prepared = botocore_prepared(
            key_id, secret_used, path="/000000000000/legacy", headers=headers, body=form.encode(), endpoint=server.url
        )
        return httpx.post(prepared.url, headers=dict(prepared.headers.items()), content=prepared.body, timeout=30)

    sent = post(secret)
    assert sent.status_code == 200, sent.text
    assert "<SendMessageResponse" in sent.text and "<MessageId>" in sent.text
    refused = post(secret[::-1])
    assert refused.status_code == 403 and "<Code>SignatureDoesNotMatch</Code>" in refused.text
    assert secret not in refused.text and secret[::-1] not in refused.text
    received = httpx.get(f"{server.url}/q/legacy", timeout=10)  # the native door: a bearer token is needed too
    assert received.status_code == 401


def test_presigned_urls(server: ServeProcess, redis_url: str) -> None:
    key_id, secret = create_sqs_key(redis_url, "presigned", "read,write,admin")
    sqs = sqs_client(server.url, key_id, secret)
    url = sqs.create_queue(QueueName="presigned")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="by URL")
    # a query-protocol request presigned by botocore's SigV4QueryAuth: everything in the URL
    params = {"Action": "ReceiveMessage", "QueueUrl": url, "WaitTimeSeconds": "5"}
    prepared = botocore_prepared(key_id, secret, method="GET", params=params, presign_expires=60, endpoint=server.url)
    assert secret not in prepared.url
    got = httpx.get(prepared.url, timeout=30)
    assert got.status_code == 200 and "<Body>by URL</Body>" in got.text, got.text
    tampered = httpx.get(prepared.url.replace("ReceiveMessage", "PurgeQueue"), timeout=30)
    assert tampered.status_code == 403 and "SignatureDoesNotMatch" in tampered.text
    # boto3's own generate_presigned_url: with the JSON protocol the URL signs the headers the operation travels
    # in (X-Amz-Target, Content-Type, x-amzn-query-mode), which are sent beside it; botocore moves the JSON body's
    # fields into the query and signs an empty body, so only an operation without parameters can go this way
    presigned = sqs.generate_presigned_url("list_queues", Params={}, ExpiresIn=60)
    assert "x-amz-target" in presigned and secret not in presigned
    json_headers = {"X-Amz-Target": "AmazonSQS.ListQueues", "Content-Type": "application/x-amz-json-1.0"}
    listed = httpx.post(presigned, headers={**json_headers, "x-amzn-query-mode": "true"}, timeout=30)
    assert listed.status_code == 200, listed.text
    assert listed.json()["QueueUrls"] == [url]
    assert secret not in server.log()


def test_dead_letter_moves_need_write_on_the_destination(server: ServeProcess, redis_url: str) -> None:
    admin = sqs_client(server.url, *create_sqs_key(redis_url, "*", "admin"))
    dlq = admin.create_queue(QueueName="billing-dlq")["QueueUrl"]
    arn = admin.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    policy = json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": "2"})
    for name in ("billing", "payroll"):
        admin.create_queue(QueueName=name, Attributes={"RedrivePolicy": policy})
    billing = sqs_client(server.url, *create_sqs_key(redis_url, "billing*", "admin"))
    # the DLQ's sources, filtered to the key's queues; payroll's name does not leak
    listed = billing.list_dead_letter_source_queues(QueueUrl=dlq)["queueUrls"]
    assert [url.rsplit("/", 1)[1] for url in listed] == ["billing"]
    assert billing.start_message_move_task(SourceArn=arn, DestinationArn=arn.replace("billing-dlq", "billing"))
    # admin on the DLQ, but the move without a destination goes to payroll too: refused
    code, status, _ = refusal(billing.start_message_move_task, SourceArn=arn)
    assert (code, status) == ("AccessDenied", 403)
    reader = sqs_client(server.url, *create_sqs_key(redis_url, "*", "read,write"))
    assert refusal(reader.start_message_move_task, SourceArn=arn)[:2] == ("AccessDenied", 403)


def test_a_redrive_policy_needs_admin_on_its_dead_letter_queue(server: ServeProcess, redis_url: str) -> None:
    admin = sqs_client(server.url, *create_sqs_key(redis_url, "*", "admin"))
    dlq = admin.create_queue(QueueName="others-dlq")["QueueUrl"]
    arn = admin.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    policy = json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": "1"})
    mine = sqs_client(server.url, *create_sqs_key(redis_url, "mine*", "read,write,admin"))
    code, status, _ = refusal(mine.create_queue, QueueName="mine", Attributes={"RedrivePolicy": policy})
    assert (code, status) == ("AccessDenied", 403)  # its dead letters would reach others-dlq's readers
    url = mine.create_queue(QueueName="mine")["QueueUrl"]
    refused = refusal(mine.set_queue_attributes, QueueUrl=url, Attributes={"RedrivePolicy": policy})
    assert refused[:2] == ("AccessDenied", 403)
    assert admin.list_dead_letter_source_queues(QueueUrl=dlq)["queueUrls"] == []


def test_auto_requires_signatures_once_a_key_exists(redis_url: str, tmp_path: Path) -> None:
    key_id, secret = create_sqs_key(redis_url, "auto-*", "read,write,admin")
    with serve(["--redis", redis_url], tmp_path, "auto") as server:  # --auth auto, the default
        assert refusal(sqs_client(server.url, signature_version=UNSIGNED).list_queues)[0] == (
            "MissingAuthenticationToken"
        )
        assert refusal(sqs_client(server.url).list_queues)[0] == "InvalidClientTokenId"
        url = sqs_client(server.url, key_id, secret).create_queue(QueueName="auto-q")["QueueUrl"]
        assert url.endswith("/000000000000/auto-q")
