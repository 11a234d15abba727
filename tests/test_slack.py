"""The Slack channel end to end: real Slack payloads, signed with Slack's v0 scheme, sent to
`/slack/events` of the running app; the real slack_sdk client talks to a local Slack Web API double."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

import pytest

from bot.config import Settings
from bot.outbox import PermanentFailure, RetryLater
from connectors.base import OutboundTarget
from connectors.slack.connector import COMMAND, SlackConnector
from connectors.slack.normalize import callback_type, skip_reason, thread_of, to_message
from tests.conftest import Bot, load_payload, make_settings
from tests.doubles.slack_api import APP_TOKEN, BOT_TOKEN, SlackApiDouble

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
EU_SECRET = "d2a54b1e0f4c9e7a8b3c6d5e4f3a2b1c"
CONTACT = "U2147483697"
MakeBot = Callable[[Settings], Awaitable[Bot]]


def slack_signature(secret: str, timestamp: str, body: bytes) -> str:
    """Slack's v0 scheme: "v0=" + hex HMAC-SHA256(signing secret, "v0:{timestamp}:{body}")."""
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def signed(body: bytes, *, content_type: str, secret: str = SIGNING_SECRET, at: float | None = None) -> dict[str, str]:
    ts = str(int(time.time() if at is None else at))
    return {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": slack_signature(secret, ts, body),
    }


def event_payload(name: str, **event: Any) -> dict[str, Any]:
    """A documented payload with a fresh event_id and some event fields changed (None removes one)."""
    payload: dict[str, Any] = copy.deepcopy(load_payload(f"slack/{name}.json"))
    payload["event_id"] = "Ev" + uuid.uuid4().hex[:10].upper()
    for key, value in event.items():
        if value is None:
            payload["event"].pop(key, None)
        else:
            payload["event"][key] = value
    return payload


class SlackSender:
    """Sends what Slack sends to the app's Events API / slash-command URL."""

    def __init__(self, bot: Bot, api: SlackApiDouble, path: str = "/slack/events", secret: str = SIGNING_SECRET):
        self.bot = bot
        self.api = api
        self.path = path
        self.secret = secret

    async def post(self, body: bytes, headers: dict[str, str], *, expect: int = 200) -> Any:
        resp = await self.bot.client.post(self.path, data=body, headers=headers)
        text = await resp.text()
        assert resp.status == expect, (resp.status, text)
        return text

    async def event(self, payload: dict[str, Any], *, retry: int | None = None, expect: int = 200, **kw: Any) -> Any:
        body = json.dumps(payload).encode()
        kw.setdefault("secret", self.secret)
        headers = signed(body, content_type="application/json", **kw)
        if retry is not None:
            headers["X-Slack-Retry-Num"] = str(retry)
            headers["X-Slack-Retry-Reason"] = "http_timeout"
        return await self.post(body, headers, expect=expect)

    async def message(self, name: str = "message_im", *, expect: int = 200, **event: Any) -> dict[str, Any]:
        event.setdefault("ts", f"{time.time():.6f}")
        event.setdefault("event_ts", event["ts"])
        payload = event_payload(name, **event)
        await self.event(payload, expect=expect)
        return payload

    async def command(self, text: str, *, user: str = "UADMIN", **fields: str) -> dict[str, Any]:
        """`/automation <text>` as the form body Slack POSTs; returns the response_url answer."""
        form = dict(load_payload("slack/slash_command.json"))
        key = uuid.uuid4().hex
        form.update(text=text, user_id=user, response_url=self.api.response_url(key), **fields)
        body = urlencode(form).encode()
        await self.post(body, signed(body, content_type="application/x-www-form-urlencoded"))
        loop_responses = await self._response_for(key)
        return loop_responses

    async def _response_for(self, key: str) -> dict[str, Any]:
        import asyncio

        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        while True:
            for k, data in self.api.responses:
                if k == key:
                    return data
            assert loop.time() < deadline, "no answer posted to the response_url"
            await asyncio.sleep(0.01)


def slack_settings(
    db_url: str,
    api: SlackApiDouble,
    *,
    workspace_admins: bool = False,
    more: list[dict[str, Any]] | None = None,
    env: dict[str, str] | None = None,
    **channel: Any,
) -> Settings:
    ch = {
        "name": "slack",
        "kind": "slack",
        "bot_token_env": "TEST_SLACK_BOT_TOKEN",
        "signing_secret_env": "TEST_SLACK_SIGNING_SECRET",
        "api_url": api.api_url,
        **channel,
    }
    return make_settings(
        db_url,
        channels=[ch, *(more or []), {"name": "shop", "kind": "webhook", "secret_env": "TEST_SHOP_SECRET"}],
        admins={"slack_workspace_admins": workspace_admins},
        env={"TEST_SLACK_BOT_TOKEN": BOT_TOKEN, "TEST_SLACK_SIGNING_SECRET": SIGNING_SECRET, **(env or {})},
    )


