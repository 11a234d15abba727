"""Live updates: the hub, `GET /events` over HTTP with the real app and stores, and the
PostgreSQL relay between workers (two hubs on one database, each with its own LISTEN connection).

A test here reads the stream as a browser's EventSource does; every wait is bounded (a generous
limit on how long to wait, never a timing assertion)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast

import aiohttp
import asyncpg
import pytest
from aiohttp import web
from aiohttp_session import get_session, new_session, session_middleware
from aiohttp_session.cookie_storage import EncryptedCookieStorage
from cryptography import fernet

from bot.app import build_app
from bot.config import Settings
from bot.domain import User
from bot.front.web import live
from bot.metrics import Metrics
from bot.services import live as changes
from bot.services.live import Hub
from bot.services.people import People
from bot.store.notify import PgRelay, asyncpg_dsn
from tests.conftest import STORES, Bot, make_settings

USER_HEADER = "X-Test-User"
WAIT = 10.0  # seconds: the most any read waits before the test fails


async def header_user(request: web.Request) -> User | None:
    """The test's sign-in: the active user whose id is in a header (the pages use the session)."""
    raw = request.headers.get(USER_HEADER)
    if raw is None:
        return None
    user = await People().get_user(int(raw))
    return user if user.active else None


class Stream:
    """One `/events` stream, read as EventSource reads it."""

    def __init__(self, resp: aiohttp.ClientResponse) -> None:
        self.resp = resp
        self.comments = 0

    async def event(self, *, wait: float = WAIT) -> tuple[str, Any] | None:
        """The next event (name, parsed data); None when the server ended the stream."""
        name, data = "message", []
        while True:
            line = await asyncio.wait_for(self.resp.content.readline(), wait)
            if not line:
                return None
            text = line.decode().rstrip("\r\n")
            if not text:
                if data:
                    return name, json.loads("\n".join(data))
                name = "message"
            elif text.startswith(":"):
                self.comments += 1
            else:
                field, _, value = text.partition(":")
                if field == "event":
                    name = value.removeprefix(" ")
                elif field == "data":
                    data.append(value.removeprefix(" "))

    async def change(self, conversation_id: int, *, wait: float = WAIT) -> str:
        """The kind of the next change of that conversation (other events are skipped)."""
        while True:
            got = await self.event(wait=wait)
            assert got is not None, "the stream ended before the change came"
            name, data = got
            if name == "conversation" and data["id"] == conversation_id:
                return str(data["kind"])

    async def ends(self, *, wait: float = WAIT) -> None:
        """Reads to the end: the server closes the stream cleanly (a complete chunked body)."""
        while await self.event(wait=wait) is not None:
            pass


async def open_stream(session: aiohttp.ClientSession, url: str, user: User | None) -> Stream:
    headers = {USER_HEADER: str(user.id)} if user is not None else {}
    resp = await session.get(f"{url}/events", headers=headers)
    assert resp.status == 200, await resp.text()
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    return Stream(resp)


def url_of(bot: Bot) -> str:
    return str(bot.client.make_url("")).rstrip("/")


@pytest.fixture
def make_live_bot(db_url: str, aiohttp_client: Any) -> Callable[[Settings], Awaitable[Bot]]:
    """The whole app, with the test's sign-in and the session cookie the pages use."""

    async def factory(settings: Settings) -> Bot:
        app = build_app(settings, authenticate=header_user)
        app.middlewares.append(session_middleware(EncryptedCookieStorage(fernet.Fernet(fernet.Fernet.generate_key()))))

        # what the pages' sign-in and sign-out do with the session's sid and the hub
        async def sign_in(request: web.Request) -> web.Response:
            session = await new_session(request)
            session[live.SESSION_ID] = request.query["sid"]
            return web.Response(text="signed in")

        async def sign_out(request: web.Request) -> web.Response:
            session = await get_session(request)
            request.app[live.LIVE_HUB].end_session(session[live.SESSION_ID])
            session.invalidate()
            return web.Response(text="signed out")

        app.router.add_post("/test/sign-in", sign_in)
        app.router.add_post("/test/sign-out", sign_out)
        return Bot(await aiohttp_client(app))

    return factory


