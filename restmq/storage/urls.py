"""Backend URLs as given to --redis / --redis-cluster: splitting lists, and the one redaction of their secrets.

Everything that shows a backend (node names in /ready and /stats/, errors, logs, `restmq config`) shows
`redact(url)`: `redis://:***@host:6379/0`. Pure string work, no redis import, so the CLI can use it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "***"
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
# A query parameter whose name says it holds a secret (redis-py passes any parameter on as an argument,
# so `?password=` works, and so would `?ssl_password=`); its value runs to the next separator.
_SECRET_PARAMETER = re.compile(r"[?&;][^=&;#]*(?:pass|pwd|secret|token|auth|credential)[^=&;#]*=([^&;#]*)", re.I)
_PLAIN_USER = re.compile(r"[^/?#@]*")
# Where a comma list of URLs splits: only before the next URL's scheme, so a comma in a password stays.
_LIST_SEPARATOR = re.compile(r",\s*(?=[A-Za-z][A-Za-z0-9+.-]*://)")


def _secret_spans(url: str) -> Iterable[tuple[int, int]]:
    """Where the secrets are: the password part of the user information, and secret query values."""
    scheme = _SCHEME.match(url)
    start = scheme.end() if scheme else 0
    at = url.rfind("@", start)
    if at >= 0 and not url.startswith("/", start):  # unix:///path has no user information
        user, colon, _ = url[start:at].partition(":")
        keep = len(user) + 1 if colon and _PLAIN_USER.fullmatch(user) else 0  # `app:` of app:secret@
        yield start + keep, at
    for match in _SECRET_PARAMETER.finditer(url):
        yield match.span(1)


def redact(url: str) -> str:
    """`url` with its password (and any secret query parameter) replaced by ***.

    The user name stays when a password follows it (`redis://app:***@host`). Everything up to the last `@`
    counts as user information, so a password holding an unescaped `/`, `?`, `#` or `@` is hidden whole;
    an `@` in a harmless query value then hides a little more than needed, never less.
    """
    hidden = [False] * len(url)
    for begin, end in _secret_spans(url):
        hidden[begin:end] = [True] * (end - begin)
    if not any(hidden):
        return url
    shown: list[str] = []
    for i, char in enumerate(url):
        if not hidden[i]:
            shown.append(char)
        elif i == 0 or not hidden[i - 1]:
            shown.append(MASK)
    return "".join(shown)


def split_urls(values: str | Iterable[str]) -> tuple[str, ...]:
    """Backend URLs from repeated options that may each be a comma list: ("a,b", "c") -> ("a", "b", "c")."""
    items = [values] if isinstance(values, str) else values
    return tuple(url.strip() for value in items for url in _LIST_SEPARATOR.split(value) if url.strip())


def redact_list(text: str) -> str:
    """A comma list of URLs (or one URL), each redacted."""
    return ",".join(redact(url) for url in split_urls(text))
