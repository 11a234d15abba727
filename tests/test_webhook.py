"""`POST /webhooks/{channel}` and replies to a webhook channel's `reply_url`, over HTTP,
with a local aiohttp server standing in for the integrator's reply endpoint."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from tests.conftest import SHOP_SECRET, STORES, Bot, eventually, make_settings
from tests.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign, signed_by, signed_headers

MakeBot = Callable[..., Awaitable[Bot]]
REPLY_SECRET = "reply-secret-xyz"


def payload(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": "m-1",
        "contact": {"id": "c-42", "name": "Marie"},
        "text": "Au revoir !",
        "type": "direct",
        "thread": "t-9",
        "sent_at": "2026-11-24T10:00:00Z",
    }
    data.update(overrides)
    return data


async def post(
    bot: Bot, body: bytes, *, headers: dict[str, str] | None = None, channel: str = "shop"
) -> tuple[int, dict[str, Any]]:
    hdrs = signed_headers(SHOP_SECRET, body) if headers is None else headers
    resp = await bot.client.post(f"/webhooks/{channel}", data=body, headers=hdrs)
    return resp.status, await resp.json()


async def assert_nothing_stored(bot: Bot) -> None:
    assert (await bot.api("GET", "/api/conversations"))["items"] == []


# --- accepted ---------------------------------------------------------------------------------------


async def test_full_payload_is_stored(bot: Bot) -> None:
    body = json.dumps(payload(type="group")).encode()
    status, data = await post(bot, body)
    assert status == 200
    assert set(data) == {"conversation_id", "message_id", "duplicate"}
    assert data["duplicate"] is False
    conv = await bot.conversation(data["conversation_id"])
    assert (conv["channel"], conv["type"], conv["thread"], conv["status"]) == ("shop", "group", "t-9", "open")
    assert conv["contact"] == {"id": "c-42", "name": "Marie"}
    (msg,) = conv["messages"]
    assert (msg["id"], msg["direction"], msg["text"]) == (data["message_id"], "inbound", "Au revoir !")
    assert msg["sent_at"] == "2026-11-24T10:00:00Z"


@pytest.mark.parametrize(
    ("sent_at", "stored"),
    [
        ("2026-11-24T10:00:00", "2026-11-24T10:00:00Z"),  # naive: UTC
        ("2026-11-24T12:00:00+02:00", "2026-11-24T10:00:00Z"),
        (1732440000, "2024-11-24T09:20:00Z"),  # unix seconds
    ],
)
@pytest.mark.parametrize("db_url", STORES, indirect=True)
async def test_sent_at_forms(bot: Bot, sent_at: Any, stored: str) -> None:
    status, data = await post(bot, json.dumps(payload(sent_at=sent_at)).encode())
    assert status == 200
    assert (await bot.conversation(data["conversation_id"]))["messages"][0]["sent_at"] == stored


async def test_minimal_payload_defaults(bot: Bot) -> None:
    body = json.dumps({"id": "m-1", "contact": {"id": "c-1"}, "text": "hi", "extra": "ignored"}).encode()
    status, data = await post(bot, body)
    assert status == 200
    conv = await bot.conversation(data["conversation_id"])
    assert (conv["type"], conv["thread"], conv["contact"]) == ("direct", "c-1", {"id": "c-1", "name": None})


async def test_same_thread_joins_the_conversation_channels_are_separate(bot: Bot) -> None:
    a = await bot.webhook("one", contact="c-1")
    b = await bot.webhook("two", contact="c-1")
    c = await bot.webhook("three", contact="c-1", channel="support")
    d = await bot.webhook("four", contact="c-2", thread="c-1")  # the payload's thread wins over the contact
    assert a["conversation_id"] == b["conversation_id"] == d["conversation_id"]
    assert c["conversation_id"] != a["conversation_id"]


async def test_redelivery_is_stored_once_and_fires_once(bot: Bot) -> None:
    await bot.api("POST", "/api/tags", json={"name": "closing"}, expect=201)
    auto = await bot.api(
        "POST",
        "/api/automations",
        json={"name": "Bye", "keywords": "au revoir", "actions": [{"type": "tag", "tag": "closing"}]},
        expect=201,
    )
    body = json.dumps(payload()).encode()
    status1, first = await post(bot, body)
    # a retry arrives later with a fresh signature (and slightly different content is ignored)
    status2, second = await post(bot, body)
    status3, third = await post(bot, json.dumps(payload(text="Au revoir ! (retry)")).encode())
    assert (status1, status2, status3) == (200, 200, 200)
    assert first["duplicate"] is False
    assert second == {**first, "duplicate": True}
    assert third == {**first, "duplicate": True}
    conv = await bot.conversation(first["conversation_id"])
    assert [m["text"] for m in conv["messages"]] == ["Au revoir !"]
    assert len(conv["runs"]) == 1
    assert len((await bot.api("GET", f"/api/automations/{auto['id']}/runs"))["items"]) == 1
    # the same id on another channel is another message
    _, other = await post(bot, body, channel="support")
    assert other["duplicate"] is False
    assert other["message_id"] != first["message_id"]


async def test_concurrent_redeliveries(bot: Bot) -> None:
    body = json.dumps(payload()).encode()
    results = await asyncio.gather(*(post(bot, body) for _ in range(8)))
    assert {s for s, _ in results} == {200}
    assert len({(d["conversation_id"], d["message_id"]) for _, d in results}) == 1
    assert sorted(d["duplicate"] for _, d in results) == [False] + [True] * 7
    (conv,) = (await bot.api("GET", "/api/conversations"))["items"]
    assert len((await bot.conversation(conv["id"]))["messages"]) == 1


# --- refused: signature -------------------------------------------------------------------------------


def _headers(ts: str | int, sig: str) -> dict[str, str]:
    return {TIMESTAMP_HEADER: str(ts), SIGNATURE_HEADER: sig, "Content-Type": "application/json"}


@pytest.mark.parametrize(
    "case",
    [
        "no headers",
        "no signature",
        "no timestamp",
        "wrong secret",
        "garbage",
        "stale",
        "future",
        "not digits",
        "tampered",
    ],
)
async def test_bad_signature_is_401_and_stores_nothing(bot: Bot, case: str) -> None:
    body = json.dumps(payload()).encode()
    now = int(time.time())
    headers = {
        "no headers": {"Content-Type": "application/json"},
        "no signature": {TIMESTAMP_HEADER: str(now)},
        "no timestamp": {SIGNATURE_HEADER: sign(SHOP_SECRET, now, body)},
        "wrong secret": _headers(now, sign("not-the-secret", now, body)),
        "garbage": _headers(now, "v1=deadbeef"),
        "stale": _headers(now - 301, sign(SHOP_SECRET, now - 301, body)),
        "future": _headers(now + 400, sign(SHOP_SECRET, now + 400, body)),
        "not digits": _headers("yesterday", sign(SHOP_SECRET, "yesterday", body)),
        "tampered": _headers(now, sign(SHOP_SECRET, now, json.dumps(payload(text="other")).encode())),
    }[case]
    status, data = await post(bot, body, headers=headers)
    assert status == 401
    expected = {
        "no headers": "missing X-Inbox-Timestamp or X-Inbox-Signature header",
        "no signature": "missing X-Inbox-Timestamp or X-Inbox-Signature header",
        "no timestamp": "missing X-Inbox-Timestamp or X-Inbox-Signature header",
        "stale": "X-Inbox-Timestamp is more than 5 minutes away from now (replayed, or the sender's clock is off)",
        "future": "X-Inbox-Timestamp is more than 5 minutes away from now (replayed, or the sender's clock is off)",
        "not digits": "X-Inbox-Timestamp must be unix seconds",
    }.get(case, "signature does not match: sign '{timestamp}.{raw body}' with HMAC-SHA256 and the channel's secret")
    assert data == {"error": expected}
    await assert_nothing_stored(bot)


async def test_signature_within_five_minutes_is_accepted(bot: Bot) -> None:
    body = json.dumps(payload()).encode()
    ts = int(time.time()) - 240
    status, _ = await post(bot, body, headers=_headers(ts, sign(SHOP_SECRET, ts, body)))
    assert status == 200


# --- refused: body ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b'{"id": "m-1", ', "body is not valid JSON"),
        (b"\xff\xfe\x00", "body is not valid JSON"),
        (b"", "body is not valid JSON"),
        (b'[{"id": "m-1"}]', "body must be a JSON object"),
        (b'"hello"', "body must be a JSON object"),
        (b"null", "body must be a JSON object"),
        (b"[" * 100_000 + b"]" * 100_000, "body is not valid JSON: nested too deeply"),
        (b'{"id": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "body is not valid JSON: nested too deeply"),
    ],
)
async def test_bad_json_is_400(bot: Bot, body: bytes, error: str) -> None:
    status, data = await post(bot, body)
    assert status == 400
    assert data["error"].startswith(error)
    await assert_nothing_stored(bot)


async def test_wrong_field_types_name_each_field(bot: Bot) -> None:
    body = json.dumps(
        {"id": 17, "contact": "c-42", "text": 3, "type": "robot", "sent_at": "yesterday", "thread": ["x"]}
    ).encode()
    status, data = await post(bot, body)
    assert status == 400
    assert data["error"] == "invalid fields"
    assert set(data["fields"]) == {"id", "contact", "text", "type", "sent_at", "thread"}
    await assert_nothing_stored(bot)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"id": 17}, "id"),
        ({"id": ""}, "id"),
        ({"text": 3}, "text"),
        ({"text": ""}, "text"),
        ({"contact": "c-42"}, "contact"),
        ({"contact": {"name": "Marie"}}, "contact.id"),
        ({"contact": {"id": 42}}, "contact.id"),
        ({"contact": {"id": "c-1", "name": 5}}, "contact.name"),
        ({"type": "robot"}, "type"),
        ({"sent_at": "yesterday"}, "sent_at"),
        ({"sent_at": "9999-12-31T23:59:59-14:00"}, "sent_at"),  # beyond year 9999 in UTC
        ({"sent_at": "0001-01-01T00:00:00+14:00"}, "sent_at"),
        ({"sent_at": 10**17}, "sent_at"),
        ({"text": "a\x00b"}, "text"),  # NUL: PostgreSQL text cannot hold it
        ({"id": "m\x00"}, "id"),
        ({"thread": "t\x00"}, "thread"),
        ({"contact": {"id": "c\x00"}}, "contact.id"),
        ({"contact": {"id": "c", "name": "M\x00"}}, "contact.name"),
        ({"thread": 12}, "thread"),
    ],
)
@pytest.mark.parametrize("db_url", STORES, indirect=True)
async def test_one_bad_field(bot: Bot, overrides: dict[str, Any], field: str) -> None:
    status, data = await post(bot, json.dumps(payload(**overrides)).encode())
    assert status == 400
    assert list(data["fields"]) == [field]
    await assert_nothing_stored(bot)


async def test_missing_fields(bot: Bot) -> None:
    status, data = await post(bot, b"{}")
    assert status == 400
    assert data["fields"] == {"id": "required", "contact": "required", "text": "required"}
    await assert_nothing_stored(bot)


async def test_oversize_is_413(bot: Bot) -> None:
    body = json.dumps(payload(text="x" * (256 * 1024))).encode()
    status, data = await post(bot, body)
    assert (status, data) == (413, {"error": "body is larger than 256 KiB"})
    # just under the limit is fine (text is capped at 100 000 characters: that field is refused, not the body)
    body = json.dumps(payload(text="y" * 100_000)).encode()
    assert (await post(bot, body))[0] == 200

    async def chunks() -> Any:
        for _ in range(9):
            yield b" " * (32 * 1024)

    resp = await bot.client.post("/webhooks/shop", data=chunks(), headers=signed_headers(SHOP_SECRET, b""))
    assert resp.status == 413
    assert len((await bot.api("GET", "/api/conversations"))["items"]) == 1


async def test_unknown_channel_is_404(bot: Bot) -> None:
    body = json.dumps(payload()).encode()
    status, data = await post(bot, body, channel="nope")
    assert (status, data) == (
        404,
        {"error": 'unknown channel "nope" — configure it under [[channels]] with kind = "webhook"'},
    )
    await assert_nothing_stored(bot)


async def test_get_is_not_allowed(bot: Bot) -> None:
    resp = await bot.client.get("/webhooks/shop")
    assert resp.status == 405


# --- replies to reply_url ------------------------------------------------------------------------


class ReplyDouble:
    """The integrator's reply endpoint: records what it receives, answers the statuses it is given."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.received: list[tuple[dict[str, str], bytes]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append((dict(request.headers), await request.read()))
        status = self.statuses.pop(0) if self.statuses else 200
        return web.json_response({"ok": status == 200}, status=status)


