"""SqsError: the error codes SQS clients parse, with their HTTP status and the legacy (query protocol) code.

botocore reads a JSON 1.0 error's `__type` (after the `#`) and, for SQS, prefers the code in the
`x-amzn-query-error` header (`<code>;Sender`): that is the code older SDKs and the query protocol's XML carry.
"""

from __future__ import annotations

# shape name (JSON __type) -> legacy code, for the errors botocore's SQS model declares
LEGACY_CODES = {
    "QueueDoesNotExist": "AWS.SimpleQueueService.NonExistentQueue",
    "QueueNameExists": "QueueAlreadyExists",
    "TooManyEntriesInBatchRequest": "AWS.SimpleQueueService.TooManyEntriesInBatchRequest",
    "EmptyBatchRequest": "AWS.SimpleQueueService.EmptyBatchRequest",
    "BatchEntryIdsNotDistinct": "AWS.SimpleQueueService.BatchEntryIdsNotDistinct",
    "InvalidBatchEntryId": "AWS.SimpleQueueService.InvalidBatchEntryId",
    "BatchRequestTooLong": "AWS.SimpleQueueService.BatchRequestTooLong",
    "UnsupportedOperation": "AWS.SimpleQueueService.UnsupportedOperation",
    "MessageNotInflight": "AWS.SimpleQueueService.MessageNotInflight",
    "PurgeQueueInProgress": "AWS.SimpleQueueService.PurgeQueueInProgress",
    "ReceiptHandleIsInvalid": "ReceiptHandleIsInvalid",
    "InvalidAddress": "InvalidAddress",
    "InvalidAttributeName": "InvalidAttributeName",
    "InvalidAttributeValue": "InvalidAttributeValue",
    "InvalidMessageContents": "InvalidMessageContents",
    "ResourceNotFoundException": "ResourceNotFoundException",
}


class SqsError(Exception):
    """A refusal in SQS terms: `code` is the JSON 1.0 shape name, `status` the HTTP status."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status

    @property
    def legacy_code(self) -> str:
        return LEGACY_CODES.get(self.code, self.code)

    @property
    def fault(self) -> str:
        return "Receiver" if self.status >= 500 else "Sender"


def invalid(message: str) -> SqsError:
    return SqsError("InvalidParameterValue", message)


def missing(name: str) -> SqsError:
    return SqsError("MissingParameter", f"The request must contain the parameter {name}.")


def no_queue() -> SqsError:
    return SqsError("QueueDoesNotExist", "The specified queue does not exist.")
