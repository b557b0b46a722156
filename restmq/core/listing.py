"""Listings in pages: queue names in name order, `limit` at a time after `after`, only those the caller may see.

The backend keeps the names in an index ordered by name, so a page is one range read per node whatever the
number of queues. A caller whose token covers few of them may get short pages: one request reads at most
SCAN_PAGES pages' worth of names, then answers with what it found and where to go on.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from restmq.core.model import QueuePage
from restmq.core.names import MAX_QUEUE_NAME, QUEUE_NAME_RULE, check_queue_name
from restmq.core.store import Store
from restmq.errors import InvalidParameter, InvalidQueueName

SCAN_PAGES = 10  # pages' worth of names one filtered request may read before it answers a short page
FILTERED_READ = 1000  # names per backend read while filtering: fewer round trips when the token covers few

Covers = Callable[[str], bool]


def page_size(limit: int | None, max_page: int) -> int:
    """The names per page: `limit`, lowered to `max_page`; `max_page` when not given."""
    if limit is None:
        return max_page
    if limit < 1:
        raise InvalidParameter(f"limit must be a positive integer (at most {max_page} are used)")
    return min(limit, max_page)


def check_after(after: str | None) -> str | None:
    """`after` as given (None or empty: from the first name); anything that cannot be a queue name is refused."""
    if not after:
        return None
    try:
        return check_queue_name(after)
    except InvalidQueueName:
        shown = after if len(after) <= MAX_QUEUE_NAME else after[:MAX_QUEUE_NAME] + "…"
        raise InvalidParameter(
            f"after must be a queue name (the next of the previous page), got {shown!r}: {QUEUE_NAME_RULE}"
        ) from None


async def page(store: Store, after: str | None, size: int, covers: Covers | None = None) -> QueuePage:
    """The first `size` names after `after` that `covers` accepts (all when None)."""
    if covers is None:
        names = await store.list_page(after, size + 1)  # one more than asked: is there a next page?
        return QueuePage(names[:size], names[size - 1] if len(names) > size else None)
    found: list[str] = []
    cursor, budget = after, SCAN_PAGES * size
    while True:
        want = max(size + 1, min(FILTERED_READ, budget))
        names = await store.list_page(cursor, want)
        for name in names:
            if covers(name):
                found.append(name)
                if len(found) > size:
                    return QueuePage(found[:size], found[size - 1])
        if len(names) < want:
            return QueuePage(found, None)
        cursor = names[-1]
        budget -= len(names)
        if budget <= 0:  # a short page: none of the names read up to `cursor` that were skipped is covered
            return QueuePage(found, cursor)


async def pages(store: Store, size: int, covers: Covers | None = None) -> AsyncIterator[list[str]]:
    """Every page of the listing in turn, for a walk over all queues that holds one page at a time."""
    after: str | None = None
    while True:
        current = await page(store, after, size, covers)
        if current.queues:
            yield current.queues
        if current.next is None:
            return
        after = current.next
