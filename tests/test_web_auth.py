"""Signing in and out of the web inbox, in a real browser against the real server: the lockout,
where sign-in leads (never off this server), the cookie's flags, the pages' security headers,
CSRF on form POSTs, and admins' pages refused to agents."""

from __future__ import annotations

import re
import time
from urllib.parse import urlsplit

import pytest
from aiohttp import ClientSession

from tests.browser import WebInbox
from tests.conftest import STORES

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
    assert await page.get_by_text(web.agent.user.name).is_visible()


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
    await web.bot.state.people.update_user(web.agent.user.id, active=False)
    await page.goto("/inbox")
    assert urlsplit(page.url).path == "/login"
