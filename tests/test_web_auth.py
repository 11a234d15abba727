"""Signing in and out of the web inbox, in a real browser against the real server: the lockout,
where sign-in leads (never off this server), the cookie's flags, the pages' security headers,
CSRF on form POSTs, and admins' pages refused to agents."""

from __future__ import annotations

import base64
import json
import re
import time
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp import ClientSession
from cryptography.fernet import Fernet

from bot.front.web import SESSION_COOKIE
from tests.browser import WebInbox
from tests.conftest import STORES, make_settings

# Sign-in's lockout and the sessions' end hold in the store: those run on both stores.
both_stores = pytest.mark.parametrize("db_url", STORES, indirect=True)


async def test_a_page_asks_to_sign_in_and_comes_back_after(web: WebInbox) -> None:
    page = await web.page()
    await page.goto("/inbox?status=resolved")
    assert urlsplit(page.url).path == "/login"
    await page.get_by_label("Email").fill(web.agent.email)
    await page.get_by_label("Password").fill(web.agent.password)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url("**/inbox?status=resolved")
    assert await page.locator("header .who").inner_text() == web.agent.user.name


async def test_a_wrong_password_says_so_and_signs_nobody_in(web: WebInbox) -> None:
    page = await web.page()
    await page.goto("/login")
    await page.get_by_label("Email").fill(web.agent.email)
    await page.get_by_label("Password").fill("not the password")
    await page.get_by_role("button", name="Sign in").click()
    await page.get_by_role("alert").wait_for()
    assert "wrong" in (await page.get_by_role("alert").inner_text())
    await page.goto("/inbox")
    assert urlsplit(page.url).path == "/login"


@both_stores
async def test_five_failures_lock_the_email_even_with_the_right_password(web: WebInbox) -> None:
    page = await web.page()
    for _ in range(5):
        await page.goto("/login")
        await page.get_by_label("Email").fill(web.agent.email)
        await page.get_by_label("Password").fill("not the password")
        await page.get_by_role("button", name="Sign in").click()
        await page.get_by_role("alert").wait_for()
    await page.goto("/login")
    await page.get_by_label("Email").fill(web.agent.email)
    await page.get_by_label("Password").fill(web.agent.password)
    async with page.expect_response(lambda r: r.request.method == "POST") as answer:
        await page.get_by_role("button", name="Sign in").click()
    assert (await answer.value).status == 429
    text = await page.get_by_role("alert").inner_text()
    assert re.search(r"Try again after \d{4}-\d\d-\d\d \d\d:\d\d UTC", text), text
    await page.goto("/inbox")
    assert urlsplit(page.url).path == "/login"  # still not signed in


@pytest.mark.parametrize(
    "target", ["//evil.example/x", "/\\evil.example", "https://evil.example/", "javascript:alert(1)"]
)
async def test_next_never_leads_off_this_server(web: WebInbox, target: str) -> None:
    page = await web.page()
    await page.goto("/login?next=" + target.replace("\\", "%5C"))
    await page.get_by_label("Email").fill(web.agent.email)
    await page.get_by_label("Password").fill(web.agent.password)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(lambda url: "/login" not in url)
    assert urlsplit(page.url).netloc == urlsplit(web.url).netloc
    assert urlsplit(page.url).path == "/inbox"


async def test_the_session_cookie_is_httponly_samesite_lax_and_ends_at_sign_out(web: WebInbox) -> None:
    page = await web.page(web.agent)
    (cookie,) = await page.context.cookies()
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Lax"
    assert cookie["secure"] is False  # served over http here (Secure when public_url is https)
    assert 11.9 * 3600 < cookie["expires"] - time.time() <= 12 * 3600 + 5  # idle expiry
    await page.get_by_role("button", name="Sign out").click()
    await page.wait_for_url("**/login")
    await page.goto("/inbox")
    assert urlsplit(page.url).path == "/login"


async def test_pages_send_the_security_headers(web: WebInbox) -> None:
    page = await web.page(web.agent)
    answer = await page.goto("/inbox")
    assert answer is not None
    headers = answer.headers
    assert "script-src 'self'" in headers["content-security-policy"]
    assert "unsafe-inline" not in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "same-origin"


async def test_a_form_post_without_the_csrf_token_is_refused_and_changes_nothing(web: WebInbox) -> None:
    page = await web.page(web.agent)
    cookies = {c["name"]: c["value"] for c in await page.context.cookies()}
    async with ClientSession(cookies=cookies) as client:
        for form in ({}, {"csrf": "forged"}):
            resp = await client.post(f"{web.url}/logout", data=form, allow_redirects=False)
            assert resp.status == 403, form
            assert "expired" in await resp.text()
    await page.goto("/inbox")  # still signed in: the forged sign-out did nothing
    assert urlsplit(page.url).path == "/inbox"


async def test_an_agent_is_refused_admins_pages_with_a_page_that_says_so(web: WebInbox) -> None:
    page = await web.page(web.agent)
    answer = await page.goto("/settings")
    assert answer is not None and answer.status == 403
    assert "Only admins" in await page.get_by_role("alert").inner_text()
    assert await page.get_by_role("link", name="Settings").count() == 0
    admin = await web.page(web.admin)
    assert await admin.get_by_role("link", name="Settings").count() == 1


@both_stores
async def test_a_deactivated_user_is_signed_out_at_once(web: WebInbox) -> None:
    page = await web.page(web.agent)
    await web.bot.state.people.update_user(web.agent.user.id, active=False, actor="api")
    await page.goto("/inbox")
    assert urlsplit(page.url).path == "/login"


# --- the cookie, without a browser: Secure behind https, and the idle expiry -----------------------------

SESSION_KEY = base64.urlsafe_b64encode(b"k" * 32).decode()


async def test_the_cookie_is_secure_when_people_reach_the_inbox_over_https(make_bot: Any, db_url: str) -> None:
    bot = await make_bot(
        make_settings(
            db_url, server={"public_url": "https://inbox.example.com"}, env={"INBOX_SESSION_KEY": SESSION_KEY}
        )
    )
    resp = await bot.client.get("/login")
    cookie = resp.cookies[SESSION_COOKIE]
    assert cookie["secure"] is True and cookie["httponly"] is True and cookie["samesite"] == "Lax"


async def test_a_session_idle_for_more_than_12_hours_is_over(make_bot: Any, db_url: str) -> None:
    bot = await make_bot(make_settings(db_url, env={"INBOX_SESSION_KEY": SESSION_KEY}))
    user = (
        await bot.state.people.add_user(email="ana@example.com", role="agent", password="correct horse", actor="cli")
    ).user

    def cookie(seen_ago: int) -> str:
        """A session cookie as the server writes it, last used `seen_ago` seconds ago."""
        at = int(time.time()) - seen_ago
        session = {"user_id": user.id, "epoch": user.session_epoch, "sid": "s", "csrf": "c", "seen": at}
        data = json.dumps({"created": at, "session": session}).encode()
        return Fernet(SESSION_KEY).encrypt_at_time(data, at).decode()

    for seen_ago, signed_in in ((11 * 3600, True), (12 * 3600 + 60, False)):
        bot.client.session.cookie_jar.clear()  # only the cookie made here
        resp = await bot.client.get(
            "/inbox", headers={"Cookie": f"{SESSION_COOKIE}={cookie(seen_ago)}"}, allow_redirects=False
        )
        assert (resp.status == 200) is signed_in, (seen_ago, resp.status)
        if not signed_in:
            assert resp.headers["Location"] == "/login"
