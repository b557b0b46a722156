"""The dashboard's push panel in a real browser (issue 19): a subscription's row, its counts and its pause."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.helpers.receiver import Receiver, receiver
from tests.helpers.server import ServeProcess, serve

pytestmark = pytest.mark.e2e


@pytest.fixture
def pushing(redis_url: str, tmp_path: Path) -> Iterator[ServeProcess]:
    with serve(["--redis", redis_url, "--push-allow", "127.0.0.1"], tmp_path) as process:
        yield process


@pytest.fixture
def target() -> Iterator[Receiver]:
    with receiver() as found:
        yield found


def test_the_push_panel_shows_deliveries_and_pauses(pushing: ServeProcess, target: Receiver, page: Any) -> None:
    with httpx.Client(base_url=pushing.url) as client:
        client.post("/push/hooks", json={"url": target.url + "/ok"}).raise_for_status()
        client.post("/push/gone", json={"url": target.url + "/gone"}).raise_for_status()
        client.post("/q/hooks", json=["a", "b", "c"]).raise_for_status()
        client.post("/q/gone", data={"value": "x"}).raise_for_status()
        page.goto(pushing.url + "/ui")
        panel = page.locator("#push")
        expect(panel).to_be_visible()
        hooks = panel.locator('tr[data-queue="hooks"]')
        expect(hooks.locator('td[data-label="delivered"]')).to_have_text("3")
        expect(hooks.locator('td[data-label="state"]')).to_have_text("active")
        gone = panel.locator('tr[data-queue="gone"]')
        expect(gone.locator('td[data-label="state"]')).to_have_text("paused (410)")
        expect(gone.locator('td[data-label="last status"]')).to_have_text("410")
    assert page.script_errors == []