async def add_user(bot: Bot, email: str = "ana@example.com") -> User:
    return (await bot.state.people.add_user(email=email, role="agent", password="a long password", actor="test")).user


# --- the hub alone ------------------------------------------------------------------------------


async def test_a_slow_reader_loses_old_changes_for_a_resync_and_never_blocks_the_publisher() -> None:
    metrics = Metrics()
    hub = Hub(metrics=metrics, queue_size=4)
    slow = hub.subscribe(user_id=1, sid=None)
    for i in range(1, 11):
        hub.publish(i, changes.MESSAGE)  # synchronous: returns at once however full the queue is
    got = []
    while not slow._queue.empty():
        got.append(await slow.next())
    assert got[0] == changes.Change(0, changes.RESYNC)  # "refetch": what it missed is behind it
    assert [c.conversation_id for c in got[1:] if c] == list(range(11 - len(got) + 1, 11))
    assert metrics.live_dropped._value.get() >= 6


async def test_publishing_survives_a_broken_relay_and_counts_it() -> None:
    class Broken:
        def start(self, deliver: Callable[[str], None], resync: Callable[[], None]) -> None: ...
        def send(self, payload: str) -> None:
            raise OSError("relay down")

        async def stop(self) -> None: ...

    metrics = Metrics()
    hub = Hub(metrics=metrics, relay=Broken())
    sub = hub.subscribe(user_id=1, sid=None)
    hub.publish(7, changes.RESOLVE)  # does not raise
    assert await sub.next() == changes.Change(7, changes.RESOLVE)
    assert metrics.live_errors.labels("publish")._value.get() == 1


async def test_a_hub_skips_its_own_echo_and_hears_the_others() -> None:
    hub = Hub(worker_id="me")
    sub = hub.subscribe(user_id=1, sid="s1")
    hub._heard(json.dumps({"w": "me", "ids": [1], "kind": "message"}))
    hub._heard("not json")  # a stray notification on the channel is ignored
    hub._heard(json.dumps({"w": "other", "ids": [2], "kind": "assign"}))
    assert await sub.next() == changes.Change(2, "assign")
    hub._heard(json.dumps({"w": "other", "end_session": "s1"}))
    assert await sub.next() is None


def test_the_store_url_becomes_an_asyncpg_dsn() -> None:
    assert (
        asyncpg_dsn("postgres://bot:pw@db:5432/inbox?minsize=1&maxsize=10&sslmode=require")
        == "postgresql://bot:pw@db:5432/inbox?sslmode=require"
    )
    assert asyncpg_dsn("asyncpg://db/inbox") == "postgresql://db/inbox"


# --- GET /events over HTTP --------------------------------------------------------------------


@pytest.mark.parametrize("db_url", STORES, indirect=True)
async def test_a_webhook_message_reaches_an_open_stream(make_live_bot: Any, db_url: str) -> None:
    bot = await make_live_bot(make_settings(db_url))
    user = await add_user(bot)
    async with aiohttp.ClientSession() as browser:
        stream = await open_stream(browser, url_of(bot), user)
        sent = await bot.webhook("Bonjour, my parcel is late")
        assert await stream.change(sent["conversation_id"]) == changes.MESSAGE