async def start_double(aiohttp_server: Any, statuses: list[int]) -> tuple[ReplyDouble, str]:
    double = ReplyDouble(statuses)
    app = web.Application()
    app.router.add_post("/inbox-replies", double.handle)
    server = await aiohttp_server(app)
    return double, str(server.make_url("/inbox-replies"))


def reply_settings(db_url: str, reply_url: str) -> Any:
    return make_settings(
        db_url,
        channels=[{"name": "shop", "kind": "webhook", "secret_env": "TEST_SHOP_SECRET", "reply_url": reply_url}],
    )


async def test_reply_is_posted_signed_to_reply_url(make_bot: MakeBot, db_url: str, aiohttp_server: Any) -> None:
    double, url = await start_double(aiohttp_server, [])
    bot = await make_bot(reply_settings(db_url, url))
    sent = await bot.webhook("hello", contact="c-42", name="Marie", thread="t-1")
    cid = sent["conversation_id"]
    msg = await bot.api("POST", f"/api/conversations/{cid}/messages", json={"text": "Bonjour Marie"}, expect=201)
    assert msg["direction"] == "outbound"

    async def delivered() -> bool:
        return msg["id"] in await bot.delivered(cid)

    await eventually(delivered, "the reply to be delivered", tries=200)
    ((headers, body),) = double.received
    assert signed_by(SHOP_SECRET, headers, body)
    assert not signed_by("another-secret", headers, body)
    assert json.loads(body) == {
        "conversation_id": cid,
        "message_id": msg["id"],
        "thread": "t-1",
        "contact": {"id": "c-42", "name": "Marie"},
        "text": "Bonjour Marie",
    }
    conv = await bot.conversation(cid)
    assert [m["direction"] for m in conv["messages"]] == ["inbound", "outbound"]
    assert await bot.delivered(cid) == {msg["id"]}
    # an outbound message never fires automations and is never posted twice
    await bot.state.outbox.drain()
    assert len(double.received) == 1


