"""The Telegram channel end to end: real Update JSON POSTed to the running app, python-telegram-bot's
real Bot talking to a local double of the Bot API (tests/doubles/telegram_api.py)."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from bot.front.commands import NOT_ADMIN
from bot.outbox import PermanentFailure, RetryLater
from connectors.base import OutboundTarget
from connectors.telegram.connector import SECRET_HEADER, TelegramConnector
from connectors.telegram.normalize import split_text
from tests.conftest import Bot, eventually, load_payload, make_settings
from tests.doubles.telegram_api import BOT_TOKEN, TelegramApiDouble

SECRET = "tg-webhook-secret_0123456789"
ADMIN_ID = 111  # tests/conftest.py make_settings: admins.telegram = [111]
CHANNEL = "support-tg"

MakeBot = Callable[..., Awaitable[Bot]]

# PTB 22 itself warns when it builds a RetryAfter (the int → timedelta migration of retry_after);
# connectors/telegram/connector.py reads the value without the warning.
pytestmark = pytest.mark.filterwarnings("ignore:.*retry_after.*will be of type:telegram.warnings.PTBDeprecationWarning")


def payload(
    name: str,
    *,
    update_id: int | None = None,
    message_id: int | None = None,
    text: str | None = None,
    user_id: int | None = None,
) -> dict[str, Any]:
    """A recorded update from tests/payloads/telegram/, with a few fields changed."""
    data = copy.deepcopy(load_payload(f"telegram/{name}.json"))
    msg = next(data[k] for k in ("message", "channel_post", "edited_message") if k in data)
    if update_id is not None:
        data["update_id"] = update_id
    if message_id is not None:
        msg["message_id"] = message_id
    if text is not None:
        msg["text"] = text
        for e in msg.get("entities", []):
            if e["type"] == "bot_command":
                e["length"] = len(text.split()[0])
    if user_id is not None:
        msg["from"]["id"] = user_id
        if msg["chat"]["type"] == "private":
            msg["chat"]["id"] = user_id
    return data


@pytest.fixture
async def api(aiohttp_server: Any) -> TelegramApiDouble:
    double = TelegramApiDouble()
    server = await aiohttp_server(double.app())
    double.base_url = str(server.make_url("/bot"))
    return double


@pytest.fixture
def make_tg_bot(make_bot: Callable[[Any], Awaitable[Bot]], db_url: str, api: TelegramApiDouble) -> MakeBot:
    async def factory(
        *, webhook: bool = True, public_url: str | None = None, secret: str = SECRET, **overrides: Any
    ) -> Bot:
        channel: dict[str, Any] = {
            "name": CHANNEL,
            "kind": "telegram",
            "token_env": "TG_TOKEN",
            "api_url": api.base_url,
        }
        env = {"TG_TOKEN": BOT_TOKEN}
        if webhook:
            channel["webhook_secret_env"] = "TG_SECRET"
            env["TG_SECRET"] = secret
        if public_url:
            channel["public_url"] = public_url
        settings = make_settings(db_url, channels=[channel], env=env, **overrides)
        return await make_bot(settings)

    return factory


@pytest.fixture
async def tg(make_tg_bot: MakeBot) -> Bot:
    return await make_tg_bot()


async def post(bot: Bot, data: Any, *, secret: str | None = SECRET, expect: int = 200, channel: str = CHANNEL) -> Any:
    body = data if isinstance(data, bytes) else json.dumps(data).encode()
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers[SECRET_HEADER] = secret
    resp = await bot.client.post(f"/telegram/{channel}", data=body, headers=headers)
    answer = await resp.json()
    assert resp.status == expect, answer
    return answer


async def conversations(bot: Bot, **query: str) -> list[dict[str, Any]]:
    data = await bot.api("GET", "/api/conversations", params={"channel": CHANNEL, **query})
    return list(data["items"])


async def only_conversation(bot: Bot) -> dict[str, Any]:
    items = await conversations(bot)
    assert len(items) == 1, items
    return await bot.conversation(items[0]["id"])


async def wait_sent(api: TelegramApiDouble, n: int = 1) -> list[dict[str, Any]]:
    """The double's sendMessage calls once there are `n` (the outbox worker runs in the background;
    `outbox.drain()` alone may find the job already claimed by it)."""

    async def enough() -> bool:
        await asyncio.sleep(0)
        return len(api.sent()) >= n

    await eventually(enough, tries=200)
    return api.sent()


# --- the webhook: authentication and bad input ------------------------------------------------------


async def test_start_calls_get_me_and_no_webhook_without_public_url(tg: Bot, api: TelegramApiDouble) -> None:
    assert [c.method for c in api.calls] == ["getMe"]
    assert api.webhook == {}


async def test_start_registers_webhook_with_secret(make_tg_bot: MakeBot, api: TelegramApiDouble) -> None:
    await make_tg_bot(public_url="https://inbox.example.com/")
    [call] = api.calls_to("setWebhook")
    assert call.get("url") == f"https://inbox.example.com/telegram/{CHANNEL}"
    assert call.get("secret_token") == SECRET
    # button presses under /automation list come as callback queries
    assert json.loads(call.get("allowed_updates")) == ["message", "channel_post", "callback_query"]


@pytest.mark.parametrize("secret", [None, "wrong-secret", SECRET + "x", ""])
async def test_wrong_or_missing_secret_is_401_and_nothing_stored(tg: Bot, secret: str | None) -> None:
    answer = await post(tg, payload("private_text"), secret=secret, expect=401)
    assert SECRET_HEADER in answer["error"]
    assert await conversations(tg) == []


async def test_bad_json_is_400(tg: Bot) -> None:
    answer = await post(tg, b'{"update_id": 1, "message": ', expect=400)
    assert "JSON" in answer["error"]
    await post(tg, [1, 2], expect=400)
    await post(tg, {"message": {"text": "no update id"}}, expect=400)
    await post(tg, {"update_id": 5, "message": {"text": "no chat, no date"}}, expect=400)
    assert await conversations(tg) == []


async def test_oversize_body_is_413(tg: Bot) -> None:
    data = payload("private_text", text="x" * (300 * 1024))
    answer = await post(tg, data, expect=413)
    assert "KiB" in answer["error"]
    assert await conversations(tg) == []


async def test_unknown_channel_is_404(tg: Bot) -> None:
    await post(tg, payload("private_text"), channel="nope", expect=404)


async def test_polling_channel_refuses_webhook_posts(make_tg_bot: MakeBot) -> None:
    bot = await make_tg_bot(webhook=False)
    answer = await post(bot, payload("private_text"), expect=404)
    assert "long polling" in answer["error"]


async def test_refused_token_leaves_channel_off_without_logging_it(
    make_tg_bot: MakeBot, api: TelegramApiDouble
) -> None:
    api.token = "999:another-bot"
    bot = await make_tg_bot()
    why = bot.state.left_off[CHANNEL]
    assert "refused the bot token in TG_TOKEN" in why
    assert BOT_TOKEN not in why
    # Telegram keeps the update and sends it again: it is not lost while the channel is fixed.
    await post(bot, payload("private_text"), expect=503)


async def test_refused_webhook_leaves_channel_off(make_tg_bot: MakeBot, api: TelegramApiDouble) -> None:
    bot = await make_tg_bot(public_url="http://inbox.example.com")
    assert "setWebhook failed" in bot.state.left_off[CHANNEL]
    assert "https url must be provided" in bot.state.left_off[CHANNEL].lower()
    assert CHANNEL not in bot.state.connectors


async def test_bad_secret_config_leaves_channel_off(make_tg_bot: MakeBot) -> None:
    bot = await make_tg_bot(secret="has spaces and ünïcode")
    assert CHANNEL in bot.state.left_off
    assert "webhook secret" in bot.state.left_off[CHANNEL]


# --- inbound messages ---------------------------------------------------------------------------------


async def test_private_message_becomes_direct_conversation(tg: Bot) -> None:
    assert await post(tg, payload("private_text")) == {"ok": True}
    conv = await only_conversation(tg)
    assert conv["type"] == "direct"
    assert conv["thread"] == "1111111"
    assert conv["contact"] == {"id": "1111111", "name": "Marie Curie"}
    assert [m["text"] for m in conv["messages"]] == ["Bonjour, ma commande n'est pas arrivée"]
    assert conv["messages"][0]["sent_at"] == "2025-11-25T10:00:00Z"


async def test_caption_is_the_text(tg: Bot) -> None:
    await post(tg, payload("private_photo_caption"))
    conv = await only_conversation(tg)
    assert [m["text"] for m in conv["messages"]] == ["Voici le colis abîmé"]


@pytest.mark.parametrize(
    ("name", "type", "thread", "contact"),
    [
        ("private_text", "direct", "1111111", "1111111"),
        ("group_text", "group", "-4012345678", "2222222"),
        ("supergroup_text", "group", "-1001987654321", "3333333"),
        ("forum_topic_text", "group", "-1001555000111:77", "4444444"),
        ("channel_post", "public", "-1001777888999", "-1001777888999"),
    ],
)
async def test_each_chat_type(tg: Bot, name: str, type: str, thread: str, contact: str) -> None:
    await post(tg, payload(name))
    conv = await only_conversation(tg)
    assert (conv["type"], conv["thread"], conv["contact"]["id"]) == (type, thread, contact)


async def test_forum_topics_are_separate_threads(tg: Bot) -> None:
    await post(tg, payload("forum_topic_text"))
    other_topic = payload("forum_topic_text", update_id=871234531, message_id=919, text="Et le mien à Lille")
    other_topic["message"]["message_thread_id"] = 88
    await post(tg, other_topic)
    same_topic = payload("forum_topic_text", update_id=871234532, message_id=921, text="Toujours bloqué")
    await post(tg, same_topic)
    items = await conversations(tg)
    assert sorted(c["thread"] for c in items) == ["-1001555000111:77", "-1001555000111:88"]
    by_thread = {c["thread"]: await tg.conversation(c["id"]) for c in items}
    assert [m["text"] for m in by_thread["-1001555000111:77"]["messages"]] == [
        "Mon colis est bloqué à Lyon",
        "Toujours bloqué",
    ]


async def test_same_message_id_in_two_chats_is_two_messages(tg: Bot) -> None:
    await post(tg, payload("private_text", message_id=7))
    await post(tg, payload("group_text", message_id=7))
    assert len(await conversations(tg)) == 2


async def test_duplicate_update_is_stored_once(tg: Bot) -> None:
    data = payload("private_text")
    for _ in range(3):
        assert await post(tg, data) == {"ok": True}
    # Telegram may also redeliver the same message under a new update id (after our restart).
    await post(tg, payload("private_text", update_id=871239999))
    conv = await only_conversation(tg)
    assert len(conv["messages"]) == 1


async def test_concurrent_duplicates_are_stored_once(tg: Bot) -> None:
    data = payload("private_text")
    await asyncio.gather(*(post(tg, data) for _ in range(5)))
    conv = await only_conversation(tg)
    assert len(conv["messages"]) == 1


@pytest.mark.parametrize("name", ["edited_message", "my_chat_member"])
async def test_updates_we_ignore_still_get_200(tg: Bot, name: str) -> None:
    assert await post(tg, load_payload(f"telegram/{name}.json")) == {"ok": True}
    assert await conversations(tg) == []


async def test_other_commands_are_not_contact_messages(tg: Bot, api: TelegramApiDouble) -> None:
    start = payload("private_text", text="/start")
    start["message"]["entities"] = [{"offset": 0, "length": 6, "type": "bot_command"}]
    await post(tg, start)
    other_bot = payload("command_automation", user_id=ADMIN_ID, text="/automation@SomeOtherBot list")
    await post(tg, other_bot)
    assert await conversations(tg) == []
    assert api.sent() == []


# --- /automation -------------------------------------------------------------------------------------


async def test_automation_command_by_admin(tg: Bot, api: TelegramApiDouble) -> None:
    data = payload("command_automation", text='/automation create "Au revoir" keywords="au revoir, bye" resolve')
    await post(tg, data)
    [sent] = api.sent()
    assert sent["chat_id"] == ADMIN_ID
    assert sent["message_thread_id"] is None
    assert "Au revoir" in sent["text"]
    automations = await tg.api("GET", "/api/automations")
    assert [a["name"] for a in automations["items"]] == ["Au revoir"]
    assert await conversations(tg) == []  # a command is not a contact message
    # the change is credited to the Telegram user who made it, in its revision and the audit log
    [revision] = (await tg.api("GET", f"/api/automations/{automations['items'][0]['id']}/revisions"))["items"]
    assert (revision["by"], revision["change"]) == (f"telegram:{ADMIN_ID}", "created")
    [entry] = (await tg.api("GET", "/api/audit"))["items"]
    assert (entry["actor"], entry["kind"]) == (f"telegram:{ADMIN_ID}", "automation.created")


async def test_automation_command_by_non_admin(tg: Bot, api: TelegramApiDouble) -> None:
    data = payload("command_automation", user_id=999, text='/automation create "X" keywords="x" resolve')
    await post(tg, data)
    assert api.sent() == [{"chat_id": 999, "text": NOT_ADMIN, "message_thread_id": None}]
    assert (await tg.api("GET", "/api/automations"))["items"] == []


@pytest.mark.parametrize(
    ("language_code", "user_id", "expected"),
    [
        ("fr", ADMIN_ID, 'sous-commande "frobnicate" inconnue — essayez /automation help'),
        ("fr-CA", ADMIN_ID, 'sous-commande "frobnicate" inconnue — essayez /automation help'),
        ("en", ADMIN_ID, 'unknown subcommand "frobnicate" — try /automation help'),
        ("fr", 999, "Seuls les administrateurs de la boîte de réception peuvent gérer les automatisations."),
    ],
)
async def test_automation_replies_in_the_senders_language_code(
    tg: Bot, api: TelegramApiDouble, language_code: str, user_id: int, expected: str
) -> None:
    data = payload("command_automation", user_id=user_id, text="/automation frobnicate")
    data["message"]["from"]["language_code"] = language_code
    await post(tg, data)
    assert [s["text"] for s in api.sent()] == [expected]


@pytest.mark.parametrize(("org_language", "expected"), [("fr", "Étiquettes : vip"), ("en", "Tags: vip")])
async def test_an_unknown_or_absent_language_code_gets_the_organizations_language(
    make_tg_bot: MakeBot, api: TelegramApiDouble, org_language: str, expected: str
) -> None:
    tg = await make_tg_bot(organization={"language": org_language})
    created = payload("command_automation", text="/automation tags add vip")
    created["message"]["from"]["language_code"] = "de"
    await post(tg, created)
    listed = payload("command_automation", update_id=871234551, text="/automation tags")
    del listed["message"]["from"]["language_code"]  # Telegram leaves it out when it does not know
    await post(tg, listed)
    assert api.sent()[-1]["text"] == expected


async def test_automation_at_our_bot_in_a_forum_topic_replies_in_the_topic(tg: Bot, api: TelegramApiDouble) -> None:
    await post(tg, payload("command_automation_at_bot_topic"))
    [sent] = api.sent()
    assert (sent["chat_id"], sent["message_thread_id"]) == (-1001555000111, 77)
    assert "/automation list" in sent["text"]  # the help


async def test_automation_reply_failure_still_answers_200(tg: Bot, api: TelegramApiDouble) -> None:
    api.fail_next("sendMessage", status=403, description="Forbidden: bot was blocked by the user")
    await post(tg, payload("command_automation"))
    assert len(api.calls_to("sendMessage")) == 1


# --- the "Au revoir" story -----------------------------------------------------------------------------


async def test_au_revoir_story(tg: Bot, api: TelegramApiDouble) -> None:
    await post(tg, payload("command_automation", text='/automation create "Au revoir" keywords="au revoir" resolve'))
    assert "Au revoir" in api.sent()[-1]["text"]

    # 1. The first message "Au revoir" is resolved by the automation at once.
    await post(tg, payload("private_text", update_id=100, message_id=1, text="Au revoir !"))
    [c1] = await conversations(tg)
    assert c1["status"] == "resolved"
    assert c1["resolved_by"].startswith("automation:")

    # 2. The contact writes again: a new conversation; an agent resolves it over the API.
    await post(tg, payload("private_text", update_id=101, message_id=2, text="En fait, j'ai une question"))
    c2 = next(c for c in await conversations(tg) if c["id"] != c1["id"])
    assert c2["status"] == "open"
    assert c2["previous_id"] == c1["id"]
    await tg.api("POST", f"/api/conversations/{c2['id']}/resolve", json={"reason": None})

    # 3. "Au revoir" right after: a new conversation, resolved immediately, linked to the previous one.
    await post(tg, payload("private_text", update_id=102, message_id=3, text="Au revoir"))
    c3 = next(c for c in await conversations(tg) if c["id"] not in (c1["id"], c2["id"]))
    detail = await tg.conversation(c3["id"])
    assert detail["status"] == "resolved"
    assert detail["resolved_by"].startswith("automation:")
    assert detail["previous_id"] == c2["id"]
    assert [m["text"] for m in detail["messages"]] == ["Au revoir"]
    assert [r["automation_name"] for r in detail["runs"]] == ["Au revoir"]


# --- outbound replies --------------------------------------------------------------------------------


async def test_api_reply_reaches_send_message(tg: Bot, api: TelegramApiDouble) -> None:
    await post(tg, payload("private_text"))
    [conv] = await conversations(tg)
    await tg.api("POST", f"/api/conversations/{conv['id']}/messages", json={"text": "Bonjour Marie"}, expect=201)
    await tg.state.outbox.drain()
    assert await wait_sent(api) == [{"chat_id": 1111111, "text": "Bonjour Marie", "message_thread_id": None}]
    detail = await tg.conversation(conv["id"])
    assert [m["direction"] for m in detail["messages"]] == ["inbound", "outbound"]
    assert await tg.delivered(conv["id"]) == {detail["messages"][-1]["id"]}


async def test_api_reply_in_forum_topic(tg: Bot, api: TelegramApiDouble) -> None:
    await post(tg, payload("forum_topic_text"))
    [conv] = await conversations(tg)
    await tg.api("POST", f"/api/conversations/{conv['id']}/messages", json={"text": "On regarde"}, expect=201)
    await tg.state.outbox.drain()
    assert await wait_sent(api) == [{"chat_id": -1001555000111, "text": "On regarde", "message_thread_id": 77}]


async def test_flood_control_retries_the_reply(tg: Bot, api: TelegramApiDouble) -> None:
    await post(tg, payload("private_text"))
    [conv] = await conversations(tg)
    api.fail_next(
        "sendMessage",
        status=429,
        description="Too Many Requests: retry after 1",
        parameters={"retry_after": 1},
    )
    await tg.api("POST", f"/api/conversations/{conv['id']}/messages", json={"text": "Patience"}, expect=201)

    async def delivered() -> bool:
        return bool(await tg.delivered(conv["id"]))

    await eventually(delivered, tries=400)
    assert [s["text"] for s in api.sent()] == ["Patience", "Patience"]  # refused once, then sent


def _target(chat_id: int = 1111111, topic: int | None = None) -> OutboundTarget:
    return OutboundTarget(
        conversation_id=1,
        message_id=1,
        thread_key=str(chat_id),
        contact_id=str(chat_id),
        contact_name="Marie",
        reply_to={"chat_id": chat_id, "message_thread_id": topic},
    )


def _connector(bot: Bot) -> TelegramConnector:
    c = bot.state.connectors[CHANNEL]
    assert isinstance(c, TelegramConnector)
    return c


async def test_send_maps_telegram_errors(tg: Bot, api: TelegramApiDouble) -> None:
    c = _connector(tg)
    assert await c.send(_target(), "ok") == f"1111111:{api._next_message_id}"

    api.fail_next(
        "sendMessage",
        status=429,
        description="Too Many Requests: retry after 7",
        parameters={"retry_after": 7},
    )
    with pytest.raises(RetryLater) as retry:
        await c.send(_target(), "x")
    assert retry.value.retry_after == 7

    api.fail_next("sendMessage", status=403, description="Forbidden: bot was blocked by the user")
    with pytest.raises(PermanentFailure, match="blocked"):
        await c.send(_target(), "x")

    api.fail_next("sendMessage", status=400, description="Bad Request: chat not found")
    with pytest.raises(PermanentFailure, match=r"(?i)chat not found"):
        await c.send(_target(), "x")

    api.fail_next("sendMessage", status=502, description="Bad Gateway")
    with pytest.raises(RetryLater):
        await c.send(_target(), "x")

    api.fail_next("sendMessage", status=500, description="Internal Server Error")
    with pytest.raises(RetryLater):
        await c.send(_target(), "x")


async def test_send_network_error_is_retry_later(tg: Bot, unused_tcp_port: int) -> None:
    c = _connector(tg)
    c.bot._base_url = f"http://127.0.0.1:{unused_tcp_port}/bot{BOT_TOKEN}"  # nothing listens there
    with pytest.raises(RetryLater, match=r"NetworkError|TimedOut"):
        await c.send(_target(), "x")


async def test_send_follows_a_migrated_group(tg: Bot, api: TelegramApiDouble) -> None:
    api.fail_next(
        "sendMessage",
        status=400,
        description="Bad Request: group chat was upgraded to a supergroup chat",
        parameters={"migrate_to_chat_id": -1001234567890},
    )
    await _connector(tg).send(_target(chat_id=-4012345678), "hello")
    assert [s["chat_id"] for s in api.sent()] == [-4012345678, -1001234567890]


async def test_long_reply_is_split(tg: Bot, api: TelegramApiDouble) -> None:
    text = ("ligne " * 700 + "\n") * 2
    await _connector(tg).send(_target(), text)
    pieces = [s["text"] for s in api.sent()]
    assert len(pieces) == 3
    assert all(len(p) <= 4096 for p in pieces)
    assert " ".join(pieces).split() == text.split()


def test_split_text_counts_utf16_units() -> None:
    assert split_text("hello") == ["hello"]
    emoji = "🙂" * 3000  # 6000 UTF-16 units
    pieces = split_text(emoji)
    assert len(pieces) == 2
    assert all(len(p.encode("utf-16-le")) // 2 <= 4096 for p in pieces)
    assert "".join(pieces) == emoji


# --- long polling -----------------------------------------------------------------------------------


async def test_polling_receives_updates(make_tg_bot: MakeBot, api: TelegramApiDouble) -> None:
    bot = await make_tg_bot(webhook=False)
    assert api.calls_to("deleteWebhook")
    api.push_update(payload("private_text"))
    api.push_update(payload("command_automation", update_id=871234551, user_id=999))

    async def stored() -> list[dict[str, Any]]:
        return await conversations(bot)

    [conv] = await eventually(stored, tries=200)
    assert conv["thread"] == "1111111"
    assert await wait_sent(api) == [{"chat_id": 999, "text": NOT_ADMIN, "message_thread_id": None}]

    # Confirmed updates are not fetched again: the next getUpdates carries the next offset.
    async def confirmed() -> bool:
        return any(int(c.get("offset") or 0) == 871234552 for c in api.calls_to("getUpdates"))

    await eventually(confirmed, tries=200)
    assert len(await conversations(bot)) == 1


async def test_polling_reply_goes_out(make_tg_bot: MakeBot, api: TelegramApiDouble) -> None:
    bot = await make_tg_bot(webhook=False)
    api.push_update(payload("group_text"))
    [conv] = await eventually(lambda: conversations(bot), tries=200)
    await bot.api("POST", f"/api/conversations/{conv['id']}/messages", json={"text": "Oui ?"}, expect=201)
    await bot.state.outbox.drain()
    assert await wait_sent(api) == [{"chat_id": -4012345678, "text": "Oui ?", "message_thread_id": None}]


# --- long polling: failures never lose an update, never stop the poller ----------------------------


def _connector_errors(bot: Bot) -> float:
    value = bot.state.metrics.registry.get_sample_value("inbox_connector_errors_total", {"channel": CHANNEL})
    return value or 0.0


@pytest.fixture
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """The poller's waits shrunk to a few milliseconds (production: seconds)."""
    import connectors.telegram.connector as telegram

    monkeypatch.setattr(telegram, "POLL_BACKOFF_FIRST", 0.005, raising=False)
    monkeypatch.setattr(telegram, "UPDATE_RETRY_MAX", 0.02, raising=False)
    monkeypatch.setattr(telegram, "POLL_BACKOFF_MAX", 0.02, raising=False)


