"""Shared fixtures: real stores (SQLite file; PostgreSQL at INBOX_TEST_POSTGRES_URL, or at the
default local URL when a server answers there), a running app over HTTP, signed webhook requests.
No test reaches the internet."""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import json
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import hypothesis
import pytest
from aiohttp.test_utils import TestClient

from bot.app import STATE_KEY, AppState, build_app
from bot.config import Settings, settings_from_dict
from bot.store import db
from tests.signing import signed_headers

# Property-based tests explore new inputs on every local run; in CI (CI=true) they replay a fixed
# set, so a submission's result does not depend on the luck of the draw.
hypothesis.settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    hypothesis.settings.load_profile("ci")

# the browser tests' fixtures (`browser`, `web`): Chromium driven by Playwright
pytest_plugins = ["tests.browser"]

PG_ENV = "INBOX_TEST_POSTGRES_URL"
PG_DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/test"
TOKEN = "test-token-123"
SHOP_SECRET = "shop-secret-abc"
PAYLOADS = Path(__file__).parent / "payloads"


# --- the network guard: tests talk to 127.0.0.1 only ------------------------------------------
_real_connect = socket.socket.connect


def _guarded_connect(self: socket.socket, address: Any) -> Any:
    if self.family in (socket.AF_INET, socket.AF_INET6):
        host = address[0]
        if host not in ("127.0.0.1", "::1", "localhost") and not str(host).startswith("127."):
            raise RuntimeError(f"test tried to reach {address!r}: tests must not leave this machine")
    return _real_connect(self, address)


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket.socket, "connect", _guarded_connect)


@pytest.fixture
def keep_logging() -> Any:
    """The CLI sets up the root logger; put pytest's handlers back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


async def eventually(check: Callable[[], Awaitable[Any]], what: str = "the condition", *, tries: int = 500) -> Any:
    """Poll `check` until it returns something truthy and return that (a bounded loop: only an
    upper bound on waiting, never a timing assertion)."""
    for _ in range(tries):
        result = await check()
        if result:
            return result
        await asyncio.sleep(0.02)
    raise AssertionError(f"never happened: {what}")


def load_payload(name: str) -> Any:
    return json.loads((PAYLOADS / name).read_text(encoding="utf-8"))


# --- stores ---------------------------------------------------------------------------------------


def postgres_for_tests(env: Mapping[str, str], answers: Callable[[str], str | None]) -> tuple[str | None, str]:
    """The PostgreSQL URL the tests use, or None and the reason to skip.

    $INBOX_TEST_POSTGRES_URL when set (used as is: a wrong URL fails loudly rather than skipping);
    else the default local URL when a server answers there (`answers` returns None, or what went
    wrong), so `make test` on a machine with PostgreSQL runs the PostgreSQL tests too."""
    url = env.get(PG_ENV)
    if url:
        return url, ""
    problem = answers(PG_DEFAULT_URL)
    if problem is None:
        return PG_DEFAULT_URL, ""
    return None, (
        f"PostgreSQL tests need a server: none answered at {PG_DEFAULT_URL} ({problem}); "
        f"start one there or set {PG_ENV} to another"
    )


def _pg_answers(url: str) -> str | None:
    """None when PostgreSQL at `url` accepts a connection, else a short reason."""
    import asyncpg

    async def probe() -> None:
        conn = await asyncpg.connect(url, timeout=3)
        await conn.close()

    try:  # in a thread of its own: the first caller is an async fixture, inside a running loop
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, probe()).result()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return None


@functools.cache
def pg_url() -> tuple[str | None, str]:
    """Asked once per test session, on the first test that wants PostgreSQL."""
    return postgres_for_tests(os.environ, _pg_answers)


_pg_template: str | None = None


def _pg_url(name: str) -> str:
    url = pg_url()[0]
    assert url is not None
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


async def _pg_execute(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(pg_url()[0])
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _create_pg_database() -> tuple[str, Callable[[], Awaitable[None]]]:
    """A fresh database per test, copied from a migrated template (much faster than migrating)."""
    global _pg_template
    if _pg_template is None:
        template = f"inbox_tpl_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        await _pg_execute(f'CREATE DATABASE "{template}"')
        await db.migrate(_pg_url(template))
        _pg_template = template
    name = f"inbox_test_{uuid.uuid4().hex[:12]}"
    await _pg_execute(f'CREATE DATABASE "{name}" TEMPLATE "{_pg_template}"')

    async def drop() -> None:
        await _pg_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return _pg_url(name), drop


@pytest.fixture(scope="session", autouse=True)
def _drop_pg_template() -> Any:
    yield
    if _pg_template is not None:
        import asyncio

        asyncio.run(_pg_execute(f'DROP DATABASE IF EXISTS "{_pg_template}" WITH (FORCE)'))


STORES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A freshly migrated store. Parametrize with `store` to choose; SQLite by default."""
    kind = getattr(request, "param", "sqlite")
    if kind == "postgres":
        url, why_not = pg_url()
        if url is None:
            pytest.skip(why_not)
        url, drop = await _create_pg_database()
        yield url
        await drop()
    else:
        url = f"sqlite://{tmp_path}/inbox.sqlite3"
        await db.migrate(url)
        yield url


