"""static/live.js in a real browser (Debian's Chromium driven by Playwright): pages with a live
region refetch it when the hub says their conversation changed, touch nothing else, and coalesce
bursts. The pages here are small stand-ins served with the same CSP as the inbox's (no inline
script); the inbox's own pages are tested end to end with the web front-end."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from bot.domain import Role, User
from bot.front.web import live
from bot.services import live as changes
from bot.services.live import Hub
from tests.browser import CHROMIUM, CHROMIUM_ARGS, need_chromium

STATIC = Path(live.__file__).parent / "static"
CSP = "default-src 'self'; script-src 'self'; connect-src 'self'"
AGENT = User(
    id=1,
    email="ana@example.com",
    name="Ana",
    role=Role.AGENT,
    teams=(),
    active=True,
    language=None,
    session_epoch=0,
    created_at=datetime(2026, 1, 1, tzinfo=UTC),
)


@pytest.fixture(autouse=True)
def chromium_present() -> None:
    """Skip only outside CI when Chromium is missing; in CI a missing browser fails the test."""
    need_chromium()


class Site:
    """A queue page and a conversation page whose live region shows a counter per page."""

    def __init__(self) -> None:
        self.hub = Hub()
        self.version = 0
        self.fetches: list[str] = []  # each GET of a page, by path
        self.slow = asyncio.Event()  # while clear, refetches wait (to pile changes up)
        self.slow.set()

    def page(self, region: str) -> str:
        return f"""<!doctype html><html><head><title>t</title><script src="/static/live.js" defer></script></head>
<body><form><label>Reply <textarea id="draft"></textarea></label></form>
{region}</body></html>"""

    async def queue(self, request: web.Request) -> web.Response:
        self.fetches.append(request.path)
        await self.slow.wait()
        body = f'<section id="queue" data-live-region><p id="v">version {self.version}</p></section>'
        return web.Response(text=self.page(body), content_type="text/html", headers={"Content-Security-Policy": CSP})

    async def conversation(self, request: web.Request) -> web.Response:
        self.fetches.append(request.path)
        cid = request.match_info["id"]
        body = (
            f'<section id="conversation" data-live-region data-conversation-id="{cid}">'
            f'<p id="v">version {self.version}</p></section>'
        )
        return web.Response(text=self.page(body), content_type="text/html", headers={"Content-Security-Policy": CSP})

    def app(self) -> web.Application:
        async def no_icon(request: web.Request) -> web.Response:
            return web.Response(status=204)

        async def signed_in(request: web.Request) -> User | None:
            return AGENT

        app = web.Application()
        app.add_routes(
            [
                web.get("/inbox", self.queue),
                web.get("/inbox/{id}", self.conversation),
                web.static("/static", STATIC),
                web.get("/favicon.ico", no_icon),
                *live.routes(self.hub, signed_in),
            ]
        )
        return app


@pytest.fixture
async def site(aiohttp_server: Any) -> AsyncIterator[tuple[Site, str]]:
    s = Site()
    server = await aiohttp_server(s.app())
    yield s, str(server.make_url("")).rstrip("/")
    s.hub.end_all()


@pytest.fixture
async def page() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield await browser.new_page()
        finally:
            await browser.close()


async def streaming(site: Site) -> None:
    for _ in range(500):  # bounded: until the page's EventSource is connected
        if site.hub.streams:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the page never opened /events")


async def test_the_queue_refreshes_its_region_and_keeps_what_is_typed(site: tuple[Site, str], page: Any) -> None:
    s, url = site
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    await page.goto(f"{url}/inbox")
    await streaming(s)
    await page.get_by_label("Reply").fill("Half-written answer")
    s.version = 1
    s.hub.publish(42, changes.MESSAGE)
    await page.locator("#v", has_text="version 1").wait_for()
    assert await page.get_by_label("Reply").input_value() == "Half-written answer"
    assert s.fetches == ["/inbox", "/inbox"]  # the page was not reloaded: one fetch for the region
    assert errors == []  # no CSP violation, no script error


async def test_a_conversation_page_follows_only_its_own_conversation(site: tuple[Site, str], page: Any) -> None:
    s, url = site
    await page.goto(f"{url}/inbox/7")
    await streaming(s)
    s.version = 1
    s.hub.publish(8, changes.RESOLVE)  # another conversation: nothing to fetch
    s.hub.publish(7, changes.RESOLVE)
    await page.locator("#v", has_text="version 1").wait_for()
    assert s.fetches == ["/inbox/7", "/inbox/7"]


async def test_a_burst_of_changes_costs_at_most_two_refetches(site: tuple[Site, str], page: Any) -> None:
    s, url = site
    await page.goto(f"{url}/inbox")
    await streaming(s)
    s.slow.clear()  # the first refetch hangs while the burst arrives
    s.hub.publish(1, changes.MESSAGE)
    for _ in range(500):
        if len(s.fetches) == 2:
            break
        await asyncio.sleep(0.02)
    s.version = 2
    for i in range(2, 30):
        s.hub.publish(i, changes.MESSAGE)
    await asyncio.sleep(0.5)  # let the browser receive the burst (only lets more fetches happen)
    s.slow.set()
    await page.locator("#v", has_text="version 2").wait_for()
    await asyncio.sleep(0.3)  # a third refetch, if the script made one, would show up here
    assert s.fetches == ["/inbox", "/inbox", "/inbox"]  # the page, the one in flight, one queued
