"""Replies that the platform refuses for now are tried again: after the wait that Slack
(`Retry-After`), Telegram (`retry_after`) or a webhook's reply_url (`Retry-After` on a 429) asked
for — the second attempt comes no sooner — and, for a webhook reply_url, also after a network error.

The outbox's own backoff in these tests is 0.05–0.2 s, so a second attempt sooner than the platform's
wait (2 s) means the wait was ignored. Only a lower bound is asserted: a slow machine cannot fail it."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from bot.config import Settings
from tests.conftest import STORES, Bot, eventually, make_settings
from tests.doubles.slack_api import SlackApiDouble
from tests.doubles.telegram_api import BOT_TOKEN as TG_TOKEN
from tests.doubles.telegram_api import TelegramApiDouble
from tests.signing import signed_by
from tests.test_slack import SlackSender, slack_settings
from tests.test_telegram import payload as tg_payload
from tests.test_telegram import post as tg_post

MakeBot = Callable[[Settings], Awaitable[Bot]]
WAIT = 2  # seconds the platform asks for
pytestmark = pytest.mark.parametrize("db_url", STORES, indirect=True)


async def reply(bot: Bot, cid: int, text: str) -> int:
    msg = await bot.api("POST", f"/api/conversations/{cid}/messages", json={"text": text}, expect=201)
    return int(msg["id"])


async def delivered(bot: Bot, cid: int, message_id: int) -> None:
    async def done() -> bool:
        return message_id in await bot.delivered(cid)

    await eventually(done, f"reply {message_id} delivered", tries=1500)  # up to ~30 s


# --- Slack -----------------------------------------------------------------------------------------


@pytest.fixture
async def slack(aiohttp_server: Any, make_bot: MakeBot, db_url: str) -> SlackSender:
    api = SlackApiDouble()
    api.url = str((await aiohttp_server(api.app())).make_url("")).rstrip("/")
    bot = await make_bot(slack_settings(db_url, api))
    assert "slack" in bot.state.connectors, bot.state.left_off
    return SlackSender(bot, api)


async def test_slack_rate_limit_waits_for_retry_after(slack: SlackSender) -> None:
    await slack.message("message_im")
    (conv,) = (await slack.bot.api("GET", "/api/conversations?channel=slack"))["items"]
    slack.api.fail_next("chat.postMessage", "ratelimited", status=429, headers={"Retry-After": str(WAIT)})
    mid = await reply(slack.bot, conv["id"], "Bonjour")
    await delivered(slack.bot, conv["id"], mid)
    first, second = slack.api.of("chat.postMessage")
    assert second.at - first.at >= WAIT - 0.1, f"retried {second.at - first.at:.2f} s after a 429 asking {WAIT} s"


# --- Telegram --------------------------------------------------------------------------------------


@pytest.fixture
async def tg(aiohttp_server: Any, make_bot: MakeBot, db_url: str) -> tuple[Bot, TelegramApiDouble]:
    api = TelegramApiDouble()
    api.base_url = str((await aiohttp_server(api.app())).make_url("/bot"))
    channel = {
        "name": "support-tg",
        "kind": "telegram",
        "token_env": "TG_TOKEN",
        "api_url": api.base_url,
        "webhook_secret_env": "TG_SECRET",
    }
    env = {"TG_TOKEN": TG_TOKEN, "TG_SECRET": "tg-secret"}
    bot = await make_bot(make_settings(db_url, channels=[channel], env=env))
    return bot, api


@pytest.mark.filterwarnings("ignore:.*retry_after.*will be of type:telegram.warnings.PTBDeprecationWarning")
async def test_telegram_flood_control_waits_for_retry_after(tg: tuple[Bot, TelegramApiDouble]) -> None:
    bot, api = tg
    await tg_post(bot, tg_payload("private_text"), secret="tg-secret", channel="support-tg")
    (conv,) = (await bot.api("GET", "/api/conversations"))["items"]
    api.fail_next(
        "sendMessage",
        status=429,
        description=f"Too Many Requests: retry after {WAIT}",
        parameters={"retry_after": WAIT},
    )
    mid = await reply(bot, conv["id"], "Patience")
    await delivered(bot, conv["id"], mid)
    first, second = [c for c in api.calls if c.method == "sendMessage"]
    assert second.at - first.at >= WAIT - 0.1, f"retried {second.at - first.at:.2f} s after retry_after={WAIT}"


# --- webhook reply_url -----------------------------------------------------------------------------


class ReplyEndpoint:
    """The integrator's reply_url: answers the statuses it is given (then 200), notes when."""

    def __init__(self, answers: list[tuple[int, dict[str, str]]]) -> None:
        self.answers = answers
        self.received: list[tuple[float, dict[str, str], bytes]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append((time.monotonic(), dict(request.headers), await request.read()))
        status, headers = self.answers.pop(0) if self.answers else (200, {})
        return web.json_response({"ok": status == 200}, status=status, headers=headers)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/replies", self.handle)
        return app


def webhook_settings(db_url: str, reply_url: str) -> Settings:
    channel = {"name": "shop", "kind": "webhook", "secret_env": "TEST_SHOP_SECRET", "reply_url": reply_url}
    return make_settings(db_url, channels=[channel])


async def test_webhook_reply_429_waits_for_retry_after(make_bot: MakeBot, db_url: str, aiohttp_server: Any) -> None:
    endpoint = ReplyEndpoint([(429, {"Retry-After": str(WAIT)})])
    server = await aiohttp_server(endpoint.app())
    bot = await make_bot(webhook_settings(db_url, str(server.make_url("/replies"))))
    cid = (await bot.webhook("hello"))["conversation_id"]
    mid = await reply(bot, cid, "One moment")
    await delivered(bot, cid, mid)
    (t1, _, body1), (t2, headers2, body2) = endpoint.received
    assert t2 - t1 >= WAIT - 0.1, f"retried {t2 - t1:.2f} s after a 429 asking {WAIT} s"
    assert body1 == body2 and json.loads(body2)["text"] == "One moment"
    assert signed_by("shop-secret-abc", headers2, body2)
    (job,) = (await bot.api("GET", f"/api/outbox?conversation_id={cid}"))["items"]
    assert (job["status"], job["attempts"]) == ("done", 1)


async def test_webhook_reply_429_without_retry_after_is_retried(
    make_bot: MakeBot, db_url: str, aiohttp_server: Any
) -> None:
    endpoint = ReplyEndpoint([(429, {}), (429, {})])
    server = await aiohttp_server(endpoint.app())
    bot = await make_bot(webhook_settings(db_url, str(server.make_url("/replies"))))
    cid = (await bot.webhook("hello"))["conversation_id"]
    await delivered(bot, cid, await reply(bot, cid, "One moment"))
    assert len(endpoint.received) == 3


async def test_webhook_reply_after_a_network_error_is_retried_and_delivered_once(
    make_bot: MakeBot, db_url: str, aiohttp_server: Any, unused_tcp_port: int
) -> None:
    """reply_url down (nothing listens: connection refused), then up: the reply arrives, once."""
    bot = await make_bot(webhook_settings(db_url, f"http://127.0.0.1:{unused_tcp_port}/replies"))
    cid = (await bot.webhook("hello"))["conversation_id"]
    mid = await reply(bot, cid, "One moment")

    async def refused() -> bool:
        items = (await bot.api("GET", f"/api/outbox?conversation_id={cid}"))["items"]
        return bool(items) and items[0]["attempts"] >= 1 and "unreachable" in (items[0]["last_error"] or "")

    await eventually(refused, "a failed attempt on the unreachable reply_url")
    endpoint = ReplyEndpoint([])
    await aiohttp_server(endpoint.app(), port=unused_tcp_port)
    await delivered(bot, cid, mid)
    await bot.state.outbox.drain()
    assert [json.loads(body)["message_id"] for _, _, body in endpoint.received] == [mid]