@pytest.fixture
async def slack_api(aiohttp_server: Any) -> SlackApiDouble:
    double = SlackApiDouble()
    server = await aiohttp_server(double.app())
    double.url = str(server.make_url("")).rstrip("/")
    return double


@pytest.fixture
async def slack(slack_api: SlackApiDouble, make_bot: MakeBot, db_url: str) -> SlackSender:
    bot = await make_bot(slack_settings(db_url, slack_api))
    assert "slack" in bot.state.connectors, bot.state.left_off
    return SlackSender(bot, slack_api)


async def conversations(bot: Bot) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = (await bot.api("GET", "/api/conversations?channel=slack"))["items"]
    return items


# --- the Events API surface ---------------------------------------------------------------------


async def test_start_asks_auth_test_once_and_nothing_else(slack: SlackSender) -> None:
    assert [c.method for c in slack.api.calls] == ["auth.test"]
    assert slack.api.calls[0].token == BOT_TOKEN


async def test_url_verification_answers_the_challenge(slack: SlackSender) -> None:
    payload = load_payload("slack/url_verification.json")
    text = await slack.event(payload)
    assert payload["challenge"] in text


async def test_bad_and_stale_signatures_are_rejected_and_nothing_is_stored(slack: SlackSender) -> None:
    payload = event_payload("message_im")
    body = json.dumps(payload).encode()
    await slack.post(body, signed(body, content_type="application/json", secret="not-the-secret"), expect=401)
    await slack.post(body, signed(body, content_type="application/json", at=time.time() - 6 * 60), expect=401)
    tampered = signed(body, content_type="application/json")
    await slack.post(body.replace(b"Hello", b"Howdy"), tampered, expect=401)
    await slack.post(body, {"Content-Type": "application/json"}, expect=401)
    assert await conversations(slack.bot) == []
    assert "users.info" not in [c.method for c in slack.api.calls]
    metrics = (await slack.bot.client.get("/metrics")).content
    assert b'inbox_rejected_requests_total{endpoint="slack",reason="signature"} 4.0' in await metrics.read()


async def test_im_message_becomes_a_direct_conversation_with_the_contacts_name(slack: SlackSender) -> None:
    await slack.message("message_im", ts="1355517523.000005", text="Bonjour &amp; merci &lt;3")
    await slack.message("message_im", ts="1355517524.000001", text="Vous êtes là ?")
    [conv] = await conversations(slack.bot)
    assert conv["type"] == "direct"
    assert conv["thread"] == "D024BE91L"
    assert conv["contact"] == {"id": CONTACT, "name": "Marie"}
    full = await slack.bot.conversation(conv["id"])
    assert [m["text"] for m in full["messages"]] == ["Bonjour & merci <3", "Vous êtes là ?"]
    assert len(slack.api.of("users.info")) == 1  # cached


@pytest.mark.parametrize(
    ("payload", "type", "thread"),
    [
        ("message_im", "direct", "D024BE91L"),
        ("message_mpim", "group", "G024BE91L"),
        ("message_groups", "group", "C0PRIVATE:1355517523.000005"),
        ("message_channels", "public", "C024BE91L:1355517523.000005"),
    ],
)
async def test_each_conversation_type(slack: SlackSender, payload: str, type: str, thread: str) -> None:
    await slack.message(payload, ts="1355517523.000005")
    [conv] = await conversations(slack.bot)
    assert (conv["type"], conv["thread"]) == (type, thread)


async def test_missing_channel_type_is_asked_of_conversations_info(slack: SlackSender) -> None:
    await slack.message("message_groups", channel_type=None)
    await slack.message("message_groups", channel_type=None)
    [conv] = [c for c in await conversations(slack.bot) if c["thread"].startswith("C0PRIVATE")][:1]
    assert conv["type"] == "group"
    assert len(slack.api.of("conversations.info")) == 1  # cached


async def test_thread_replies_join_their_threads_conversation(slack: SlackSender) -> None:
    root = await slack.message("message_channels", ts="1355517523.000005", text="Ma commande est en retard")
    await slack.message("message_channels_thread", ts="1482960137.003543")
    await slack.message("message_channels", ts="1355517600.000001", text="Autre sujet")
    convs = await conversations(slack.bot)
    by_thread = {c["thread"]: c for c in convs}
    assert set(by_thread) == {"C024BE91L:1355517523.000005", "C024BE91L:1355517600.000001"}
    thread = await slack.bot.conversation(by_thread["C024BE91L:1355517523.000005"]["id"])
    assert [m["text"] for m in thread["messages"]] == [
        root["event"]["text"],
        load_payload("slack/message_channels_thread.json")["event"]["text"],
    ]


