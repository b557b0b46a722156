"""The dashboard's schedules panel in a real browser (issue 19): a schedule shows its rule, its ticks as they are
published, and pauses and resumes from its button."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import screenshot
from tests.helpers.server import ServeProcess

pytestmark = pytest.mark.e2e


def test_the_panel_shows_ticks_and_pauses_a_schedule(restmq: ServeProcess, page: Any) -> None:
    with httpx.Client(base_url=restmq.url) as client:
        created = client.post("/schedules", json={"queue": "panel", "value": "{{tick}}", "every": 1}).json()
    page.goto(restmq.url + "/ui")
    row = page.locator(f'tr[data-schedule="{created["id"]}"]')
    expect(row).to_contain_text("every 1 s")
    expect(row.locator('td[data-label="last fired"]')).to_contain_text("panel:", timeout=20_000)
    row.get_by_role("button", name="pause", exact=True).click()
    expect(row.locator('td[data-label="paused"]')).to_have_text("yes")
    with httpx.Client(base_url=restmq.url) as client:
        assert client.get(f"/schedules/{created['id']}").json()["paused"] is True
    row.get_by_role("button", name="resume", exact=True).click()
    expect(row.locator('td[data-label="paused"]')).to_have_text("no")
    screenshot(page, "schedules-panel")
    assert page.script_errors == []