async def test_reply_retried_until_delivered_once(make_bot: MakeBot, db_url: str, aiohttp_server: Any) -> None:
    double, url = await start_double(aiohttp_server, [500, 500, 200])
    bot = await make_bot(reply_settings(db_url, url))
    cid = (await bot.webhook("hello"))["conversation_id"]
    await bot.api("POST", f"/api/conversations/{cid}/messages", json={"text": "One moment"}, expect=201)

    async def delivered() -> bool:
        await bot.state.outbox.drain(timeout=0.5)
        return bool(await bot.delivered(cid))

    await eventually(delivered, "the reply to be delivered after retries", tries=200)
    assert len(double.received) == 3
    assert [json.loads(b)["text"] for _, b in double.received] == ["One moment"] * 3
    assert all(signed_by(SHOP_SECRET, h, b) for h, b in double.received)
    (job,) = (await bot.api("GET", f"/api/outbox?conversation_id={cid}"))["items"]
    assert (job["status"], job["attempts"]) == ("done", 2)
    await bot.state.outbox.drain()
    assert len(double.received) == 3


async def test_reply_refused_by_reply_url_fails_for_good(make_bot: MakeBot, db_url: str, aiohttp_server: Any) -> None:
    double, url = await start_double(aiohttp_server, [400])
    bot = await make_bot(reply_settings(db_url, url))
    cid = (await bot.webhook("hello"))["conversation_id"]
    await bot.api("POST", f"/api/conversations/{cid}/messages", json={"text": "One moment"}, expect=201)

    async def failed() -> bool:
        items = (await bot.api("GET", f"/api/outbox?conversation_id={cid}"))["items"]
        return bool(items) and items[0]["status"] == "failed"

    await eventually(failed, "the reply job to fail", tries=200)
    assert len(double.received) == 1
    assert await bot.delivered(cid) == set()