async def test_a_retry_is_stored_once_and_fires_automations_once(slack: SlackSender) -> None:
    await slack.bot.command("tags add hello")
    await slack.bot.command('create Greeting keywords="hello" tags=hello')
    payload = event_payload("message_im", ts="1355517523.000005")
    await slack.event(payload)
    await slack.event(payload, retry=1)
    await slack.event(payload, retry=2)
    [conv] = await conversations(slack.bot)
    full = await slack.bot.conversation(conv["id"])
    assert len(full["messages"]) == 1
    assert len(full["runs"]) == 1
    assert full["tags"] == ["hello"]


@pytest.mark.parametrize(
    "name",
    ["message_channel_join", "message_changed", "message_deleted", "message_bot_own", "reaction_added"],
)
async def test_non_content_events_are_acknowledged_and_ignored(slack: SlackSender, name: str) -> None:
    await slack.event(event_payload(name))
    assert await conversations(slack.bot) == []


async def test_our_own_messages_are_ignored(slack: SlackSender) -> None:
    # what Slack sends back after our chat.postMessage: our bot user, our bot id, no subtype
    await slack.message("message_channels", user="U0BOT0001", bot_id="B0BOT0001", text="Réponse de l'agent")
    assert await conversations(slack.bot) == []


async def test_content_subtypes_count(slack: SlackSender) -> None:
    await slack.message("message_channels_thread", subtype="thread_broadcast", ts="1482960137.003544")
    await slack.message("message_im", subtype="file_share", text="", files=[{"id": "F0S43PZDF", "name": "facture.pdf"}])
    await slack.message(
        "message_channels",
        subtype="bot_message",
        user=None,
        bot_id="B0OTHER",
        username="Shop alerts",
        text="Commande 42 bloquée",
    )
    convs = {c["type"]: c for c in await conversations(slack.bot)}
    assert len(await conversations(slack.bot)) == 3
    direct = await slack.bot.conversation(convs["direct"]["id"])
    assert direct["messages"][0]["text"] == "[file: facture.pdf]"
    names = {c["contact"]["name"] for c in await conversations(slack.bot)}
    assert "Shop alerts" in names


# --- the "Au revoir" story over Slack -------------------------------------------------------------


async def test_au_revoir_story(slack: SlackSender) -> None:
    answer = await slack.command('create "Au revoir" keywords="au revoir" resolve', user="UADMIN")
    assert answer["response_type"] == "ephemeral"
    assert answer["text"].startswith("Created automation #"), answer
    automation_id = (await slack.bot.api("GET", "/api/automations"))["items"][0]["id"]

    # the contact writes "Au revoir" first thing: resolved by the automation
    await slack.message("message_im", text="Au revoir !")
    [first] = await conversations(slack.bot)
    assert first["status"] == "resolved"
    assert first["resolved_by"] == f"automation:{automation_id}"

    # a new question opens a new conversation; an agent resolves it
    await slack.message("message_im", text="Bonjour, j'ai une question")
    second = next(c for c in await conversations(slack.bot) if c["status"] == "open")
    assert second["previous_id"] == first["id"]
    await slack.bot.api("POST", f"/api/conversations/{second['id']}/resolve", json={})

    # "Au revoir" after that starts a new conversation whose first message it is, resolved at once
    await slack.message("message_im", text="au-revoir 👋")
    convs = await conversations(slack.bot)
    assert len(convs) == 3
    third = next(c for c in convs if c["id"] not in (first["id"], second["id"]))
    assert third["previous_id"] == second["id"]
    assert third["status"] == "resolved"
    assert third["resolved_by"] == f"automation:{automation_id}"
    full = await slack.bot.conversation(third["id"])
    assert [m["text"] for m in full["messages"]] == ["au-revoir 👋"]


# --- /automation -----------------------------------------------------------------------------------


async def test_automation_create_by_an_admin_and_refusal_for_anyone_else(slack: SlackSender) -> None:
    refused = await slack.command('create "Au revoir" keywords="au revoir" resolve', user=CONTACT)
    assert refused == {
        "text": "Only inbox admins can manage automations.",
        "response_type": "ephemeral",
        "replace_original": False,
    }
    assert (await slack.bot.api("GET", "/api/automations"))["items"] == []

    created = await slack.command('create "Au revoir" keywords="au revoir" resolve', user="UADMIN")
    assert created["response_type"] == "ephemeral"
    assert '"Au revoir"' in created["text"] and "resolve" in created["text"]
    [automation] = (await slack.bot.api("GET", "/api/automations"))["items"]
    assert automation["name"] == "Au revoir"
    assert automation["actions"] == [{"type": "resolve", "reason": None}]
    # config ids need no lookup to be admins; users.info is asked once each, for the language only
    lookups = [(c.get("user"), c.get("include_locale")) for c in slack.api.of("users.info")]
    assert lookups == [(CONTACT, "1"), ("UADMIN", "1")]
    # the change is credited to the Slack user who made it, in its revision and the audit log
    [revision] = (await slack.bot.api("GET", f"/api/automations/{automation['id']}/revisions"))["items"]
    assert (revision["by"], revision["change"]) == ("slack:UADMIN", "created")
    [entry] = (await slack.bot.api("GET", "/api/audit"))["items"]
    assert (entry["actor"], entry["kind"]) == ("slack:UADMIN", "automation.created")