async def _rename_table(old: str, new: str) -> None:
    from tortoise import connections

    await connections.get("default").execute_script(f"ALTER TABLE {old} RENAME TO {new}")


async def test_polling_keeps_an_update_through_a_store_outage(
    make_tg_bot: MakeBot, api: TelegramApiDouble, fast_backoff: None
) -> None:
    from connectors.telegram.connector import MAX_UPDATE_ATTEMPTS

    bot = await make_tg_bot(webhook=False)
    await _rename_table("messages", "messages_away")  # the store refuses every message (a real error)
    try:
        api.push_update(payload("private_text"))

        async def failed_often() -> bool:
            return _connector_errors(bot) >= MAX_UPDATE_ATTEMPTS + 3

        await eventually(failed_often, tries=1000)
        # Never confirmed while it could not be stored: every getUpdates still starts at it.
        assert all(int(c.get("offset") or 0) <= 871234550 for c in api.calls_to("getUpdates"))
    finally:
        await _rename_table("messages_away", "messages")

    [conv] = await eventually(lambda: conversations(bot), tries=200)
    detail = await bot.conversation(conv["id"])
    assert [m["text"] for m in detail["messages"]] == ["Bonjour, ma commande n'est pas arrivée"]


async def test_polling_skips_an_update_it_cannot_read(
    make_tg_bot: MakeBot, api: TelegramApiDouble, fast_backoff: None
) -> None:
    from connectors.telegram.connector import MAX_UPDATE_ATTEMPTS

    bot = await make_tg_bot(webhook=False)
    # Text the store cannot keep: no retry can help (the webhook refuses such a body with a 400).
    api.push_update(payload("private_text", update_id=10, message_id=1, text="nul \u0000 inside"))
    api.push_update(payload("private_text", update_id=11, message_id=2, text="fine"))
    [conv] = await eventually(lambda: conversations(bot), tries=1000)
    detail = await bot.conversation(conv["id"])
    assert [m["text"] for m in detail["messages"]] == ["fine"]
    assert _connector_errors(bot) == MAX_UPDATE_ATTEMPTS


