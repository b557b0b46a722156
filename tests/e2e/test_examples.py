"""The example applications' pages in a real browser, each started with its one command."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import screenshot
from tests.helpers.demos import EXAMPLES, run_demo

pytestmark = pytest.mark.e2e


def test_firehose_page_shows_filtered_posts_arriving(page: Any) -> None:
    with run_demo("firehose", "--rate", "40", "--query", "#python #redis", wait_for=("firehose page",)) as demo:
        page.goto(demo.urls["firehose page"])
        expect(page.locator("#status")).to_have_text("live")
        expect(page.locator("#posts li").nth(4)).to_be_visible(timeout=20_000)
        total = int(page.locator("#total").inner_text() or 0)
        expect(page.locator("#total")).not_to_have_text(str(total), timeout=10_000)  # still arriving
        for text in page.locator("#posts .text").all_inner_texts()[:10]:
            assert {"#python", "#redis"} & set(text.lower().split()), text
        expect(
            page.locator('#hashtags li[data-name="#python"], #hashtags li[data-name="#redis"]').first
        ).to_be_visible()
        screenshot(page, "firehose")


def test_mapreduce_in_the_browser_equals_the_direct_count(page: Any) -> None:
    with run_demo("mapreduce", "--python-workers", "0", wait_for=("word-count page",)) as demo:
        page.goto(demo.urls["word-count page"] + "?delay=0")
        verdict = page.locator("#verdict")
        expect(verdict).to_have_text(re.compile("equals a direct count of the book"), timeout=90_000)
        name = page.locator("#worker-name").inner_text()
        result = httpx.get(demo.urls["word-count page"] + "status?full=1").json()
        screenshot(page, "mapreduce")
    text = (EXAMPLES / "mapreduce" / "pride-and-prejudice.txt").read_text(encoding="utf-8")
    assert Counter(result["counts"]) == Counter(re.findall(r"[a-z]+(?:'[a-z]+)*", text.lower()))
    assert result["workers"] == {name: result["jobs"]}  # every job was counted in this browser tab


def test_shortener_redirects_and_its_chart_counts_the_clicks(browser: Any, page: Any) -> None:
    with run_demo("shortener", wait_for=("shortener", "RestMQ and its dashboard")) as demo:
        target = demo.urls["RestMQ and its dashboard"] + "health"
        page.goto(demo.urls["shortener"])
        page.get_by_label("Link to shorten").fill(target)
        page.get_by_role("button", name="Shorten").click()
        short = page.locator("#short").get_attribute("href")
        assert short and short.startswith(demo.urls["shortener"])

        visitor = browser.new_context(locale="pt-BR")  # Accept-Language: pt-BR
        try:
            tab = visitor.new_page()
            for referer in ("https://news.example/a", "https://news.example/b", "https://blog.example/"):
                tab.goto(short, referer=referer)
                assert tab.url == target and "ok" in tab.content()
        finally:
            visitor.close()

        expect(page.locator("#total")).to_have_text("3", timeout=20_000)
        code = short.rsplit("/", 1)[1]
        expect(page.locator(f'#links tr[data-code="{code}"] td.n')).to_have_text("3")
        bars = page.locator("#hours rect")
        expect(bars).to_have_count(24)
        expect(bars.last).to_have_attribute("data-clicks", "3")
        expect(page.locator('#referrers rect[data-name="news.example"]')).to_be_visible()
        expect(page.locator('#countries rect[data-name="BR"]')).to_be_visible()
        screenshot(page, "shortener")