async def test_workspace_admins_and_owners_when_enabled(
    slack_api: SlackApiDouble, make_bot: MakeBot, db_url: str
) -> None:
    bot = await make_bot(slack_settings(db_url, slack_api, workspace_admins=True))
    slack = SlackSender(bot, slack_api)
    assert (await slack.command("tags add vip", user="UWSADMIN"))["text"].lower().count("vip") >= 1
    assert "Only inbox admins" not in (await slack.command("tags", user="UWSADMIN"))["text"]
    assert "Only inbox admins" not in (await slack.command("tags", user="UOWNER"))["text"]
    refused = await slack.command("tags add other", user="UPLAIN")
    assert refused["text"] == "Only inbox admins can manage automations."
    lookups = [c.get("user") for c in slack_api.of("users.info")]
    assert sorted(lookups) == ["UOWNER", "UPLAIN", "UWSADMIN"]  # one users.info each: cached


async def test_workspace_admins_are_not_admins_when_disabled(slack: SlackSender) -> None:
    refused = await slack.command("tags add vip", user="UWSADMIN")
    assert refused["text"] == "Only inbox admins can manage automations."


async def test_a_french_slack_admin_gets_french_replies(
    slack_api: SlackApiDouble, make_bot: MakeBot, db_url: str
) -> None:
    settings = slack_settings(db_url, slack_api)
    bot = await make_bot(
        settings.model_copy(update={"admins": settings.admins.model_copy(update={"slack": ["UFRADMIN"]})})
    )
    slack = SlackSender(bot, slack_api)
    created = await slack.command('create "Au revoir" keywords="au revoir, bye" resolve', user="UFRADMIN")
    assert created["text"] == (
        'Automatisation #1 "Au revoir" créée : quand un message contient l\'un de ces mots-clés '
        '"au revoir", "bye" → résoudre. Activée.'
    )
    unknown = await slack.command("create VIP keywords=vip tags=vip", user="UFRADMIN")
    assert unknown["text"] == 'étiquette "vip" inconnue — créez-la avec /automation tags add vip'
    assert (await bot.api("GET", "/api/automations"))["items"][0]["name"] == "Au revoir"
    # users.info was asked with include_locale, once: the answer is cached
    lookups = slack_api.of("users.info")
    assert [(c.get("user"), c.get("include_locale")) for c in lookups] == [("UFRADMIN", "1")]


async def test_a_refusal_speaks_the_callers_language(slack: SlackSender) -> None:
    refused = await slack.command("tags add vip", user="UFRADMIN")  # French locale, not an admin
    assert refused["text"] == ("Seuls les administrateurs de la boîte de réception peuvent gérer les automatisations.")
    assert (await slack.bot.api("GET", "/api/tags"))["items"] == []


@pytest.mark.parametrize(("org_language", "expected"), [("en", "Tags: vip"), ("fr", "Étiquettes : vip")])
async def test_a_locale_we_do_not_have_gets_the_organizations_language(
    slack_api: SlackApiDouble, make_bot: MakeBot, db_url: str, org_language: str, expected: str
) -> None:
    settings = slack_settings(db_url, slack_api)
    settings = settings.model_copy(
        update={
            "admins": settings.admins.model_copy(update={"slack": ["UDEADMIN"]}),
            "organization": settings.organization.model_copy(update={"language": org_language}),
        }
    )
    slack = SlackSender(await make_bot(settings), slack_api)
    await slack.command("tags add vip", user="UDEADMIN")  # German locale: not one of ours
    assert (await slack.command("tags", user="UDEADMIN"))["text"] == expected


async def test_a_failed_locale_lookup_falls_back_quietly_to_the_organizations_language(
    slack_api: SlackApiDouble, make_bot: MakeBot, db_url: str
) -> None:
    settings = slack_settings(db_url, slack_api)
    settings = settings.model_copy(
        update={
            "admins": settings.admins.model_copy(update={"slack": ["UFRADMIN"]}),
            "organization": settings.organization.model_copy(update={"language": "en"}),
        }
    )
    slack = SlackSender(await make_bot(settings), slack_api)
    slack_api.fail_next("users.info", "ratelimited", status=429, headers={"Retry-After": "30"})
    assert (await slack.command("tags", user="UFRADMIN"))["text"] == (
        "No tags yet — add one with /automation tags add NAME"
    )
    # not cached: the next command asks again and answers in French
    assert (await slack.command("tags", user="UFRADMIN"))["text"].startswith("Aucune étiquette")
    assert len(slack_api.of("users.info")) == 2