@pytest.mark.parametrize(
    ("status", "description"),
    [(403, "Forbidden: bot was kicked"), (500, "Internal Server Error"), (200, "not json")],
)
async def test_polling_survives_any_get_updates_failure(
    make_tg_bot: MakeBot, api: TelegramApiDouble, fast_backoff: None, status: int, description: str
) -> None:
    bot = await make_tg_bot(webhook=False)
    await eventually(lambda: _async(bool(api.calls_to("getUpdates"))), tries=200)
    if status == 200:
        api.garble_next("getUpdates")  # a body that is not JSON: PTB raises a bare TelegramError
    else:
        api.fail_next("getUpdates", status=status, description=description)
    api.push_update(payload("private_text"))
    await eventually(lambda: conversations(bot), tries=1000)
    assert _connector_errors(bot) >= 1


async def _async(value: Any) -> Any:
    return value


# --- updates python-telegram-bot cannot read: a plain 400, never Python's words ---------------------

INTERNALS = ("Error", "__init__", "Traceback", "telegram._", "argument", "NoneType", "object has no")


def _broken(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    data = payload("private_text")
    change(data["message"])
    return data


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (lambda m: m["from"].pop("first_name"), 'a User object lacks the required field "first_name"'),
        (lambda m: m["chat"].pop("type"), 'a Chat object lacks the required field "type"'),
        (lambda m: m["chat"].pop("id"), 'a Chat object lacks the required field "id"'),
        (
            lambda m: m.update(entities=[{"type": "bold"}]),
            'a MessageEntity object lacks the required fields "offset" and "length"',
        ),
        (lambda m: m.pop("date"), 'the required field "date" is missing'),
        (lambda m: m.pop("chat"), 'the message lacks the required field "chat"'),
        (lambda m: m.update(chat="not an object"), "a field has the wrong type or is missing"),
        (lambda m: m.update(entities="not a list"), "a field has the wrong type or is missing"),
        (lambda m: m.update(date="yesterday"), "a field has the wrong type or is missing"),
        (lambda m: m.update(date=10**20), "a date is out of range"),
        (lambda m: m.update({"from": 5}), "a field has the wrong type or is missing"),
    ],
    ids=[
        "from-without-first_name",
        "chat-without-type",
        "chat-without-id",
        "entity-without-offset",
        "no-date",
        "no-chat",
        "chat-string",
        "entities-string",
        "date-string",
        "date-huge",
        "from-number",
    ],
)
async def test_an_update_we_cannot_read_is_a_plain_400(
    tg: Bot, change: Callable[[dict[str, Any]], None], says: str
) -> None:
    answer = await post(tg, _broken(change), expect=400)
    assert answer["error"] == f"not a valid Telegram Update: {says} (see https://core.telegram.org/bots/api#update)"
    assert not any(word in answer["error"] for word in INTERNALS), answer
    assert await conversations(tg) == []


