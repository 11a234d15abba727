"""Browser tests' harness: Debian's Chromium driven by Playwright, against the real server (a real
store), with a signed-in admin and agent. Pages are found by accessible names, as a person (and a
screen reader) finds them.

Locally the browser tests skip, saying why, only when Chromium is missing; in CI (`CI` set) a
missing browser fails them: CI must run them (`.ci/run` installs it)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from bot.config import Settings
from bot.domain import User
from tests.conftest import Bot

CHROMIUM = Path("/usr/bin/chromium")
# No sandbox: CI runs as root. The rest keeps Chromium from calling out (updates, sync, field trials).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PASSWORD = {"admin": "admin-password-1", "agent": "agent-password-1"}


def need_chromium() -> None:
    if CHROMIUM.exists():
        return
    why = f"no Chromium at {CHROMIUM} (install it: apt-get install -y chromium)"
    if os.environ.get("CI"):
        pytest.fail(f"{why}: CI must run the browser tests")
    pytest.skip(f"browser tests need Chromium: {why}")


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """A headless Chromium for this test."""
    need_chromium()
    async with async_playwright() as p:
        launched = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


@dataclass
class Person:
    """A user of the web inbox and their password."""

    user: User
    password: str

    @property
    def email(self) -> str:
        return self.user.email


@dataclass
class WebInbox:
    """The running server (`bot` talks to it over HTTP: webhooks, the API) and a browser."""

    bot: Bot
    browser: Browser
    admin: Person
    agent: Person
    contexts: list[BrowserContext] = field(default_factory=list)

    @property
    def url(self) -> str:
        return str(self.bot.client.make_url("/")).rstrip("/")

    async def page(self, who: Person | None = None, *, locale: str = "en-US") -> Page:
        """A new browser (own cookies) with `locale` as its language, signed in as `who`."""
        context = await self.browser.new_context(locale=locale, base_url=self.url)
        context.set_default_timeout(15_000)  # an upper bound on waiting for a control, not a timing assertion
        self.contexts.append(context)
        page = await context.new_page()
        if who is not None:
            await self.sign_in(page, who)
        return page

    async def sign_in(self, page: Page, who: Person, *, email_label: str = "Email") -> None:
        """Sign in through the sign-in form, as a person does."""
        await page.goto("/login")
        await page.get_by_label(email_label).fill(who.email)
        await page.get_by_label("Password" if email_label == "Email" else "Mot de passe").fill(who.password)
        button = "Sign in" if email_label == "Email" else "Se connecter"
        await page.get_by_role("button", name=button).click()
        await page.wait_for_url(lambda url: "/login" not in url)

    async def close(self) -> None:
        for context in self.contexts:
            await context.close()


async def add_person(
    bot: Bot, role: str, *, email: str | None = None, name: str | None = None, **fields: Any
) -> Person:
    created = await bot.state.people.add_user(
        email=email or f"{role}@example.com",
        role=role,
        name=name or role.capitalize(),
        password=PASSWORD.get(role, "some-password-1"),
        actor="cli",
        **fields,
    )
    return Person(created.user, PASSWORD.get(role, "some-password-1"))


@pytest.fixture
async def web(
    make_bot: Callable[[Settings], Awaitable[Bot]], settings: Settings, browser: Browser
) -> AsyncIterator[WebInbox]:
    """The real server on a real store (SQLite unless the test parametrizes `db_url`), an admin
    "Admin" (admin@example.com) and an agent "Agent" (agent@example.com), and a browser."""
    bot = await make_bot(settings)
    inbox = WebInbox(bot, browser, await add_person(bot, "admin"), await add_person(bot, "agent"))
    try:
        yield inbox
    finally:
        await inbox.close()