async def test_expired_response_url_falls_back_to_post_ephemeral(slack: SlackSender) -> None:
    slack.api.response_status = 404
    await slack.command("help", user="UADMIN", channel_id="C2147483705")
    [call] = await slack.api.wait_for("chat.postEphemeral")
    assert call.get("channel") == "C2147483705"
    assert call.get("user") == "UADMIN"
    assert "/automation list" in call.get("text")


# --- replies from the API ------------------------------------------------------------------------


async def test_api_reply_goes_to_the_thread(slack: SlackSender) -> None:
    await slack.message("message_channels", ts="1355517523.000005")
    await slack.message("message_channels_thread", ts="1482960137.003543")
    [conv] = await conversations(slack.bot)
    await slack.bot.api(
        "POST",
        f"/api/conversations/{conv['id']}/messages",
        json={"text": "On regarde <ça> & revient"},
        expect=201,
    )
    await slack.bot.state.outbox.drain()
    [call] = await slack.api.wait_for("chat.postMessage")
    assert call.token == BOT_TOKEN
    assert call.get("channel") == "C024BE91L"
    assert call.get("thread_ts") == "1355517523.000005"
    assert call.get("text") == "On regarde &lt;ça&gt; &amp; revient"
    full = await slack.bot.conversation(conv["id"])
    assert [m["direction"] for m in full["messages"]] == ["inbound", "inbound", "outbound"]


async def test_api_reply_to_a_dm_goes_to_the_dm(slack: SlackSender) -> None:
    await slack.message("message_im")
    [conv] = await conversations(slack.bot)
    await slack.bot.api("POST", f"/api/conversations/{conv['id']}/messages", json={"text": "Bonjour Marie"}, expect=201)
    await slack.bot.state.outbox.drain()
    [call] = await slack.api.wait_for("chat.postMessage")
    assert call.get("channel") == "D024BE91L"
    assert call.get("thread_ts") is None
    assert call.get("text") == "Bonjour Marie"


async def test_rate_limited_reply_is_retried_by_the_outbox(slack: SlackSender) -> None:
    await slack.message("message_im")
    [conv] = await conversations(slack.bot)
    slack.api.fail_next("chat.postMessage", "ratelimited", status=429, headers={"Retry-After": "0"})
    await slack.bot.api("POST", f"/api/conversations/{conv['id']}/messages", json={"text": "Bonjour"}, expect=201)
    calls = await slack.api.wait_for("chat.postMessage", 2)  # the outbox worker retries after the 429
    assert [c.get("text") for c in calls] == ["Bonjour", "Bonjour"]


async def _target(slack: SlackSender) -> tuple[SlackConnector, OutboundTarget]:
    connector = slack.bot.state.connectors["slack"]
    assert isinstance(connector, SlackConnector)
    target = OutboundTarget(
        conversation_id=1,
        message_id=1,
        thread_key="C024BE91L:1355517523.000005",
        contact_id=CONTACT,
        contact_name="Marie",
        reply_to={"channel": "C024BE91L", "thread_ts": "1355517523.000005"},
    )
    return connector, target


async def test_send_maps_rate_limits_to_retry_later_with_retry_after(slack: SlackSender) -> None:
    connector, target = await _target(slack)
    slack.api.fail_next("chat.postMessage", "ratelimited", status=429, headers={"Retry-After": "7"})
    with pytest.raises(RetryLater) as info:
        await connector.send(target, "Bonjour")
    assert info.value.retry_after == 7
    slack.api.fail_next("chat.postMessage", "internal_error", status=500)
    with pytest.raises(RetryLater):
        await connector.send(target, "Bonjour")
    assert (await connector.send(target, "Bonjour")).startswith("C024BE91L:")


@pytest.mark.parametrize("error", ["channel_not_found", "not_in_channel", "invalid_auth"])
async def test_send_maps_permanent_errors(slack: SlackSender, error: str) -> None:
    connector, target = await _target(slack)
    slack.api.fail_next("chat.postMessage", error)
    with pytest.raises(PermanentFailure, match=error):
        await connector.send(target, "Bonjour")


async def test_send_when_slack_is_unreachable_retries_later(slack: SlackSender, unused_tcp_port: int) -> None:
    connector, target = await _target(slack)
    connector.client.base_url = f"http://127.0.0.1:{unused_tcp_port}/api/"
    with pytest.raises(RetryLater, match="unreachable"):
        await connector.send(target, "Bonjour")


# --- configuration ---------------------------------------------------------------------------------