def test_parse_update_and_to_inbound_are_pure() -> None:
    from telegram import Bot as PtbBot

    from connectors.telegram.normalize import BadUpdate, parse_update, to_inbound

    bot = PtbBot("123:abc")  # no network: only held by the parsed objects
    update = parse_update(load_payload("telegram/forum_topic_text.json"), bot)
    assert update.effective_message is not None
    msg = to_inbound("tg", update.effective_message)
    assert msg is not None
    assert (msg.channel, msg.thread_key, msg.type) == ("tg", "-1001555000111:77", "group")
    assert msg.reply_to == {"chat_id": -1001555000111, "message_thread_id": 77}
    assert msg.platform_message_id.startswith("-1001555000111:")

    post_update = parse_update(load_payload("telegram/channel_post.json"), bot)
    assert post_update.effective_message is not None
    channel_post = to_inbound("tg", post_update.effective_message)
    assert channel_post is not None and (channel_post.type, channel_post.contact_id) == ("public", "-1001777888999")

    with pytest.raises(BadUpdate, match="integer update_id"):
        parse_update({"update_id": "1"}, bot)
    with pytest.raises(ValueError, match="NUL"):
        to_inbound("tg", parse_update(payload("private_text", text="a\x00b"), bot).effective_message)  # type: ignore[arg-type]
