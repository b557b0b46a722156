"""The batch operations' shared rules: 1-10 entries with distinct, valid ids; each entry succeeds or fails on its
own (Successful / Failed), as SQS answers them."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

from restmq.errors import BackendUnavailable, RestMQError
from restmq.web.sqs.errors import SqsError

MAX_ENTRIES = 10
ENTRY_ID = re.compile(r"[A-Za-z0-9_-]{1,80}")


def check_entries(entries: object) -> list[dict[str, Any]]:
    if not entries:
        raise SqsError("EmptyBatchRequest", "There should be at least one entry in the request.")
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise SqsError("InvalidParameterValue", "Entries must be a list of entries.")
    if len(entries) > MAX_ENTRIES:
        raise SqsError("TooManyEntriesInBatchRequest", f"Maximum number of entries per request are {MAX_ENTRIES}.")
    ids = [e.get("Id") for e in entries]
    for entry_id in ids:
        if not isinstance(entry_id, str) or not ENTRY_ID.fullmatch(entry_id):
            raise SqsError(
                "InvalidBatchEntryId",
                "A batch entry id can only contain alphanumeric characters, hyphens and underscores, 1 to 80 of them.",
            )
    if len(set(ids)) != len(ids):
        raise SqsError("BatchEntryIdsNotDistinct", "Two or more batch entries in the request have the same Id.")
    return entries


async def run_batch(entries: object, one: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
    """Each entry through `one`, in order; an entry's SQS or input error is its Failed entry. A backend that
    cannot answer fails the whole request (nothing tells which entries it took)."""
    successful: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    for entry in check_entries(entries):
        try:
            successful.append({"Id": entry["Id"], **await one(entry)})
        except BackendUnavailable:
            raise
        except (SqsError, RestMQError) as exc:
            failed.append(failure(entry["Id"], exc))
    return {"Successful": successful, "Failed": failed}


def failure(entry_id: str, exc: SqsError | RestMQError) -> dict[str, Any]:
    """A Failed entry: an SQS refusal as it is, any other input error as InvalidParameterValue."""
    if isinstance(exc, SqsError):
        return {"Id": entry_id, "SenderFault": exc.status < 500, "Code": exc.code, "Message": exc.message}
    return {"Id": entry_id, "SenderFault": True, "Code": "InvalidParameterValue", "Message": exc.message}