async def test_a_bad_bot_token_leaves_the_channel_off(
    slack_api: SlackApiDouble, make_bot: MakeBot, db_url: str
) -> None:
    slack_api.token = "xoxb-some-other-token"
    bot = await make_bot(slack_settings(db_url, slack_api))
    assert "slack" not in bot.state.connectors
    assert "invalid_auth" in bot.state.left_off["slack"]
    assert "shop" in bot.state.connectors


async def test_a_second_slack_channel_gets_its_own_path(
    slack_api: SlackApiDouble, make_bot: MakeBot, db_url: str
) -> None:
    eu_channel = {
        "name": "slack-eu",
        "kind": "slack",
        "bot_token_env": "TEST_SLACK_BOT_TOKEN",
        "signing_secret_env": "TEST_SLACK_EU_SIGNING_SECRET",
        "api_url": slack_api.api_url,
    }
    settings = slack_settings(db_url, slack_api, more=[eu_channel], env={"TEST_SLACK_EU_SIGNING_SECRET": EU_SECRET})
    bot = await make_bot(settings)
    eu = SlackSender(bot, slack_api, path="/slack/slack-eu/events", secret=EU_SECRET)
    await eu.message("message_im", text="Hallo")
    # each path checks its own channel's signing secret
    await SlackSender(bot, slack_api, path="/slack/slack-eu/events").message("message_im", expect=401)
    await SlackSender(bot, slack_api, path="/slack/slack/events").message("message_im", text="Bonjour")
    await SlackSender(bot, slack_api).message("message_im", text="Bonjour")
    items = (await bot.api("GET", "/api/conversations"))["items"]
    assert sorted((c["channel"], c["thread"]) for c in items) == [
        ("slack", "D024BE91L"),
        ("slack-eu", "D024BE91L"),
    ]
    texts = [m["text"] for c in items for m in (await bot.conversation(c["id"]))["messages"]]
    assert sorted(texts) == ["Bonjour", "Bonjour", "Hallo"]


async def test_socket_mode_channel_builds_without_connecting_and_has_no_http_path(
    slack_api: SlackApiDouble, make_bot: MakeBot, db_url: str
) -> None:
    settings = slack_settings(
        db_url,
        slack_api,
        app_token_env="TEST_SLACK_APP_TOKEN",
        env={"TEST_SLACK_APP_TOKEN": "xapp-1-A0PNCHHK2-1234-abcd"},
    )
    from bot.app import build_app

    app = build_app(settings)  # construction only: the network guard would fail any connection
    assert slack_api.calls == []
    paths = {r.canonical for r in app.router.resources()}
    assert not [p for p in paths if p.startswith("/slack")], paths  # Socket Mode serves no HTTP path
    assert "/webhooks/{channel}" in paths or any(p.startswith("/webhooks") for p in paths)  # the others do


# --- normalization (pure) ------------------------------------------------------------------------


def test_thread_keys_follow_the_spec() -> None:
    assert thread_of({"channel": "D1", "ts": "1.1", "channel_type": "im"}) == ("D1", None)
    assert thread_of({"channel": "D1", "ts": "2.2", "thread_ts": "1.1", "channel_type": "im"}) == (
        "D1:1.1",
        "1.1",
    )
    assert thread_of({"channel": "C1", "ts": "1.1", "channel_type": "channel"}) == ("C1:1.1", "1.1")
    assert thread_of({"channel": "C1", "ts": "2.2", "thread_ts": "1.1", "channel_type": "channel"}) == (
        "C1:1.1",
        "1.1",
    )


def test_to_message_uses_channel_and_ts_as_the_platform_id() -> None:
    event = load_payload("slack/message_channels_thread.json")["event"]
    assert skip_reason(event, None) is None
    from bot.domain import ConversationType

    msg = to_message(event, channel_name="slack", type=ConversationType.PUBLIC, contact_name="Marie")
    assert msg.platform_message_id == "C024BE91L:1482960137.003543"
    assert msg.thread_key == "C024BE91L:1355517523.000005"
    assert msg.reply_to == {"channel": "C024BE91L", "thread_ts": "1355517523.000005"}
    assert msg.sent_at is not None and msg.sent_at.year == 2016


async def test_socket_mode_receives_events_and_commands(
    slack_api: SlackApiDouble, make_bot: MakeBot, db_url: str
) -> None:
    settings = slack_settings(
        db_url, slack_api, app_token_env="TEST_SLACK_APP_TOKEN", env={"TEST_SLACK_APP_TOKEN": APP_TOKEN}
    )
    bot = await make_bot(settings)
    assert "slack" in bot.state.connectors, bot.state.left_off
    await slack_api.wait_connected()
    [opened] = slack_api.of("apps.connections.open")
    assert opened.token == APP_TOKEN

    await slack_api.push("events_api", event_payload("message_im", text="Bonjour via Socket Mode"))
    [conv] = await conversations(bot)  # acknowledged only once stored
    assert (conv["type"], conv["thread"]) == ("direct", "D024BE91L")

    form = dict(load_payload("slack/slash_command.json"))
    form.update(text="help", user_id="UADMIN", response_url=slack_api.response_url("socket"))
    await slack_api.push("slash_commands", form)
    [(key, answer)] = await slack_api.wait_for_responses()
    assert key == "socket" and answer["response_type"] == "ephemeral"

    resp = await bot.client.post("/slack/events", data=b"{}")
    assert resp.status == 404  # no HTTP path for a Socket Mode channel