@pytest.mark.parametrize("db_url", STORES, indirect=True)
async def test_agent_actions_reach_an_open_stream(make_live_bot: Any, db_url: str) -> None:
    bot = await make_live_bot(make_settings(db_url))
    user = await add_user(bot)
    await bot.api("POST", "/api/topics", json={"name": "Refunds"}, expect=201)
    cid = (await bot.webhook("Where is my refund?"))["conversation_id"]
    async with aiohttp.ClientSession() as browser:
        stream = await open_stream(browser, url_of(bot), user)
        await bot.api("POST", f"/api/conversations/{cid}/assign", json={"user": user.id})
        assert await stream.change(cid) == changes.ASSIGN
        await bot.api("POST", f"/api/conversations/{cid}/topics", json={"add": ["Refunds"]})
        assert await stream.change(cid) == changes.TOPICS
        await bot.api("POST", f"/api/conversations/{cid}/messages", json={"text": "On its way"}, expect=201)
        assert await stream.change(cid) == changes.REPLY
        await bot.api("POST", f"/api/conversations/{cid}/resolve", json={})
        assert await stream.change(cid) == changes.RESOLVE
        await bot.api("POST", f"/api/conversations/{cid}/reopen", json={})
        assert await stream.change(cid) == changes.REOPEN


@pytest.mark.parametrize("db_url", STORES, indirect=True)
async def test_an_admins_topic_change_reaches_the_streams_of_the_conversations_it_reroutes(
    make_live_bot: Any, db_url: str
) -> None:
    """A topic's new priority or team moves its open conversations in the queue: the pages open
    on them hear it (and on another conversation, nothing)."""
    bot = await make_live_bot(make_settings(db_url))
    user = await add_user(bot)
    await bot.api("POST", "/api/topics", json={"name": "Refunds"}, expect=201)
    cid = (await bot.webhook("Where is my refund?", thread="t-refund"))["conversation_id"]
    other = (await bot.webhook("hello", thread="t-other"))["conversation_id"]
    await bot.api("POST", f"/api/conversations/{cid}/topics", json={"add": ["Refunds"]})
    async with aiohttp.ClientSession() as browser:
        stream = await open_stream(browser, url_of(bot), user)
        await bot.api("PATCH", "/api/topics/Refunds", json={"priority": "urgent"})
        assert await stream.change(cid) == changes.TOPICS
        await bot.api("DELETE", "/api/topics/Refunds")
        assert await stream.change(cid) == changes.TOPICS
        await bot.webhook("still here", thread="t-other")
        assert await stream.change(other) == changes.MESSAGE, "nothing about the other conversation before"


@pytest.mark.parametrize(("answer", "outcome"), [(200, "sent"), (400, "failed")])
async def test_a_replys_delivery_reaches_an_open_stream(
    make_live_bot: Any, db_url: str, aiohttp_server: Any, answer: int, outcome: str
) -> None:
    async def reply_url(request: web.Request) -> web.Response:
        return web.json_response({"ok": answer == 200}, status=answer)

    double = web.Application()
    double.router.add_post("/replies", reply_url)
    server = await aiohttp_server(double)
    channel = {"name": "shop", "kind": "webhook", "secret_env": "TEST_SHOP_SECRET"}
    bot = await make_live_bot(
        make_settings(db_url, channels=[{**channel, "reply_url": str(server.make_url("/replies"))}])
    )
    user = await add_user(bot)
    cid = (await bot.webhook("hello"))["conversation_id"]
    async with aiohttp.ClientSession() as browser:
        stream = await open_stream(browser, url_of(bot), user)
        await bot.api("POST", f"/api/conversations/{cid}/messages", json={"text": "Bonjour"}, expect=201)
        assert await stream.change(cid) == changes.REPLY
        assert await stream.change(cid) == changes.DELIVERY
    (message,) = [m for m in (await bot.conversation(cid))["messages"] if m["direction"] == "outbound"]
    assert message["delivery"] == outcome


async def test_without_a_signed_in_user_the_stream_is_refused(make_live_bot: Any, db_url: str) -> None:
    bot = await make_live_bot(make_settings(db_url))
    resp = await bot.client.get("/events")
    assert resp.status == 401
    assert "Sign in" in await resp.text()
    assert bot.state.live.streams == 0


