"""Security promises: signatures (replayed, tampered, another channel's), tokens on the wrong
endpoint, non-admin commands, and no configured secret in the logs of a real server process."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import socket
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import SHOP_SECRET, TOKEN, Bot, make_settings
from tests.doubles.slack_api import BOT_TOKEN as SLACK_BOT_TOKEN
from tests.doubles.slack_api import SlackApiDouble
from tests.doubles.telegram_api import BOT_TOKEN as TG_TOKEN
from tests.doubles.telegram_api import TelegramApiDouble
from tests.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign, signed_headers
from tests.test_reliability import SECRET, Server, api_headers, post_webhook, scalar, stop_all

BODY = {"id": "sec-1", "contact": {"id": "c-1", "name": "Marie"}, "text": "bonjour"}


async def post_raw(bot: Bot, body: bytes, headers: dict[str, str], channel: str = "shop") -> tuple[int, Any]:
    resp = await bot.client.post(f"/webhooks/{channel}", data=body, headers=headers)
    return resp.status, await resp.json()


async def message_count(bot: Bot) -> int:
    listing = await bot.api("GET", "/api/conversations?limit=200")
    return sum([len((await bot.conversation(c["id"]))["messages"]) for c in listing["items"]])


# --- signatures --------------------------------------------------------------------------------


async def test_replayed_request_older_than_five_minutes_is_refused(bot: Bot) -> None:
    raw = json.dumps(BODY).encode()
    old = signed_headers(SHOP_SECRET, raw, now=time.time() - 301)
    status, data = await post_raw(bot, raw, old)
    assert status == 401 and "5 minutes" in data["error"]
    future = signed_headers(SHOP_SECRET, raw, now=time.time() + 301)
    assert (await post_raw(bot, raw, future))[0] == 401
    assert await message_count(bot) == 0


async def test_replay_within_the_window_is_a_harmless_duplicate(bot: Bot) -> None:
    raw = json.dumps(BODY).encode()
    headers = signed_headers(SHOP_SECRET, raw)
    first = await post_raw(bot, raw, headers)
    again = await post_raw(bot, raw, headers)
    assert first[0] == again[0] == 200
    assert again[1]["duplicate"] is True and again[1]["message_id"] == first[1]["message_id"]
    assert await message_count(bot) == 1


@pytest.mark.parametrize(
    "tamper",
    [
        "body",  # body changed after signing
        "timestamp",  # timestamp header changed (signature was for another one)
        "signature",  # one hex digit flipped
        "scheme",  # v0= instead of v1=
        "other_secret",  # signed with another channel's (or an old) secret
        "missing_signature",
        "missing_timestamp",
        "non_numeric_timestamp",
    ],
)
async def test_tampered_signatures_are_refused_and_nothing_is_written(bot: Bot, tamper: str) -> None:
    raw = json.dumps(BODY).encode()
    ts = str(int(time.time()))
    headers = {TIMESTAMP_HEADER: ts, SIGNATURE_HEADER: sign(SHOP_SECRET, ts, raw), "Content-Type": "application/json"}
    body = raw
    if tamper == "body":
        body = raw.replace(b"bonjour", b"bonsoir")
    elif tamper == "timestamp":
        headers[TIMESTAMP_HEADER] = str(int(ts) - 1)
    elif tamper == "signature":
        sig = headers[SIGNATURE_HEADER]
        headers[SIGNATURE_HEADER] = sig[:-1] + ("0" if sig[-1] != "0" else "1")
    elif tamper == "scheme":
        headers[SIGNATURE_HEADER] = "v0=" + headers[SIGNATURE_HEADER][3:]
    elif tamper == "other_secret":
        headers[SIGNATURE_HEADER] = sign("some-other-secret", ts, raw)
    elif tamper == "missing_signature":
        del headers[SIGNATURE_HEADER]
    elif tamper == "missing_timestamp":
        del headers[TIMESTAMP_HEADER]
    else:
        headers[TIMESTAMP_HEADER] = "yesterday"
    status, data = await post_raw(bot, body, headers)
    assert status == 401, data
    assert SHOP_SECRET not in json.dumps(data)
    assert await message_count(bot) == 0


# --- tokens on the wrong endpoint ------------------------------------------------------------------


async def test_api_token_does_not_sign_webhooks(bot: Bot) -> None:
    raw = json.dumps(BODY).encode()
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    assert (await post_raw(bot, raw, headers))[0] == 401
    # signed with the API token as if it were the channel secret
    assert (await post_raw(bot, raw, signed_headers(TOKEN, raw)))[0] == 401
    assert await message_count(bot) == 0


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": f"Bearer {SHOP_SECRET}"},  # the webhook secret is not an API token
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": TOKEN},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": f"Bearer {TOKEN[:-1]}"},
        {"X-Api-Token": TOKEN},
        {"X-Telegram-Bot-Api-Secret-Token": TOKEN},
    ],
)
async def test_api_refuses_anything_but_a_valid_bearer_token(bot: Bot, headers: dict[str, str]) -> None:
    endpoints = [("GET", "/api/conversations"), ("POST", "/api/tags"), ("GET", f"/api/automations?token={TOKEN}")]
    for method, path in endpoints:
        resp = await bot.client.request(method, path, headers=headers, json={"name": "vip"})
        assert resp.status == 401, (method, path, headers)
        assert resp.headers.get("WWW-Authenticate") == "Bearer"
    assert await bot.api("GET", "/api/tags") == {"items": [], "next_cursor": None}


async def test_webhook_signature_does_not_open_the_api(bot: Bot) -> None:
    raw = b'{"name": "vip"}'
    resp = await bot.client.post("/api/tags", data=raw, headers=signed_headers(SHOP_SECRET, raw))
    assert resp.status == 401


async def test_a_channel_secret_signs_only_its_own_channel(make_bot: Any, db_url: str) -> None:
    from tests.conftest import make_settings

    settings = make_settings(
        db_url,
        channels=[
            {"name": "shop", "kind": "webhook", "secret_env": "TEST_SHOP_SECRET"},
            {"name": "support", "kind": "webhook", "secret_env": "TEST_SUPPORT_SECRET"},
        ],
        env={"TEST_SUPPORT_SECRET": "support-secret-xyz"},
    )
    bot = await make_bot(settings)
    raw = json.dumps(BODY).encode()
    assert (await post_raw(bot, raw, signed_headers(SHOP_SECRET, raw), channel="support"))[0] == 401
    assert (await post_raw(bot, raw, signed_headers("support-secret-xyz", raw), channel="shop"))[0] == 401
    assert (await post_raw(bot, raw, signed_headers("support-secret-xyz", raw), channel="support"))[0] == 200


# --- admin commands ----------------------------------------------------------------------------------


NON_ADMIN_COMMANDS = [
    '/automation create "Bye" keywords="bye" tags="closing"',
    "/automation delete Bye",
    "/automation disable Bye",
    "/automation enable Bye",
    "/automation tags add vip",
    "/automation tags delete closing",
    "/automation topics add Sales",
    "/automation reasons add Spam",
    "/automation list",
    '/automation test "bye"',
    "/automation help",
]


async def test_non_admins_get_one_refusal_and_nothing_changes(bot: Bot) -> None:
    await bot.command("/automation tags add closing")
    created = await bot.command('/automation create "Bye" keywords="bye" tags="closing"')
    assert "Bye" in created
    before = (
        await bot.api("GET", "/api/automations"),
        await bot.api("GET", "/api/tags"),
        await bot.api("GET", "/api/topics"),
        await bot.api("GET", "/api/reasons"),
    )
    for text in NON_ADMIN_COMMANDS:
        assert await bot.command(text, admin=False) == "Only inbox admins can manage automations.", text
    after = (
        await bot.api("GET", "/api/automations"),
        await bot.api("GET", "/api/tags"),
        await bot.api("GET", "/api/topics"),
        await bot.api("GET", "/api/reasons"),
    )
    assert after == before


# --- no secret in the logs ---------------------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens there once the socket is closed


async def test_no_configured_secret_reaches_the_logs(tmp_path: Path, db_url: str, aiohttp_server: Any) -> None:
    """A real server at DEBUG, with webhook, Slack and Telegram channels (their platforms played by
    doubles, so the channels are on and their clients log their calls), Salesforce and a reply_url
    that are down, bad signatures and tokens: the captured output holds no secret."""
    slack_api = SlackApiDouble(token="xoxb-1111-2222-secretbottoken")
    slack_api.url = str((await aiohttp_server(slack_api.app())).make_url("")).rstrip("/")
    telegram_api = TelegramApiDouble(token="123456:TELEGRAM-secret-token-ABC")
    telegram_api.base_url = str((await aiohttp_server(telegram_api.app())).make_url("/bot"))
    secrets = {
        "REL_SLACK_BOT": slack_api.token,
        "REL_SLACK_SIGNING": "slack-signing-secret-7788",
        "REL_TG_TOKEN": telegram_api.token,
        "REL_TG_HOOK": "tg-webhook-secret-5566",
        "REL_SF_SESSION": "00Dsalesforce-session-secret",
    }
    down = closed_port()
    extra = (
        '[crm.salesforce]\ninstance_url = "https://127.0.0.1:' + str(down) + '"\n'
        'session_id_env = "REL_SF_SESSION"\npoll_seconds = 0.2\ntimeout = 1\n'
        '[[channels]]\nname = "slack"\nkind = "slack"\nbot_token_env = "REL_SLACK_BOT"\n'
        f'signing_secret_env = "REL_SLACK_SIGNING"\napi_url = "{slack_api.api_url}"\n'
        '[[channels]]\nname = "tg"\nkind = "telegram"\ntoken_env = "REL_TG_TOKEN"\n'
        f'webhook_secret_env = "REL_TG_HOOK"\napi_url = "{telegram_api.base_url}"\n'
    )
    srv = Server(
        tmp_path,
        db_url,
        reply_url=f"http://127.0.0.1:{down}/replies",
        extra_config=extra,
        env={**secrets, "INBOX_LOG_LEVEL": "DEBUG"},
    )
    try:
        await srv.start()
        async with aiohttp.ClientSession() as s:
            status, data = await post_webhook(s, srv.url, "sec-log-1", thread="t1")
            assert status == 200 and data is not None
            cid = data["conversation_id"]
            async with s.post(
                f"{srv.url}/api/conversations/{cid}/messages", json={"text": "hello"}, headers=api_headers()
            ) as r:
                assert r.status == 201  # its delivery fails: reply_url is down
            raw = b'{"id": "x", "contact": {"id": "c"}, "text": "hi"}'
            for headers in (signed_headers("wrong", raw), signed_headers(SECRET, raw, now=time.time() - 600)):
                async with s.post(f"{srv.url}/webhooks/shop", data=raw, headers=headers) as r:
                    assert r.status == 401
            for auth in (f"Bearer {SECRET}", "Bearer nope", secrets["REL_TG_TOKEN"]):
                async with s.get(f"{srv.url}/api/conversations", headers={"Authorization": auth}) as r:
                    assert r.status == 401
            async with s.post(
                f"{srv.url}/telegram/tg", json={"update_id": 1}, headers={"X-Telegram-Bot-Api-Secret-Token": "wrong"}
            ) as r:
                assert r.status == 401  # the channel is on: its secret check refused the probe
            async with s.post(
                f"{srv.url}/slack/events",
                data=b"{}",
                headers={"X-Slack-Signature": "v0=00", "X-Slack-Request-Timestamp": "1"},
            ) as r:
                assert r.status == 401
            # the outbox tried (and failed) the reply at least once: its error is in the log too
            for _ in range(600):  # bounded: up to ~30 s
                if await scalar(db_url, "SELECT count(*) FROM outbox_jobs WHERE attempts > 0"):
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("the reply was never attempted: the log scan would miss its error")
            assert slack_api.of("auth.test") and [c for c in telegram_api.calls if c.method == "getMe"]
    finally:
        await stop_all([srv])
    log = srv.log()
    assert "level=debug" in log  # the scan ran over a verbose log
    configured = [*secrets.values(), SECRET, TOKEN]
    leaked = [s for s in configured if s in log]
    assert not leaked, f"secrets in the log: {leaked}"
    # nor the distinctive part of a secret (e.g. a token cut in a URL)
    assert not [s for s in configured if s[-12:] in log]


# --- no error body carries Python's internals, on any endpoint ---------------------------------------

INTERNALS = re.compile(
    r"Traceback|File \"|__\w+__|\b\w*(?:Error|Exception)\b(?!s)|<\w[\w.]* object at 0x|\bNoneType\b|telegram\._"
)
SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TG_SECRET = "tg-webhook-secret_0123456789"


@pytest.fixture
async def every_channel(make_bot: Any, db_url: str, aiohttp_server: Any) -> Bot:
    """One app with a webhook, a Slack and a Telegram channel (their platforms played by doubles)."""
    slack_api = SlackApiDouble()
    slack_api.url = str((await aiohttp_server(slack_api.app())).make_url("")).rstrip("/")
    telegram_api = TelegramApiDouble()
    telegram_api.base_url = str((await aiohttp_server(telegram_api.app())).make_url("/bot"))
    shop = {"name": "shop", "kind": "webhook", "secret_env": "TEST_SHOP_SECRET"}
    slack = {
        "name": "slack",
        "kind": "slack",
        "bot_token_env": "T_SLACK_BOT",
        "signing_secret_env": "T_SLACK_SIGN",
        "api_url": slack_api.api_url,
    }
    tg = {"name": "tg", "kind": "telegram", "token_env": "T_TG", "webhook_secret_env": "T_TG_SECRET"}
    tg["api_url"] = telegram_api.base_url
    env = {"T_SLACK_BOT": SLACK_BOT_TOKEN, "T_SLACK_SIGN": SLACK_SECRET, "T_TG": TG_TOKEN, "T_TG_SECRET": TG_SECRET}
    bot = await make_bot(make_settings(db_url, channels=[shop, slack, tg], env=env))
    assert set(bot.state.connectors) == {"shop", "slack", "tg"}, bot.state.left_off
    return bot


def _slack_headers(body: bytes) -> dict[str, str]:
    ts = str(int(time.time()))
    mac = hmac.new(SLACK_SECRET.encode(), b"v0:" + ts.encode() + b":" + body, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={mac}", "Content-Type": "application/json"}


def _headers(path: str, body: bytes) -> dict[str, str]:
    if path.startswith("/webhooks/"):
        return signed_headers(SHOP_SECRET, body)
    if path.startswith("/telegram/"):
        return {"X-Telegram-Bot-Api-Secret-Token": TG_SECRET, "Content-Type": "application/json"}
    if path.startswith("/slack/"):
        return _slack_headers(body)
    return {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


BAD_BODIES = [
    b"",
    b"{",
    b"[1, 2]",
    b"null",
    b'"text"',
    b"\xff\xfe not utf-8",
    b'{"update_id": 1, "message": {"message_id": 1, "date": 1, "chat": {"id": 1}}}',
    b'{"update_id": 2, "message": {"message_id": 1, "date": 1, "chat": {"id": 1, "type": "private"}, "from": {}}}',
    b'{"update_id": 3, "message": "x"}',
    b'{"update_id": 4, "message": {"message_id": 1, "date": 99999999999999999999, "chat": {"id": 1, "type": "x"}}}',
    b'{"id": 5, "contact": "c", "text": ["t"], "sent_at": "yesterday"}',
    b'{"id": "6", "contact": {"id": "c"}, "text": "t", "sent_at": "99999-01-01T00:00:00"}',
    b'{"type": "event_callback", "event": "not an object"}',
    b'{"name": 7, "keywords": {"a": 1}, "actions": "resolve"}',
    b'{"text": "' + b"[" * 5000 + b'"}',
    b"[" * 100_000,
]


@pytest.mark.parametrize(
    "path",
    ["/webhooks/shop", "/webhooks/nope", "/telegram/tg", "/telegram/nope", "/slack/events", "/api/automations"],
)
async def test_no_error_body_carries_python_internals(every_channel: Bot, path: str) -> None:
    for body in BAD_BODIES:
        resp = await every_channel.client.post(path, data=body, headers=_headers(path, body))
        text = await resp.text()
        assert resp.status < 500, (path, body[:80], resp.status, text)
        if resp.status >= 400:
            assert not INTERNALS.search(text), (path, body[:80], text)
    assert await message_count(every_channel) == 0