def test_manifest_subscribes_what_the_connector_handles() -> None:
    from pathlib import Path

    manifest = (Path(__file__).parent.parent / "slack" / "manifest.yml").read_text(encoding="utf-8")
    for needed in (
        "message.im",
        "message.mpim",
        "message.channels",
        "message.groups",
        f"command: {COMMAND}",
        "chat:write",
        "users:read",
        "commands",
        "im:history",
        "mpim:history",
        "channels:history",
        "groups:history",
        "/slack/events",
    ):
        assert needed in manifest, needed
    # the /automation create form and the list's buttons post to the same URL
    interactivity = manifest.split("\n  interactivity:", 1)[1].splitlines()[1:3]
    assert [line.split("#")[0].strip() for line in interactivity] == [
        "is_enabled: true",
        "request_url: https://inbox.example.com/slack/events",
    ]


# --- odd bytes on the wire: 400 / 401, never 500 ---------------------------------------------------


async def raw_post(bot: Bot, path: str, head: list[bytes], body: bytes) -> int:
    """POST exactly these header lines and body bytes (no client library tidying them up)."""
    import asyncio

    server = bot.client.server
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        lines = [
            b"POST " + path.encode() + b" HTTP/1.1",
            b"Host: 127.0.0.1",
            b"Content-Length: " + str(len(body)).encode(),
            b"Connection: close",
            *head,
        ]
        writer.write(b"\r\n".join(lines) + b"\r\n\r\n" + body)
        await writer.drain()
        status_line = await reader.readline()
        await reader.read()
        return int(status_line.split()[1])
    finally:
        writer.close()
        await writer.wait_closed()


def _head(headers: dict[str, str]) -> list[bytes]:
    return [f"{k}: {v}".encode() for k, v in headers.items()]


async def test_undecodable_bodies_and_odd_signature_headers_are_400_or_401(slack: SlackSender) -> None:
    bot = slack.bot
    good = json.dumps(event_payload("message_im")).encode()

    # A body that is not UTF-8, correctly signed over its raw bytes: no Slack request looks like this.
    latin = good.replace(b"Hello", "Héllo".encode("latin-1"))
    head = _head(signed(latin, content_type="application/json"))
    assert await raw_post(bot, "/slack/events", head, latin) == 400

    # An unknown charset is ignored: Slack's bodies are UTF-8 and the signature covers the bytes.
    head = _head(signed(good, content_type="application/json; charset=x-no-such-charset"))
    assert await raw_post(bot, "/slack/events", head, good) == 200
    head = _head(signed(good, content_type="application/json; charset=x-no-such-charset", secret="wrong"))
    assert await raw_post(bot, "/slack/events", head, good) == 401

    ts = str(int(time.time()))
    sig = slack_signature(SIGNING_SECRET, ts, good)
    for timestamp, signature in [
        (ts.encode(), sig.encode()[:-2] + "é".encode()),  # non-ASCII bytes in the signature
        (ts.encode(), sig.encode()[:-1] + b"\xff"),  # not even UTF-8
        ("١٧٠٠٠٠٠٠٠٠".encode(), sig.encode()),  # digits, but not ASCII ones
        (b"yesterday", sig.encode()),
        (ts.encode() + b"\xe9", sig.encode()),
    ]:
        head = [
            b"Content-Type: application/json",
            b"X-Slack-Request-Timestamp: " + timestamp,
            b"X-Slack-Signature: " + signature,
        ]
        assert await raw_post(bot, "/slack/events", head, good) == 401, (timestamp, signature)
    [conv] = await conversations(bot)  # only the one correctly signed request
    assert len((await bot.conversation(conv["id"]))["messages"]) == 1


# --- our own messages while auth.test cannot answer ------------------------------------------------


