"""What the mapper, the workers (Python and browser) and the reducer agree on: how the book is cut into
jobs, what a word is, the queue names, and the direct count every result is checked against."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

BOOK = Path(__file__).resolve().parent / "pride-and-prejudice.txt"
JOBS = "wordcount.jobs"  # roundrobin: each job goes to one worker; workers lease and ack
RESULTS = "wordcount.results"
# A word: lowercase ASCII letters, with inner apostrophes ("don't", "lady's"). index.html uses the same
# expression, /[a-z]+(?:'[a-z]+)*/g, on the same lowercased text.
WORD = re.compile(r"[a-z]+(?:'[a-z]+)*")


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


def count(text: str) -> Counter[str]:
    return Counter(words(text))


def chunks(text: str, lines: int) -> Iterator[str]:
    """The text in pieces of `lines` lines. A word never spans a line, so no word is cut in two."""
    all_lines = text.splitlines()
    for start in range(0, len(all_lines), lines):
        yield "\n".join(all_lines[start : start + lines])


def book() -> str:
    return BOOK.read_text(encoding="utf-8")
