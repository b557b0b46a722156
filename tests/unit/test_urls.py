"""Backend URL redaction and list splitting (issue 13: a backend password never leaves the server)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from restmq.storage.urls import redact, redact_list, split_urls

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:s3cret@db.example:6379/0", "redis://:***@db.example:6379/0"),
        ("redis://app:s3cret@db.example:6379/0", "redis://app:***@db.example:6379/0"),
        ("rediss://app:s3cret@db.example:6380/2", "rediss://app:***@db.example:6380/2"),
        ("redis://s3cret@db.example", "redis://***@db.example"),  # a lone part may be a password: hidden
        ("redis://:p@ss/w?rd#x@db:6379/0", "redis://:***@db:6379/0"),  # unescaped / ? # @ hidden whole
        ("unix:///run/valkey.sock?db=0&password=s3cret", "unix:///run/valkey.sock?db=0&password=***"),
        ("unix://app:s3cret@/run/valkey.sock", "unix://app:***@/run/valkey.sock"),
        (
            "redis://db:6379/0?ssl_password=s3cret&socket_timeout=2",
            "redis://db:6379/0?ssl_password=***&socket_timeout=2",
        ),
        ("redis://db:6379/0?PassWord=s3cret", "redis://db:6379/0?PassWord=***"),
        ("redis://:pw@db/0?client_name=me@there", "redis://:***@there"),  # an @ in a value: more hidden, not less
    ],
)
def test_passwords_are_redacted(url: str, shown: str) -> None:
    assert redact(url) == shown


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:6379/0",
        "redis://db.example:6379/0?weight=3",
        "unix:///tmp/restmq-data/valkey.sock",
        "unix:///tmp/odd@name.sock",  # a path, not user information
        "redis://[::1]:6379/0",
        "",
        "not a url",
    ],
)
def test_urls_without_secrets_are_shown_as_given(url: str) -> None:
    assert redact(url) == url


passwords = st.text(min_size=4, max_size=30).filter(lambda p: "\x00" not in p)


@given(user=st.sampled_from(["", "app"]), password=passwords, host=st.sampled_from(["db", "10.0.0.5", "[::1]"]))
def test_no_password_survives_in_the_user_part(user: str, password: str, host: str) -> None:
    url = f"redis://{user}:{password}@{host}:6379/0"
    shown = redact(url)
    # Exactly the password is masked: `password not in shown` would fail for one that is a piece of "redis://".
    assert shown == f"redis://{user}:***@{host}:6379/0"


@given(password=passwords.filter(lambda p: not any(c in p for c in "&;#")))
def test_no_password_survives_in_the_query(password: str) -> None:
    shown = redact(f"unix:///run/v.sock?db=0&password={password}&x=1")
    assert password not in shown.removeprefix("unix:///run/v.sock?db=0&password=").removesuffix("&x=1")


def test_a_list_splits_only_before_a_scheme() -> None:
    assert split_urls(("redis://:a,b@h1:1/0,redis://h2:2/0", " unix:///s.sock ")) == (
        "redis://:a,b@h1:1/0",
        "redis://h2:2/0",
        "unix:///s.sock",
    )
    assert redact_list("redis://:a,b@h1:1/0, rediss://u:c@h2:2/0") == "redis://:***@h1:1/0,rediss://u:***@h2:2/0"
    assert redact_list("") == ""