async def test_own_messages_are_held_back_while_auth_test_fails(
    slack_api: SlackApiDouble, make_bot: MakeBot, db_url: str
) -> None:
    slack_api.fail_next("auth.test", "internal_error", status=503, times=3)  # start + two events
    bot = await make_bot(slack_settings(db_url, slack_api))
    assert "slack" in bot.state.connectors, bot.state.left_off  # a network problem does not leave it off
    slack = SlackSender(bot, slack_api)

    # Slack echoes our reply back as a message event: while we cannot tell, it is not stored...
    own = event_payload("message_channels", user="U0BOT0001", bot_id="B0BOT0001", text="Réponse de l'agent")
    await slack.event(own, expect=503)
    # ...a contact's message (no bot_id) is stored as usual.
    await slack.message("message_im", text="Bonjour")
    assert [c["type"] for c in await conversations(bot)] == ["direct"]

    # Slack's retry, once auth.test answers again: recognised as ours, acknowledged, not stored.
    await slack.event(own, retry=1)
    assert [c["type"] for c in await conversations(bot)] == ["direct"]
    assert len(slack_api.of("auth.test")) == 4


async def test_name_and_channel_lookups_run_side_by_side(slack: SlackSender) -> None:
    # Each lookup is answered only once the other one is in flight too: one after the other, the
    # first would run out of its time and the message would lose the contact's name or the type.
    slack.api.together("users.info", "conversations.info")
    await slack.message("message_groups", channel_type=None)
    [conv] = await conversations(slack.bot)
    assert (conv["type"], conv["contact"]["name"]) == ("group", "Marie")
    assert len(slack.api.of("users.info")) == len(slack.api.of("conversations.info")) == 1


# --- callbacks we do not handle: acknowledged, never bolt's 404 -------------------------------------

APP_RATE_LIMITED = {
    "token": "Jhj5dZrVaK7ZwHHjRyZWjbDl",
    "type": "app_rate_limited",
    "team_id": "T123ABC456",
    "minute_rate_limited": 1518467820,
    "api_app_id": "A123ABC456",
}


async def test_app_rate_limited_is_acknowledged_with_200(slack: SlackSender) -> None:
    # Slack disables the event subscriptions of an app that fails 5 % of its deliveries.
    assert await slack.event(APP_RATE_LIMITED) == ""
    assert await conversations(slack.bot) == []
    # the signature is still checked first
    await slack.event(APP_RATE_LIMITED, secret="wrong", expect=401)


@pytest.mark.parametrize(
    "body",
    [
        {"type": "some_future_callback", "team_id": "T123ABC456"},
        {"type": "event_callback", "team_id": "T123ABC456", "event": {"type": "app_home_opened", "user": "U1"}},
    ],
    ids=["unknown-type", "unsubscribed-event"],
)
async def test_other_signed_callbacks_we_do_not_handle_get_200(slack: SlackSender, body: dict[str, Any]) -> None:
    payload = {"token": "t", "api_app_id": "A123ABC456", "event_id": "Ev" + uuid.uuid4().hex[:10], **body}
    await slack.event(payload)


async def test_an_interaction_we_do_not_handle_gets_200(slack: SlackSender) -> None:
    action = {"action_id": "approve", "block_id": "b1", "type": "button", "value": "yes", "action_ts": "1.2"}
    interaction = {"type": "block_actions", "team": {"id": "T123ABC456"}, "user": {"id": CONTACT}, "actions": [action]}
    body = urlencode({"payload": json.dumps(interaction)}).encode()
    await slack.post(body, signed(body, content_type="application/x-www-form-urlencoded"))


def test_callback_type_names_what_arrived() -> None:
    assert callback_type(json.dumps(APP_RATE_LIMITED)) == "app_rate_limited"
    assert callback_type(json.dumps(event_payload("reaction_added"))) == "event_callback/reaction_added"
    assert callback_type(urlencode(load_payload("slack/slash_command.json"))) == "/automation"
    assert callback_type(urlencode({"payload": json.dumps({"type": "view_submission"})})) == "view_submission"
    assert callback_type("not json, not a form") == "unknown"
    assert callback_type("[1, 2]") == "unknown"


async def test_a_store_failure_is_a_500_so_slack_delivers_the_event_again(slack: SlackSender) -> None:
    from tortoise import connections

    db = connections.get("default")
    await db.execute_script("ALTER TABLE messages RENAME TO messages_away")  # every insert fails
    try:
        await slack.message("message_im", text="Bonjour", expect=500)
    finally:
        await db.execute_script("ALTER TABLE messages_away RENAME TO messages")
    await slack.message("message_im", text="Bonjour")  # Slack's retry
    [conv] = await conversations(slack.bot)
    assert [m["text"] for m in (await slack.bot.conversation(conv["id"]))["messages"]] == ["Bonjour"]


async def test_a_signed_body_bolt_cannot_read_is_a_400(slack: SlackSender) -> None:
    for payload in ({"type": "event_callback", "event": "not an object"}, [1, 2]):
        answer = await slack.event(payload, expect=400)  # type: ignore[arg-type]
        assert "Error" not in answer and "__" not in answer
    await slack.event([1, 2], secret="wrong", expect=401)  # type: ignore[arg-type]
    await slack.post(b"{", signed(b"{", content_type="application/json"), expect=400)
