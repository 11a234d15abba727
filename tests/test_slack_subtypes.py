"""Which Slack messages count: `/me` messages (`me_message`) are stored and fire automations;
`message_replied` (Slack's notice that a thread got a reply) and any hidden message are
acknowledged and ignored. Documented payloads, signed, through the running app's /slack/events."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from bot.config import Settings
from tests.conftest import STORES, Bot
from tests.doubles.slack_api import SlackApiDouble
from tests.test_slack import SlackSender, event_payload, slack_settings

MakeBot = Callable[[Settings], Awaitable[Bot]]
pytestmark = pytest.mark.parametrize("db_url", STORES, indirect=True)


@pytest.fixture
async def slack(aiohttp_server: Any, make_bot: MakeBot, db_url: str) -> SlackSender:
    api = SlackApiDouble()
    api.url = str((await aiohttp_server(api.app())).make_url("")).rstrip("/")
    bot = await make_bot(slack_settings(db_url, api))
    assert "slack" in bot.state.connectors, bot.state.left_off
    await bot.api("POST", "/api/tags", json={"name": "busy"}, expect=201)
    rule = {"name": "Busy", "keywords": ["thing"], "actions": [{"type": "tag", "tag": "busy"}]}
    await bot.api("POST", "/api/automations", json=rule, expect=201)
    return SlackSender(bot, api)


async def slack_conversations(bot: Bot) -> list[dict[str, Any]]:
    return list((await bot.api("GET", "/api/conversations?channel=slack"))["items"])


async def test_me_message_is_stored_and_fires_automations(slack: SlackSender) -> None:
    await slack.event(event_payload("message_me"))
    (conv,) = await slack_conversations(slack.bot)
    full = await slack.bot.conversation(conv["id"])
    assert [m["text"] for m in full["messages"]] == ["is doing that thing"]
    assert full["tags"] == ["busy"] and len(full["runs"]) == 1
    assert (conv["type"], conv["contact"]["id"]) == ("direct", "U2147483697")


async def test_message_replied_is_acknowledged_and_ignored(slack: SlackSender) -> None:
    # its inner message holds a keyword: were it read as a message, it would be stored and tagged
    payload = event_payload("message_replied")
    payload["event"]["message"]["text"] = "the thing was there"
    await slack.event(payload)
    assert await slack_conversations(slack.bot) == []


@pytest.mark.parametrize("subtype", [None, "me_message", "thread_broadcast"])
async def test_hidden_messages_are_acknowledged_and_ignored(slack: SlackSender, subtype: str | None) -> None:
    await slack.message("message_im", text="that thing again", hidden=True, subtype=subtype)
    assert await slack_conversations(slack.bot) == []
    await slack.message("message_im", text="that thing again", subtype=subtype)  # the same, not hidden: counts
    assert len(await slack_conversations(slack.bot)) == 1
