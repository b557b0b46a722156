"""The dashboard and the queue page in a real browser, against `restmq serve`."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import new_page, screenshot
from tests.helpers.auth import create_token
from tests.helpers.server import ServeProcess, serve

RATE = re.compile(r"^[1-9][0-9.]*$|^0\.(0[1-9]|[1-9])")  # a rate above zero

pytestmark = pytest.mark.e2e


def row(page: Any, queue: str) -> Any:
    return page.locator(f'tr[data-queue="{queue}"]')


def button(page: Any, name: str) -> Any:
    return page.get_by_role("button", name=name, exact=True)


def cell(page: Any, queue: str, label: str) -> Any:
    return row(page, queue).locator(f'td[data-label="{label}"]')


def test_a_queue_appears_after_an_add_and_its_rates_move(restmq: ServeProcess, page: Any) -> None:
    page.goto(restmq.url + "/")
    expect(page.locator("#live")).to_have_text("live")
    expect(page.locator("#rows")).to_contain_text("No queues yet")
    with httpx.Client(base_url=restmq.url) as client:
        client.post("/q/orders", data={"value": "first"}).raise_for_status()
        expect(row(page, "orders")).to_be_visible()
        expect(cell(page, "orders", "ready")).to_have_text("1")
        expect(cell(page, "orders", "add/s")).to_have_text(re.compile(r"\d"))  # a first sample: rates from now on
        client.post("/q/orders", json=[f"m{i}" for i in range(50)]).raise_for_status()
        expect(cell(page, "orders", "add/s")).to_have_text(RATE)
        expect(cell(page, "orders", "ready")).to_have_text("51")
        assert len(client.get("/q/orders", params={"count": 20}).json()) == 20
        expect(cell(page, "orders", "deliver/s")).to_have_text(RATE)
        expect(cell(page, "orders", "ready")).to_have_text("31")
    expect(page.locator("#t-add")).not_to_have_text("–")
    points = row(page, "orders").locator("svg.spark polyline.add").get_attribute("points")
    assert points and len(points.split()) >= 2
    expect(page.locator("#rows tr.empty")).to_have_count(0)
    screenshot(page, "dashboard")


def test_the_add_form_creates_a_queue(restmq: ServeProcess, page: Any) -> None:
    page.goto(restmq.url + "/ui")
    page.get_by_label("Queue", exact=True).fill("from-the-form")
    page.get_by_label("Value").fill("hello")
    button(page, "Add").click()
    expect(page.locator("#notice")).to_have_text("Added from-the-form:1.")
    expect(cell(page, "from-the-form", "ready")).to_have_text("1")


def test_stop_start_policy_purge_and_redrive(restmq: ServeProcess, page: Any) -> None:
    with httpx.Client(base_url=restmq.url) as client:
        client.post("/q/jobs", json=["a", "b", "c"]).raise_for_status()
        client.post("/control/jobs", data={"max_deliveries": "1"}).raise_for_status()
        leased = client.get("/q/jobs", params={"lease": 30}).json()
        client.post(f"/q/jobs/{leased['key']}/release").raise_for_status()  # its last delivery: dead-lettered
        page.goto(restmq.url + "/")
        expect(cell(page, "jobs", "dead")).to_have_text("1")

        button(page, "Stop jobs").click()
        expect(row(page, "jobs").locator(".status-stop")).to_have_text("stop")
        assert client.get("/control/jobs").json()["status"] == "stop"
        button(page, "Start jobs").click()
        expect(row(page, "jobs").locator(".status-start")).to_have_text("start")
        assert client.get("/control/jobs").json()["status"] == "start"

        page.get_by_label("Policy of jobs", exact=True).select_option("roundrobin")
        expect(page.locator("#notice")).to_have_text("jobs: policy roundrobin.")
        assert client.get("/p/jobs").json()["value"] == "roundrobin"

        button(page, "Redrive the dead letters of jobs").click()
        expect(cell(page, "jobs", "dead")).to_have_text("0")
        expect(cell(page, "jobs", "ready")).to_have_text("3")

        page.once("dialog", lambda dialog: dialog.dismiss())  # "Cancel" keeps everything
        button(page, "Purge jobs").click()
        expect(cell(page, "jobs", "ready")).to_have_text("3")
        page.once("dialog", lambda dialog: dialog.accept())
        button(page, "Purge jobs").click()
        expect(row(page, "jobs")).to_have_count(0)  # a purged queue leaves the listing
        assert client.get("/q/jobs").status_code == 204


def test_keyboard_alone_stops_a_queue(restmq: ServeProcess, page: Any) -> None:
    httpx.post(restmq.url + "/q/kb", data={"value": "x"}).raise_for_status()
    page.goto(restmq.url + "/")
    stop = button(page, "Stop kb")
    expect(stop).to_be_visible()
    for _ in range(40):  # tab through the page until the button has the focus
        if stop.evaluate("node => node === document.activeElement"):
            break
        page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    expect(row(page, "kb").locator(".status-stop")).to_have_text("stop")


def test_a_message_added_before_the_pages_first_read_is_highlighted(restmq: ServeProcess, page: Any) -> None:
    """The server paints the page's first view; a message added before the script's first read is new to the reader
    (a slow script on a busy machine used to show it plain)."""
    held: list[Any] = []

    def hold(route: Any) -> None:
        held.append(route)

    with httpx.Client(base_url=restmq.url) as client:
        client.post("/q/late", data={"value": "one"}).raise_for_status()
        page.route("**/peek/late*", hold)  # the script's reads wait until the message below is added
        page.goto(restmq.url + "/j/late")
        expect(page.locator('tr[data-key="late:1"]')).to_be_visible()  # the server's paint
        deadline = time.monotonic() + 15
        while not held:
            assert time.monotonic() < deadline, "the page never read /peek"
            page.wait_for_timeout(20)  # Playwright runs the route handler while it waits
        client.post("/q/late", data={"value": "two"}).raise_for_status()
        held[0].continue_()
        page.unroute("**/peek/late*")  # before the next read, a second later
        expect(page.locator('tr[data-key="late:2"]')).to_have_class("new")
        expect(page.locator('tr[data-key="late:1"]')).not_to_have_class("new")


def test_queue_page_live_view_add_form_and_live_consumer(restmq: ServeProcess, page: Any) -> None:
    with httpx.Client(base_url=restmq.url) as client:
        client.post("/q/mail", json=["one", "<b>two</b>"]).raise_for_status()
        page.goto(restmq.url + "/j/mail")
        expect(page.locator("#queue-name")).to_have_text("mail")
        expect(page.locator("#rows tr")).to_have_count(2)
        expect(page.locator("#rows tr").first).to_contain_text("<b>two</b>")  # shown as text, not markup
        expect(page.locator("#summary")).to_contain_text("ready 2")

        client.post("/q/mail", data={"value": "three"}).raise_for_status()  # someone else adds
        expect(page.locator('tr[data-key="mail:3"]')).to_have_class("new")
        page.get_by_label("Value").fill('{"n": 4}')
        page.get_by_label("Priority").fill("5")
        button(page, "Add").click()
        expect(page.locator("#notice")).to_have_text("Added mail:4.")
        expect(page.locator('tr[data-key="mail:4"]')).to_be_visible()
        expect(page.locator("#summary")).to_contain_text("ready 4")
        assert '{"n": 4}' in [m["value"] for m in client.get("/peek/mail").json()["messages"]]
        screenshot(page, "queue")

        page.get_by_label("Consume live over Server-Sent Events").check()
        expect(page.locator("#consumed li")).to_have_count(4)
        expect(page.locator("#summary")).to_contain_text("ready 0")
        expect(page.locator("#rows")).to_contain_text("no waiting messages")
        client.post("/q/mail", data={"value": "five"}).raise_for_status()
        expect(page.locator("#consumed li").first).to_contain_text("five")
        page.get_by_label("Consume live over Server-Sent Events").uncheck()
        expect(page.locator("#summary")).to_contain_text("consumers 0")


def test_tokens_the_page_asks_for_one_and_shows_only_what_it_covers(
    restmq: ServeProcess, redis_url: str, page: Any
) -> None:
    admin = create_token(redis_url, "*", "admin")
    reader = create_token(redis_url, "orders.*", "read")
    with httpx.Client(base_url=restmq.url, headers={"Authorization": f"Bearer {admin}"}) as client:
        for queue in ("orders.eu", "audit"):
            client.post(f"/q/{queue}", data={"value": "x"}).raise_for_status()
    page.goto(restmq.url + "/")
    expect(page.locator("#notice")).to_contain_text("token")
    page.get_by_label("Token").fill(reader)
    button(page, "Save").click()
    expect(row(page, "orders.eu")).to_be_visible()
    expect(row(page, "audit")).to_have_count(0)
    page.reload()  # the token stays in this browser
    expect(row(page, "orders.eu")).to_be_visible()
    page.goto(restmq.url + "/j/orders.eu")
    expect(page.locator("#summary")).to_contain_text("ready 1")
    page.goto(restmq.url + "/j/audit")
    expect(page.locator("#notice")).to_contain_text("no read right on audit")


def test_pages_at_phone_width(restmq: ServeProcess, browser: Any) -> None:
    with httpx.Client(base_url=restmq.url) as client:
        for queue, count in (("orders", 12), ("emails", 3), ("orders:dead", 1)):
            client.post(f"/q/{queue}", json=[f"message {i}" for i in range(count)]).raise_for_status()
        client.post("/control/emails", data={"status": "stop"}).raise_for_status()
    phone = new_page(browser, {"width": 360, "height": 780})
    try:
        phone.goto(restmq.url + "/")
        expect(cell(phone, "orders", "ready")).to_have_text("12")
        expect(cell(phone, "orders", "add/s")).to_have_text(re.compile(r"\d"))
        no_sideways_scroll(phone)
        purge = button(phone, "Purge orders").bounding_box()
        assert purge is not None and purge["x"] + purge["width"] <= 360, purge
        screenshot(phone, "dashboard-360")
        phone.goto(restmq.url + "/j/orders?limit=5")
        expect(phone.locator("#rows tr")).to_have_count(5)
        no_sideways_scroll(phone)
        screenshot(phone, "queue-360")
        assert phone.script_errors == []
    finally:
        phone.context.close()


def no_sideways_scroll(page: Any) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 360, f"the page is {width}px wide at 360px"


@pytest.fixture
def paged(redis_url: str, tmp_path: Any) -> Iterator[ServeProcess]:
    """`restmq serve --max-page 10` with 30 queues, q00 to q29."""
    with serve(["--redis", redis_url, "--max-page", "10"], tmp_path) as process:
        with httpx.Client(base_url=process.url) as client:
            for i in range(30):
                client.post(f"/q/q{i:02}", data={"value": "x"}).raise_for_status()
        yield process


def shown(page: Any, first: int) -> None:
    """The page shows q<first> to q<first + 9>, in order, and nothing else."""
    names = [f"q{i:02}" for i in range(first, first + 10)]
    same = "names => [...document.querySelectorAll('#rows tr')].map(r => r.dataset.queue).join() === names.join()"
    page.wait_for_function(same, arg=names)


def test_the_dashboard_shows_a_page_at_a_time_with_next_and_previous(paged: ServeProcess, page: Any) -> None:
    """Issue 13: with more queues than --max-page, the dashboard shows one page, live, and moves between pages."""
    page.goto(paged.url + "/")
    expect(page.locator("#live")).to_have_text("live")
    shown(page, 0)
    expect(page.locator("#page-prev")).to_be_hidden()
    expect(page.locator("#t-queues-label")).to_have_text("queues on this page")
    expect(page.locator("#t-queues")).to_have_text("10")
    page.get_by_role("link", name="Next page →").click()
    shown(page, 10)
    assert "after=q09" in page.url
    page.get_by_role("link", name="Next page →").click()
    shown(page, 20)
    expect(page.locator("#page-next")).to_be_hidden()
    httpx.post(paged.url + "/q/q25", data={"value": "y"}).raise_for_status()
    expect(cell(page, "q25", "ready")).to_have_text("2")  # still live
    page.get_by_role("link", name="← Previous page").click()
    shown(page, 10)
    page.go_back()  # the browser's own history works too
    shown(page, 20)
    page.get_by_role("link", name="← Previous page").click()
    page.get_by_role("link", name="← Previous page").click()
    shown(page, 0)
    expect(page.locator("#page-prev")).to_be_hidden()
    page.reload()  # the address holds the page
    shown(page, 0)
    page.goto(paged.url + "/ui?after=q19&limit=5")
    expect(page.locator("#rows tr")).to_have_count(5)
    expect(row(page, "q20")).to_be_visible()
    screenshot(page, "dashboard-paged")


def test_without_javascript_the_dashboard_links_the_next_page(paged: ServeProcess, browser: Any) -> None:
    """Issue 13: the first paint is one page, with a plain link to the next."""
    context = browser.new_context(java_script_enabled=False)
    try:
        plain = context.new_page()
        plain.goto(paged.url + "/")
        expect(plain.locator("#rows tr")).to_have_count(10)
        plain.get_by_role("link", name="Next page →").click()
        expect(row(plain, "q10")).to_be_visible()
        expect(plain.locator("#rows tr")).to_have_count(10)
    finally:
        context.close()
