"""The two SQS wire protocols, read into ONE params shape (the AWS JSON 1.0 one) and written back.

- AWS JSON 1.0 (current botocore): `POST /`, `X-Amz-Target: AmazonSQS.<Operation>`, a JSON object body; replies
  are JSON, errors `{"__type": "com.amazonaws.sqs#<Code>", "message": ...}` with `x-amzn-query-error`.
- The query protocol (older SDKs, some libraries): `Action=<Operation>` in a form body or the query string, lists
  and maps flattened (`MessageAttribute.1.Name`, `AttributeName.2`, `SendMessageBatchRequestEntry.3.Id`); replies
  are XML (`<SendMessageResponse><SendMessageResult>...`), errors `<ErrorResponse><Error><Code>...`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

import orjson

from restmq.web.sqs.errors import SqsError

TARGET_PREFIX = "AmazonSQS."
JSON_TYPE = b"application/x-amz-json-1.0"
XML_NS = "http://queue.amazonaws.com/doc/2012-11-05/"

# Flattened query-protocol collections -> their JSON 1.0 member
LISTS = {
    "AttributeName": "AttributeNames",
    "MessageAttributeName": "MessageAttributeNames",
    "MessageSystemAttributeName": "MessageSystemAttributeNames",
    "TagKey": "TagKeys",
}
MAPS = {"Attribute": ("Attributes", "Name", "Value"), "Tag": ("Tags", "Key", "Value")}
MESSAGE_ATTRIBUTES = {"MessageAttribute": "MessageAttributes", "MessageSystemAttribute": "MessageSystemAttributes"}
ENTRIES = ("SendMessageBatchRequestEntry", "DeleteMessageBatchRequestEntry", "ChangeMessageVisibilityBatchRequestEntry")
INTEGERS = frozenset({"DelaySeconds", "MaxNumberOfMessages", "WaitTimeSeconds", "VisibilityTimeout", "MaxResults"})
MAX_FLAT_INDEX = 1000  # a flattened list's index: more than any SQS list holds, few enough to refuse floods


@dataclass(frozen=True, slots=True)
class SqsRequest:
    operation: str
    params: dict[str, Any]
    query: bool  # the query protocol: XML replies


def from_json(target: str, body: bytes) -> SqsRequest:
    operation = target[len(TARGET_PREFIX) :]
    try:
        params = orjson.loads(body) if body.strip() else {}
    except orjson.JSONDecodeError:
        raise SqsError("SerializationException", "The request body is not valid JSON (or not UTF-8).") from None
    if not isinstance(params, dict):
        raise SqsError("SerializationException", "The request body must be a JSON object.")
    return SqsRequest(operation, params, query=False)


def from_form(pairs: list[tuple[str, str]]) -> SqsRequest:
    """A query-protocol request from its parameters (query string and form body together)."""
    tree: dict[str, Any] = {}
    for key, value in pairs:
        node = tree
        *path, last = key.split(".")
        for part in path:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise SqsError("InvalidParameterValue", f"Parameter {key} conflicts with another one.")
            node = child
        if isinstance(node.get(last), dict):
            raise SqsError("InvalidParameterValue", f"Parameter {key} conflicts with another one.")
        node[last] = value
    operation = tree.pop("Action", None)
    tree.pop("Version", None)
    if not isinstance(operation, str) or not operation:
        raise SqsError("MissingAction", "The request must contain the parameter Action.")
    return SqsRequest(operation, _shape(tree), query=True)


def parse_form_body(body: bytes) -> list[tuple[str, str]]:
    try:
        return parse_qsl(body.decode(), keep_blank_values=True, errors="strict", max_num_fields=10_000)
    except (UnicodeDecodeError, ValueError):
        raise SqsError("InvalidParameterValue", "The form body is not valid UTF-8 form data.") from None


def _items(node: Any, name: str) -> list[Any]:
    """A flattened list's members in index order (`Name.1`, `Name.2`, ...)."""
    if not isinstance(node, dict) or not all(k.isdigit() and 0 < int(k) <= MAX_FLAT_INDEX for k in node):
        raise SqsError("InvalidParameterValue", f"Parameter {name} must be indexed as {name}.1, {name}.2, ...")
    return [node[k] for k in sorted(node, key=int)]