async def test_the_stream_ends_on_sign_out_of_its_session_only(make_live_bot: Any, db_url: str) -> None:
    bot = await make_live_bot(make_settings(db_url))
    user = await add_user(bot)
    url = url_of(bot)
    async with (
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as laptop,
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as phone,
    ):
        assert (await laptop.post(f"{url}/test/sign-in", params={"sid": "laptop-sid"})).status == 200
        assert (await phone.post(f"{url}/test/sign-in", params={"sid": "phone-sid"})).status == 200
        on_laptop = await open_stream(laptop, url, user)
        on_phone = await open_stream(phone, url, user)
        assert (await laptop.post(f"{url}/test/sign-out")).status == 200
        await on_laptop.ends()
        cid = (await bot.webhook("still there?"))["conversation_id"]
        assert await on_phone.change(cid) == changes.MESSAGE  # the other session's stream goes on


async def test_the_stream_ends_when_the_user_is_deactivated(make_live_bot: Any, db_url: str) -> None:
    bot = await make_live_bot(make_settings(db_url))
    user, other = await add_user(bot), await add_user(bot, "bo@example.com")
    async with aiohttp.ClientSession() as browser:
        stream = await open_stream(browser, url_of(bot), user)
        others = await open_stream(browser, url_of(bot), other)
        # far sooner than the 15 s between sign-in checks: the people service told the hub
        await bot.api("PATCH", f"/api/users/{user.id}", json={"active": False})
        await stream.ends(wait=5)
        assert bot.state.live.streams == 1
        cid = (await bot.webhook("hello"))["conversation_id"]
        assert await others.change(cid) == changes.MESSAGE


async def test_a_new_password_ends_the_stream(make_live_bot: Any, db_url: str) -> None:
    bot = await make_live_bot(make_settings(db_url))
    user = await add_user(bot)
    async with aiohttp.ClientSession() as browser:
        stream = await open_stream(browser, url_of(bot), user)
        await bot.api("PATCH", f"/api/users/{user.id}", json={"password": "another long password"})
        await stream.ends(wait=5)


async def test_a_deactivation_no_hub_heard_ends_the_stream_at_the_next_check(
    db_url: str, aiohttp_server: Any, make_bot: Any
) -> None:
    # e.g. `inbox-bot users deactivate` run in another process: the stream's own check sees it
    bot = await make_bot(make_settings(db_url))
    user = await add_user(bot)
    hub = Hub()
    app = web.Application()
    app.add_routes(live.routes(hub, header_user, ping_seconds=0.2))
    server = await aiohttp_server(app)
    async with aiohttp.ClientSession() as browser:
        stream = await open_stream(browser, str(server.make_url("")).rstrip("/"), user)
        await People().deactivate(user.email, actor="test")  # a People of its own: no hub hears it
        await stream.ends()
        assert stream.comments >= 1  # the pings kept coming until then
    assert hub.streams == 0


@pytest.mark.parametrize("db_url", STORES, indirect=True)
async def test_shutdown_ends_every_stream_cleanly_and_leaves_no_task(make_live_bot: Any, db_url: str) -> None:
    bot = await make_live_bot(make_settings(db_url))
    user = await add_user(bot)
    before = asyncio.all_tasks()
    async with aiohttp.ClientSession() as browser:
        streams = [await open_stream(browser, url_of(bot), user) for _ in range(3)]
        assert bot.state.live.streams == 3
        await bot.client.server.close()
        for stream in streams:
            await stream.ends()  # a complete body: ClientPayloadError if it were cut
    left = [t for t in asyncio.all_tasks() - before if not t.done()]
    assert left == []
    assert bot.state.live.streams == 0


# --- across workers (PostgreSQL NOTIFY/LISTEN) ------------------------------------------------


StartWorker = Callable[[], Awaitable[tuple[Hub, str]]]


@pytest.fixture
async def other_worker(db_url: str, aiohttp_server: Any) -> AsyncIterator[StartWorker]:
    """Starts a second worker's hub with its own LISTEN connection, serving `/events` (call it
    after the app: its requests read users through the store the app opened)."""
    hubs: list[Hub] = []

    async def start() -> tuple[Hub, str]:
        hub = Hub(relay=PgRelay(db_url))
        hubs.append(hub)
        await hub.start()
        app = web.Application()
        app.add_routes(live.routes(hub, header_user))
        server = await aiohttp_server(app)
        return hub, str(server.make_url("")).rstrip("/")

    yield start
    for hub in hubs:
        await hub.stop()


