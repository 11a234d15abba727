"""When the store fails: Slack's and Telegram's webhooks answer 5xx (so the platform delivers the
event again) and the redelivery, once the store is back, is stored once and fires automations once;
`/healthz` answers 503 while the store does not answer, and 200 again once it does.

The store is made to fail for real: the table the write (or the health query) needs is renamed
away on the running store, then back."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from tortoise import connections

from bot.config import Settings
from tests.conftest import STORES, Bot, make_settings
from tests.doubles.slack_api import SlackApiDouble
from tests.doubles.telegram_api import BOT_TOKEN as TG_TOKEN
from tests.doubles.telegram_api import TelegramApiDouble
from tests.test_slack import SlackSender, event_payload, slack_settings
from tests.test_telegram import payload as tg_payload

MakeBot = Callable[[Settings], Awaitable[Bot]]
TG_SECRET = "tg-secret"
pytestmark = pytest.mark.parametrize("db_url", STORES, indirect=True)


@asynccontextmanager
async def table_away(table: str) -> AsyncIterator[None]:
    """Every query on `table` fails until the block ends (the running app's own connection)."""
    db = connections.get("default")
    await db.execute_script(f"ALTER TABLE {table} RENAME TO {table}_away")
    try:
        yield
    finally:
        await db.execute_script(f"ALTER TABLE {table}_away RENAME TO {table}")


async def setup_tag_rule(bot: Bot) -> None:
    await bot.api("POST", "/api/tags", json={"name": "hello"}, expect=201)
    rule = {"name": "Hi", "keywords": ["bonjour", "hello"], "actions": [{"type": "tag", "tag": "hello"}]}
    await bot.api("POST", "/api/automations", json=rule, expect=201)


async def only_conversation(bot: Bot) -> dict[str, Any]:
    (conv,) = (await bot.api("GET", "/api/conversations"))["items"]
    return await bot.conversation(conv["id"])


async def test_slack_store_failure_is_5xx_and_the_redelivery_is_stored_once(
    aiohttp_server: Any, make_bot: MakeBot, db_url: str
) -> None:
    api = SlackApiDouble()
    api.url = str((await aiohttp_server(api.app())).make_url("")).rstrip("/")
    bot = await make_bot(slack_settings(db_url, api))
    await setup_tag_rule(bot)
    slack = SlackSender(bot, api)
    event = event_payload("message_im", text="Bonjour", ts="1764064800.000100", event_ts="1764064800.000100")
    body = json.dumps(event).encode()
    async with table_away("messages"):
        resp = await bot.client.post("/slack/events", data=body, headers=_slack_headers(body))
        assert resp.status >= 500, await resp.text()
        assert "Traceback" not in await resp.text()
    assert (await bot.api("GET", "/api/conversations"))["items"] == []  # nothing half-written
    await slack.event(event, retry=1)  # Slack's redelivery, the same event
    await slack.event(event, retry=2)
    conv = await only_conversation(bot)
    assert [m["text"] for m in conv["messages"]] == ["Bonjour"]
    assert len(conv["runs"]) == 1 and conv["tags"] == ["hello"]


def _slack_headers(body: bytes) -> dict[str, str]:
    from tests.test_slack import signed

    return signed(body, content_type="application/json")


async def test_telegram_store_failure_is_5xx_and_the_redelivery_is_stored_once(
    aiohttp_server: Any, make_bot: MakeBot, db_url: str
) -> None:
    api = TelegramApiDouble()
    api.base_url = str((await aiohttp_server(api.app())).make_url("/bot"))
    channel = {
        "name": "support-tg",
        "kind": "telegram",
        "token_env": "TG_TOKEN",
        "api_url": api.base_url,
        "webhook_secret_env": "TG_SECRET",
    }
    bot = await make_bot(make_settings(db_url, channels=[channel], env={"TG_TOKEN": TG_TOKEN, "TG_SECRET": TG_SECRET}))
    await setup_tag_rule(bot)
    update = tg_payload("private_text")
    update["message"]["text"] = "Bonjour"
    body = json.dumps(update).encode()
    headers = {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": TG_SECRET}
    async with table_away("messages"):
        resp = await bot.client.post("/telegram/support-tg", data=body, headers=headers)
        assert resp.status >= 500, await resp.text()
    assert (await bot.api("GET", "/api/conversations"))["items"] == []
    for _ in range(2):  # Telegram sends the update again later (and maybe once more)
        resp = await bot.client.post("/telegram/support-tg", data=body, headers=headers)
        assert resp.status == 200, await resp.text()
    conv = await only_conversation(bot)
    assert [m["text"] for m in conv["messages"]] == ["Bonjour"]
    assert len(conv["runs"]) == 1 and conv["tags"] == ["hello"]


async def test_healthz_is_503_while_the_store_does_not_answer(make_bot: MakeBot, db_url: str) -> None:
    bot = await make_bot(make_settings(db_url))
    assert (await bot.client.get("/healthz")).status == 200
    async with table_away("key_values"):
        resp = await bot.client.get("/healthz")
        assert resp.status == 503
        answer = await resp.json()
        assert answer["store"] != "ok" and "Traceback" not in json.dumps(answer)
    resp = await bot.client.get("/healthz")
    assert (resp.status, await resp.json()) == (200, {"status": "ok", "store": "ok"})