async def test_reply_without_reply_url_is_stored_for_the_api_not_sent(bot: Bot) -> None:
    cid = (await bot.webhook("hello"))["conversation_id"]
    await bot.api("POST", f"/api/conversations/{cid}/messages", json={"text": "hi"}, expect=201)
    messages = (await bot.conversation(cid))["messages"]
    assert [(m["direction"], m["text"]) for m in messages] == [("inbound", "hello"), ("outbound", "hi")]
    assert (await bot.api("GET", f"/api/outbox?conversation_id={cid}"))["items"] == []


async def raw_http(bot: Bot, request: bytes) -> int:
    """Send bytes as they are (aiohttp's client would refuse non-UTF-8 header values)."""
    reader, writer = await asyncio.open_connection(bot.client.host, bot.client.port)
    writer.write(request)
    await writer.drain()
    status_line = await reader.readline()
    writer.close()
    await writer.wait_closed()
    return int(status_line.split()[1])


async def test_non_utf8_header_bytes_are_refused_not_a_server_error(bot: Bot) -> None:
    body = b'{"id": "m-1", "contact": {"id": "c"}, "text": "hi"}'
    webhook = (
        b"POST /webhooks/shop HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\n"
        b"X-Inbox-Timestamp: " + str(int(time.time())).encode() + b"\r\nX-Inbox-Signature: v1=\xff\xfe\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    assert await raw_http(bot, webhook) == 401
    api = b"GET /api/conversations HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer \xff\xfe\r\n\r\n"
    assert await raw_http(bot, api) == 401
    assert (await bot.api("GET", "/api/conversations"))["items"] == []


async def test_blank_text_is_refused_naming_the_field(bot: Bot) -> None:
    body = json.dumps({"id": "m-blank", "contact": {"id": "c"}, "text": "   "}).encode()
    resp = await bot.client.post("/webhooks/shop", data=body, headers=signed_headers(SHOP_SECRET, body))
    assert resp.status == 400
    assert (await resp.json())["fields"] == {"text": "must not be blank"}
    assert (await bot.api("GET", "/api/conversations"))["items"] == []


# --- normalization (pure) ----------------------------------------------------------------------------


def test_to_message_defaults_thread_type_and_utc() -> None:
    from datetime import UTC, datetime

    from bot.domain import ConversationType
    from connectors.webhook.normalize import WebhookPayload, to_message

    body = {"id": "m-7", "contact": {"id": "c-1"}, "text": "hi", "thread": "  ", "sent_at": "2026-11-24T10:00:00"}
    msg = to_message("shop", WebhookPayload.model_validate(body))
    assert (msg.channel, msg.platform_message_id, msg.thread_key, msg.contact_id) == ("shop", "m-7", "c-1", "c-1")
    assert msg.type is ConversationType.DIRECT and msg.contact_name is None
    assert msg.sent_at == datetime(2026, 11, 24, 10, 0, tzinfo=UTC)  # a naive time is UTC
    grouped = to_message("shop", WebhookPayload.model_validate(payload(type="group", thread="t-1")))
    assert (grouped.type, grouped.thread_key, grouped.contact_name) == (ConversationType.GROUP, "t-1", "Marie")


def test_field_errors_name_each_field() -> None:
    from pydantic import ValidationError

    from connectors.webhook.normalize import WebhookPayload, field_errors

    with pytest.raises(ValidationError) as exc:
        WebhookPayload.model_validate({"contact": {"id": ""}, "text": " ", "type": "dm"})
    errors = field_errors(exc.value)
    assert errors["id"] == "required"
    assert set(errors) == {"id", "contact.id", "text", "type"}
    assert errors["text"] == "must not be blank"


# --- the shared path: unknown and off channels ----------------------------------------------------


async def test_unknown_and_off_channels_on_the_shared_paths(make_bot: MakeBot, db_url: str) -> None:
    settings = make_settings(
        db_url,
        channels=[
            {"name": "shop", "kind": "webhook", "secret_env": "TEST_SHOP_SECRET"},
            {"name": "tg", "kind": "telegram", "token_env": "T_TG_TOKEN_UNSET"},
        ],
    )
    bot = await make_bot(settings)
    body = json.dumps(payload()).encode()
    # a Telegram channel that is off: both shared paths say why, as /webhooks/ always did
    off = 'channel "tg" is off: set T_TG_TOKEN_UNSET in the environment'
    for path in ("/webhooks/tg", "/telegram/tg"):
        resp = await bot.client.post(path, data=body, headers=signed_headers(SHOP_SECRET, body))
        assert (resp.status, await resp.json()) == (404, {"error": off})
    # no Telegram channel runs, and the path still answers in JSON, naming the kind to configure
    resp = await bot.client.post("/telegram/nope", data=body)
    assert (resp.status, await resp.json()) == (
        404,
        {"error": 'unknown channel "nope" — configure it under [[channels]] with kind = "telegram"'},
    )
    # a channel of another kind is not reached through this kind's path
    resp = await bot.client.post("/telegram/shop", data=body)
    assert resp.status == 404
    assert (await bot.webhook("still fine"))["duplicate"] is False