def _shape(tree: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, node in tree.items():
        if name in LISTS:
            out[LISTS[name]] = _items(node, name)
        elif name in MAPS:
            member, key, value = MAPS[name]
            out[member] = {_text(e, key, name): _text(e, value, name) for e in _items(node, name)}
        elif name in MESSAGE_ATTRIBUTES:
            out[MESSAGE_ATTRIBUTES[name]] = {_text(e, "Name", name): e.get("Value") for e in _items(node, name)}
        elif name in ENTRIES:
            out["Entries"] = [_shape(e) if isinstance(e, dict) else e for e in _items(node, name)]
        elif isinstance(node, str):
            out[name] = int(node) if name in INTEGERS and node.lstrip("-").isdigit() and len(node) < 12 else node
        else:
            raise SqsError("InvalidParameterValue", f"Unknown parameter {name}.")
    return out


def _text(entry: Any, field: str, name: str) -> str:
    value = entry.get(field) if isinstance(entry, dict) else None
    if not isinstance(value, str):
        raise SqsError("MissingParameter", f"Each {name}.N needs its {field}.")
    return value


# -- replies ----------------------------------------------------------------------------------

# JSON member -> (XML element of each member, how its entries are written)
_XML_LISTS = {
    "QueueUrls": "QueueUrl",
    "queueUrls": "QueueUrl",
    "Messages": "Message",
    "Failed": "BatchResultErrorEntry",
}
_XML_MAPS = {"Attributes": ("Attribute", "Name", "Value"), "Tags": ("Tag", "Key", "Value")}
_XML_SUCCESS = {
    "SendMessageBatch": "SendMessageBatchResultEntry",
    "DeleteMessageBatch": "DeleteMessageBatchResultEntry",
    "ChangeMessageVisibilityBatch": "ChangeMessageVisibilityBatchResultEntry",
}


def _xml_value(value: Any, operation: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return _xml_members(value, operation)
    return escape(str(value), {"\r": "&#xD;"})


def _xml_members(result: dict[str, Any], operation: str) -> str:
    parts: list[str] = []
    for name, value in result.items():
        if name in ("MessageAttributes", "MessageSystemAttributes"):
            element = name[:-1]
            for key, attr in value.items():
                parts.append(f"<{element}><Name>{escape(key)}</Name><Value>{_xml_value(attr, operation)}</Value>")
                parts.append(f"</{element}>")
        elif name in _XML_MAPS:
            element, key_name, value_name = _XML_MAPS[name]
            for key, item in value.items():
                parts.append(f"<{element}><{key_name}>{escape(key)}</{key_name}>")
                parts.append(f"<{value_name}>{_xml_value(item, operation)}</{value_name}></{element}>")
        elif name in _XML_LISTS or name == "Successful":
            element = _XML_LISTS.get(name) or _XML_SUCCESS[operation]
            parts.extend(f"<{element}>{_xml_value(item, operation)}</{element}>" for item in value)
        else:
            parts.append(f"<{name}>{_xml_value(value, operation)}</{name}>")
    return "".join(parts)


def render(request: SqsRequest, result: dict[str, Any], request_id: str) -> tuple[bytes, bytes]:
    """The reply body and its content type."""
    if not request.query:
        return orjson.dumps(result), JSON_TYPE
    op = request.operation
    inner = f"<{op}Result>{_xml_members(result, op)}</{op}Result>" if result else ""
    meta = f"<ResponseMetadata><RequestId>{escape(request_id)}</RequestId></ResponseMetadata>"
    return f'<?xml version="1.0"?><{op}Response xmlns="{XML_NS}">{inner}{meta}</{op}Response>'.encode(), b"text/xml"


def render_error(error: SqsError, query: bool, request_id: str) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """The error body and headers (content type, and the legacy code botocore reads)."""
    legacy = f"{error.legacy_code};{error.fault}".encode()
    if not query:
        body = orjson.dumps({"__type": f"com.amazonaws.sqs#{error.code}", "message": error.message})
        return body, [(b"content-type", JSON_TYPE), (b"x-amzn-query-error", legacy)]
    xml = (
        f'<?xml version="1.0"?><ErrorResponse xmlns="{XML_NS}"><Error><Type>{error.fault}</Type>'
        f"<Code>{escape(error.legacy_code)}</Code><Message>{escape(error.message)}</Message><Detail/></Error>"
        f"<RequestId>{escape(request_id)}</RequestId></ErrorResponse>"
    )
    return xml.encode(), [(b"content-type", b"text/xml"), (b"x-amzn-query-error", legacy)]