def make_settings(db_url: str, **overrides: Any) -> Settings:
    raw: dict[str, Any] = {
        "database": {"url": db_url},
        "organization": {"plan": "enterprise", "advanced_inbox": False, "resolution_reasons": True},
        "admins": {"slack": ["UADMIN"], "telegram": [111], "slack_workspace_admins": False},
        "api": {"tokens_env": "TEST_API_TOKENS"},
        "outbox": {"base_delay": 0.05, "max_delay": 0.2, "poll_interval": 0.05, "max_attempts": 4},
        "channels": [
            {"name": "shop", "kind": "webhook", "secret_env": "TEST_SHOP_SECRET"},
            {"name": "support", "kind": "webhook", "secret_env": "TEST_SHOP_SECRET"},
        ],
    }
    env = {"TEST_API_TOKENS": f"{TOKEN},other-token", "TEST_SHOP_SECRET": SHOP_SECRET}
    env.update(overrides.pop("env", {}))
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(raw.get(key), dict):
            raw[key] = {**raw[key], **value}
        else:
            raw[key] = value
    return settings_from_dict(raw, env=env)


@pytest.fixture
def settings(db_url: str) -> Settings:
    return make_settings(db_url)


class Bot:
    """A running inbox-bot app and helpers to talk to it over HTTP, as users do."""

    def __init__(self, client: TestClient) -> None:
        self.client = client

    @property
    def state(self) -> AppState:
        return self.client.app[STATE_KEY]

    async def webhook(
        self,
        text: str,
        *,
        id: str | None = None,
        contact: str = "c-42",
        name: str | None = "Marie",
        thread: str | None = None,
        type: str | None = None,
        channel: str = "shop",
        expect: int = 200,
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {"id": id or f"m-{uuid.uuid4().hex[:10]}", "contact": {"id": contact}, "text": text}
        if name:
            payload["contact"]["name"] = name
        if thread:
            payload["thread"] = thread
        if type:
            payload["type"] = type
        body = json.dumps(payload).encode()
        resp = await self.client.post(f"/webhooks/{channel}", data=body, headers=signed_headers(SHOP_SECRET, body))
        data = await resp.json()
        assert resp.status == expect, data
        return data

    async def api(self, method: str, path: str, *, expect: int | None = 200, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        resp = await self.client.request(method, path, headers=headers, **kwargs)
        data = await resp.json()
        if expect is not None:
            assert resp.status == expect, (resp.status, data)
        return data

    async def command(self, text: str, *, admin: bool = True, lang: str | None = None) -> str:
        return await self.state.commands.run(text, is_admin=admin, actor="test-admin", lang=lang)

    async def delivered(self, cid: int) -> set[int]:
        """Ids of the conversation's outbound messages whose delivery job is done (from the outbox API)."""
        items = (await self.api("GET", f"/api/outbox?conversation_id={cid}&limit=200"))["items"]
        return {j["message_id"] for j in items if j["kind"] == "reply" and j["status"] == "done"}

    async def conversation(self, cid: int) -> dict[str, Any]:
        return await self.api("GET", f"/api/conversations/{cid}")  # type: ignore[no-any-return]


@pytest.fixture
def make_bot(db_url: str, aiohttp_client: Any) -> Callable[[Settings], Awaitable[Bot]]:
    # db_url first: the apps are torn down before their database is dropped
    async def factory(settings: Settings) -> Bot:
        client = await aiohttp_client(build_app(settings))
        return Bot(client)

    return factory


@pytest.fixture
async def bot(make_bot: Callable[[Settings], Awaitable[Bot]], settings: Settings) -> Bot:
    return await make_bot(settings)


# --- figures printed after the run (reliability suite): visible in plain `make test` output -------
FIGURES_KEY = pytest.StashKey[list[str]]()


@pytest.fixture
def report_figures(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """Call with one line of figures; the lines are printed in the terminal summary."""
    lines = request.config.stash.setdefault(FIGURES_KEY, [])
    return lines.append


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    lines = config.stash.get(FIGURES_KEY, [])
    if lines:
        terminalreporter.section("reliability figures")
        for line in lines:
            terminalreporter.write_line(line)