async def listening(*hubs: Hub) -> None:
    for hub in hubs:
        await asyncio.wait_for(cast(PgRelay, hub.relay).connected.wait(), WAIT)


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
@pytest.mark.postgres
async def test_a_change_in_one_worker_reaches_the_streams_of_another(
    make_live_bot: Any, db_url: str, other_worker: StartWorker, report_figures: Callable[[str], None]
) -> None:
    bot = await make_live_bot(make_settings(db_url))
    hub, url = await other_worker()
    await listening(bot.state.live, hub)
    user = await add_user(bot)
    async with aiohttp.ClientSession() as browser:
        there = await open_stream(browser, url, user)
        here = await open_stream(browser, url_of(bot), user)
        started = time.perf_counter()
        cid = (await bot.webhook("Bonjour"))["conversation_id"]
        assert await there.change(cid) == changes.MESSAGE
        took = time.perf_counter() - started
        report_figures(f"live: webhook to another worker's /events stream in {took * 1000:.0f} ms")
        # the worker that made the change told its own streams once (its echo is skipped)
        assert await here.change(cid) == changes.MESSAGE
        await bot.api("POST", f"/api/conversations/{cid}/resolve", json={})
        assert await here.change(cid) == changes.RESOLVE
        # a deactivation in one worker ends the user's streams in the other
        await bot.api("PATCH", f"/api/users/{user.id}", json={"active": False})
        await there.ends(wait=5)
    assert hub.streams == 0


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
@pytest.mark.postgres
async def test_the_relay_listens_again_after_its_connection_drops(
    make_live_bot: Any, db_url: str, other_worker: StartWorker
) -> None:
    bot = await make_live_bot(make_settings(db_url))
    hub, url = await other_worker()
    await listening(bot.state.live, hub)
    relay = cast(PgRelay, hub.relay)
    user = await add_user(bot)
    async with aiohttp.ClientSession() as browser:
        there = await open_stream(browser, url, user)
        admin = await asyncpg.connect(asyncpg_dsn(db_url))
        try:
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", relay.server_pid)
        finally:
            await admin.close()
        # told to refetch: changes may have been missed while it was away
        got = await there.event()
        assert got is not None and got[0] == changes.RESYNC
        await listening(hub)
        cid = (await bot.webhook("are you back?"))["conversation_id"]
        assert await there.change(cid) == changes.MESSAGE


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
@pytest.mark.postgres
async def test_the_workers_of_serve_tell_every_other_worker(db_url: str, tmp_path: Any) -> None:
    # `serve --workers 2`: whichever worker a webhook lands on, a third listener hears its change,
    # and a clean stop leaves the server's exit code at 0 (its relays stopped without error)
    from tests.test_reliability import Server, post_webhook

    listener = Hub(relay=PgRelay(db_url))
    await listener.start()
    sub = listener.subscribe(user_id=1, sid=None)
    server = Server(tmp_path, db_url, workers=2)
    try:
        await listening(listener)
        await server.start()
        expected: set[int] = set()
        for i in range(8):
            # a connection per request: SO_REUSEPORT spreads them over both workers
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s:
                status, data = await post_webhook(s, server.url, f"live-{i}", thread=f"t-{i}")
                assert status == 200 and data is not None, data
                expected.add(int(data["conversation_id"]))
        heard: set[int] = set()
        while not expected <= heard:
            change = await asyncio.wait_for(sub.next(), WAIT)
            assert change is not None
            heard.add(change.conversation_id)
    finally:
        code = await server.stop()
        await listener.stop()
    assert code == 0, server.log()
    assert "live-update relay" not in server.log()  # no relay failure was logged
