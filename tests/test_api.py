"""The JSON API under /api, /healthz and /metrics, over HTTP as an integrator uses it."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from bot.store import repo
from tests.conftest import STORES, TOKEN, Bot, make_settings

MakeBot = Callable[..., Awaitable[Bot]]

CONVERSATION_KEYS = {
    "id", "channel", "type", "status", "thread", "contact", "topics", "tags", "resolution_reason",
    "resolved_by", "resolved_at", "previous_id", "created_at", "crm",
    "priority", "team", "assignee", "waiting_since",
}  # fmt: skip
DETAIL_KEYS = CONVERSATION_KEYS | {"messages", "runs", "events"}
MESSAGE_KEYS = {"id", "direction", "text", "tags", "sent_at", "author", "delivery"}
RUN_KEYS = {
    "id",
    "automation_id",
    "automation_name",
    "conversation_id",
    "message_id",
    "keywords",
    "actions",
    "revision",
    "created_at",
}
AUTOMATION_KEYS = {
    "id", "name", "keywords", "match", "actions", "channels", "types", "enabled", "created_at", "updated_at",
}  # fmt: skip


async def raw(bot: Bot, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {TOKEN}", **kwargs.pop("headers", {})}
    resp = await bot.client.request(method, path, headers=headers, **kwargs)
    return resp.status, await resp.json()


async def setup_labels(bot: Bot) -> None:
    for kind, name in (
        ("tags", "closing"),
        ("tags", "vip"),
        ("topics", "Sales"),
        ("reasons", "Contact left"),
    ):
        await bot.api("POST", f"/api/{kind}", json={"name": name}, expect=201)


async def list_conversations(bot: Bot, query: str = "") -> list[dict[str, Any]]:
    data = await bot.api("GET", f"/api/conversations{query}")
    assert data["next_cursor"] is None
    return data["items"]  # type: ignore[no-any-return]


# --- auth -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/conversations"),
        ("GET", "/api/conversations/1"),
        ("POST", "/api/conversations/1/resolve"),
        ("POST", "/api/conversations/1/reopen"),
        ("POST", "/api/conversations/1/messages"),
        ("GET", "/api/automations"),
        ("POST", "/api/automations"),
        ("GET", "/api/automations/1"),
        ("PATCH", "/api/automations/1"),
        ("DELETE", "/api/automations/1"),
        ("POST", "/api/automations/1/enable"),
        ("POST", "/api/automations/1/disable"),
        ("GET", "/api/automations/1/runs"),
        ("POST", "/api/automations/test"),
        ("GET", "/api/tags"),
        ("POST", "/api/topics"),
        ("DELETE", "/api/reasons/x"),
    ],
)
async def test_401_without_or_with_a_wrong_token(bot: Bot, method: str, path: str) -> None:
    for headers in (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": TOKEN},
        {"Authorization": "Bearer "},
    ):
        resp = await bot.client.request(method, path, headers=headers, json={"name": "x", "text": "x"})
        assert resp.status == 401, headers
        assert resp.headers["WWW-Authenticate"] == "Bearer"
        body = await resp.json()
        assert body["error"].startswith("missing or invalid bearer token")
    # the token is not accepted in a query string
    resp = await bot.client.request(method, f"{path}?token={TOKEN}&access_token={TOKEN}")
    assert resp.status == 401
    # nothing was created on the way
    assert (await bot.api("GET", "/api/topics"))["items"] == []
    assert (await bot.api("GET", "/api/automations"))["items"] == []


async def test_every_configured_token_works(bot: Bot) -> None:
    resp = await bot.client.get("/api/tags", headers={"Authorization": "Bearer other-token"})
    assert resp.status == 200
    resp = await bot.client.get("/api/tags", headers={"Authorization": f"bearer {TOKEN}"})
    assert resp.status == 200


async def test_no_tokens_configured_locks_the_api(make_bot: MakeBot, db_url: str) -> None:
    bot = await make_bot(make_settings(db_url, env={"TEST_API_TOKENS": ""}))
    resp = await bot.client.get("/api/tags", headers={"Authorization": "Bearer "})
    assert resp.status == 401
    resp = await bot.client.get("/api/tags", headers={"Authorization": f"Bearer {TOKEN}"})
    assert resp.status == 401


# --- conversations ------------------------------------------------------------------------------------


async def test_list_newest_first_and_paginated(bot: Bot) -> None:
    ids = [(await bot.webhook(f"hello {i}", contact=f"c-{i}"))["conversation_id"] for i in range(5)]
    assert len(set(ids)) == 5
    seen: list[int] = []
    cursor: str | None = None
    pages = 0
    while True:
        q = "?limit=2" + (f"&cursor={cursor}" if cursor else "")
        data = await bot.api("GET", f"/api/conversations{q}")
        assert set(data) == {"items", "next_cursor"}
        assert len(data["items"]) <= 2
        seen += [c["id"] for c in data["items"]]
        pages += 1
        cursor = data["next_cursor"]
        if cursor is None:
            break
        assert pages < 10
    assert pages == 3
    assert seen == sorted(ids, reverse=True)  # each once, newest first
    items = await list_conversations(bot)
    assert [c["id"] for c in items] == sorted(ids, reverse=True)
    assert all(set(c) == CONVERSATION_KEYS for c in items)


@pytest.mark.parametrize(
    "query",
    [
        "?limit=0",
        "?limit=201",
        "?limit=abc",
        "?limit=-1",
        "?cursor=garbage!",
        "?cursor=Zm9vOmJhcg",
        "?status=closed",
    ],
)
async def test_list_bad_parameters(bot: Bot, query: str) -> None:
    await bot.webhook("hello")
    status, body = await raw(bot, "GET", f"/api/conversations{query}")
    assert status == 400
    assert body["error"]


async def test_list_filters(bot: Bot) -> None:
    await setup_labels(bot)
    await bot.api(
        "POST",
        "/api/automations",
        json={
            "name": "Bye",
            "keywords": "bye",
            "actions": [{"type": "tag", "tag": "closing"}, {"type": "resolve"}],
        },
        expect=201,
    )
    await bot.api(
        "POST",
        "/api/automations",
        json={"name": "Sales", "keywords": ["price"], "actions": [{"type": "topic", "topic": "Sales"}]},
        expect=201,
    )
    bye = (await bot.webhook("bye", contact="c-1"))["conversation_id"]
    price = (await bot.webhook("what price?", contact="c-2"))["conversation_id"]
    other = (await bot.webhook("hello", contact="c-3", channel="support"))["conversation_id"]

    def ids(items: list[dict[str, Any]]) -> list[int]:
        return [c["id"] for c in items]

    assert ids(await list_conversations(bot, "?status=resolved")) == [bye]
    assert ids(await list_conversations(bot, "?status=open")) == [other, price]
    assert ids(await list_conversations(bot, "?channel=support")) == [other]
    assert ids(await list_conversations(bot, "?channel=shop")) == [price, bye]
    assert ids(await list_conversations(bot, "?topic=Sales")) == [price]
    assert ids(await list_conversations(bot, "?topic=sales")) == [price]
    assert ids(await list_conversations(bot, "?tag=closing")) == [bye]
    assert ids(await list_conversations(bot, "?tag=closing&status=open")) == []
    assert ids(await list_conversations(bot, "?channel=nope")) == []


async def test_conversation_detail_shape(bot: Bot) -> None:
    await setup_labels(bot)
    auto = await bot.api(
        "POST",
        "/api/automations",
        json={
            "name": "Au revoir",
            "keywords": "au revoir, bye",
            "actions": [
                {"type": "tag", "tag": "closing"},
                {"type": "topic", "topic": "Sales"},
                {"type": "resolve", "reason": "Contact left"},
            ],
        },
        expect=201,
    )
    first = await bot.webhook("Hello", contact="c-42", name="Marie", thread="t-1", type="group")
    second = await bot.webhook("Merci, au revoir !", contact="c-42", thread="t-1")
    assert second["conversation_id"] == first["conversation_id"]
    conv = await bot.conversation(first["conversation_id"])
    assert set(conv) == DETAIL_KEYS
    assert conv["id"] == first["conversation_id"]
    assert conv["channel"] == "shop"
    assert conv["type"] == "group"
    assert conv["status"] == "open"  # not the first message: no resolve
    assert conv["thread"] == "t-1"
    assert conv["contact"] == {"id": "c-42", "name": "Marie"}
    assert conv["topics"] == ["Sales"]
    assert conv["tags"] == ["closing"]
    assert (conv["resolution_reason"], conv["resolved_by"], conv["resolved_at"]) == (None, None, None)
    assert conv["previous_id"] is None
    assert conv["crm"] is None
    assert isinstance(conv["created_at"], str)
    assert [(m["direction"], m["text"], m["tags"]) for m in conv["messages"]] == [
        ("inbound", "Hello", []),
        ("inbound", "Merci, au revoir !", ["closing"]),
    ]
    assert all(set(m) == MESSAGE_KEYS for m in conv["messages"])
    assert [m["id"] for m in conv["messages"]] == [first["message_id"], second["message_id"]]
    (run,) = conv["runs"]
    assert set(run) == RUN_KEYS
    assert run["automation_id"] == auto["id"]
    assert run["automation_name"] == "Au revoir"
    assert run["conversation_id"] == conv["id"]
    assert run["message_id"] == second["message_id"]
    assert run["keywords"] == ["au revoir"]
    # the actions applied: not the first message, so no resolve
    assert run["actions"] == [{"type": "tag", "tag": "closing"}, {"type": "topic", "topic": "Sales"}]


async def test_conversation_not_found(bot: Bot) -> None:
    for path in ("/api/conversations/999", "/api/conversations/abc"):
        status, body = await raw(bot, "GET", path)
        assert status == 404
        assert body["error"].startswith("no such")
    for action in ("resolve", "reopen"):
        assert (await raw(bot, "POST", f"/api/conversations/999/{action}"))[0] == 404
    assert (await raw(bot, "POST", "/api/conversations/999/messages", json={"text": "hi"}))[0] == 404


async def test_resolve_reopen(bot: Bot) -> None:
    await setup_labels(bot)
    cid = (await bot.webhook("hello"))["conversation_id"]
    status, body = await raw(bot, "POST", f"/api/conversations/{cid}/resolve", json={"reason": "Nope"})
    assert status == 400
    assert body == {
        "error": 'unknown resolution reason "Nope" — create it with POST /api/reasons',
        "field": "reason",
    }
    assert (await bot.conversation(cid))["status"] == "open"
    assert (await raw(bot, "POST", f"/api/conversations/{cid}/resolve", json={"reason": 5}))[0] == 400
    for agent in (["a-7"], {"id": "a-7"}, True, "x" * 201):
        status, body = await raw(bot, "POST", f"/api/conversations/{cid}/resolve", json={"agent": agent})
        assert (status, body) == (400, {"error": "agent must be the agent's id (a string)", "field": "agent"})
        status, _ = await raw(bot, "POST", f"/api/conversations/{cid}/messages", json={"text": "x", "agent": agent})
        assert status == 400
    assert (await bot.conversation(cid))["status"] == "open"
    assert len((await bot.conversation(cid))["messages"]) == 1

    conv = await bot.api("POST", f"/api/conversations/{cid}/resolve", json={"reason": "contact LEFT", "agent": "a-7"})
    assert conv["status"] == "resolved"
    assert conv["resolution_reason"] == "Contact left"
    assert conv["resolved_by"] == "agent:a-7"
    assert conv["resolved_at"] is not None
    status, body = await raw(bot, "POST", f"/api/conversations/{cid}/resolve", json={})
    assert status == 409
    assert body == {"error": f"conversation {cid} is already resolved"}

    conv = await bot.api("POST", f"/api/conversations/{cid}/reopen")
    assert (conv["status"], conv["resolution_reason"], conv["resolved_by"], conv["resolved_at"]) == (
        "open",
        None,
        None,
        None,
    )
    assert (await raw(bot, "POST", f"/api/conversations/{cid}/reopen"))[0] == 409
    # resolve without a body, then a new message opens a new conversation linked to it
    conv = await bot.api("POST", f"/api/conversations/{cid}/resolve")
    assert conv["resolved_by"] == "agent:api"
    nxt = await bot.webhook("Au revoir")
    assert nxt["conversation_id"] != cid
    assert (await bot.conversation(nxt["conversation_id"]))["previous_id"] == cid
    # the old one cannot be reopened while the newer one is open on the same thread
    status, body = await raw(bot, "POST", f"/api/conversations/{cid}/reopen")
    assert status == 409
    assert "newer conversation is open" in body["error"]


async def test_resolve_with_reason_when_reasons_are_off(make_bot: MakeBot, db_url: str) -> None:
    bot = await make_bot(make_settings(db_url, organization={"resolution_reasons": False}))
    cid = (await bot.webhook("hello"))["conversation_id"]
    status, _ = await raw(bot, "POST", f"/api/conversations/{cid}/resolve", json={"reason": "Contact left"})
    assert status == 403
    assert (await bot.conversation(cid))["status"] == "open"


async def test_post_message_stored_as_outbound(bot: Bot) -> None:
    sent = await bot.webhook("hello")
    cid = sent["conversation_id"]
    msg = await bot.api(
        "POST", f"/api/conversations/{cid}/messages", json={"text": "How can we help?", "agent": "a-7"}, expect=201
    )
    assert set(msg) == MESSAGE_KEYS
    stored = await repo.get_message(msg["id"])
    assert stored is not None and stored.author == "agent:a-7"
    assert (msg["direction"], msg["text"], msg["tags"]) == ("outbound", "How can we help?", [])
    conv = await bot.conversation(cid)
    assert [(m["direction"], m["text"]) for m in conv["messages"]] == [
        ("inbound", "hello"),
        ("outbound", "How can we help?"),
    ]
    for body in ({}, {"text": ""}, {"text": "   "}, {"text": 3}):
        status, err = await raw(bot, "POST", f"/api/conversations/{cid}/messages", json=body)
        assert (status, err.get("field")) == (400, "text")
    assert len((await bot.conversation(cid))["messages"]) == 2


async def test_outbound_reply_never_triggers_automations(bot: Bot) -> None:
    await setup_labels(bot)
    await bot.api(
        "POST",
        "/api/automations",
        json={"name": "Bye", "keywords": "bye", "actions": [{"type": "resolve"}]},
        expect=201,
    )
    cid = (await bot.webhook("hello"))["conversation_id"]
    await bot.api("POST", f"/api/conversations/{cid}/messages", json={"text": "bye"}, expect=201)
    conv = await bot.conversation(cid)
    assert (conv["status"], conv["runs"]) == ("open", [])


# --- automations ----------------------------------------------------------------------------------


async def test_automation_crud(bot: Bot) -> None:
    await setup_labels(bot)
    created = await bot.api(
        "POST",
        "/api/automations",
        json={
            "name": "Au revoir",
            "keywords": ["au revoir", "bye", "BYE", " "],
            "match": "all",
            "actions": [{"type": "tag", "tag": "CLOSING"}, {"type": "resolve", "reason": "Contact left"}],
            "channels": ["shop"],
            "types": ["direct", "group"],
        },
        expect=201,
    )
    assert set(created) == AUTOMATION_KEYS | {"warnings"}
    assert created["name"] == "Au revoir"
    assert created["keywords"] == ["au revoir", "bye"]  # blanks dropped, duplicates merged
    assert created["match"] == "all"
    assert created["actions"] == [
        {"type": "tag", "tag": "closing"},
        {"type": "resolve", "reason": "Contact left"},
    ]
    assert (created["channels"], created["types"], created["enabled"]) == (["shop"], ["direct", "group"], True)
    aid = created["id"]
    # keywords as the comma-separated string, with a quoted phrase holding a comma
    second = await bot.api(
        "POST",
        "/api/automations",
        json={
            "name": "Hello",
            "keywords": 'hi, "good morning, team", hello',
            "actions": [{"type": "tag", "tag": "vip"}],
        },
        expect=201,
    )
    assert second["keywords"] == ["hi", "good morning, team", "hello"]
    assert (second["match"], second["channels"], second["types"]) == ("any", [], [])

    # the same automation, without the warnings its save answered with
    assert await bot.api("GET", f"/api/automations/{aid}") == {k: v for k, v in created.items() if k != "warnings"}
    listing = await bot.api("GET", "/api/automations")
    assert [a["id"] for a in listing["items"]] == [aid, second["id"]]
    assert listing["next_cursor"] is None
    page1 = await bot.api("GET", "/api/automations?limit=1")
    assert [a["id"] for a in page1["items"]] == [aid]
    page2 = await bot.api("GET", f"/api/automations?limit=1&cursor={page1['next_cursor']}")
    assert ([a["id"] for a in page2["items"]], page2["next_cursor"]) == ([second["id"]], None)

    patched = await bot.api("PATCH", f"/api/automations/{aid}", json={"keywords": "ciao", "match": "any"})
    assert (patched["keywords"], patched["match"], patched["name"]) == (["ciao"], "any", "Au revoir")
    assert patched["actions"] == created["actions"]
    assert (await bot.api("GET", f"/api/automations/{aid}"))["keywords"] == ["ciao"]

    disabled = await bot.api("POST", f"/api/automations/{aid}/disable")
    assert disabled["enabled"] is False
    assert (await bot.api("POST", f"/api/automations/{aid}/disable"))["enabled"] is False
    assert (await bot.api("POST", f"/api/automations/{aid}/enable"))["enabled"] is True

    assert await bot.api("DELETE", f"/api/automations/{aid}") == {
        "deleted": True,
        "id": aid,
        "name": "Au revoir",
    }
    for method, path in (
        ("GET", f"/api/automations/{aid}"),
        ("DELETE", f"/api/automations/{aid}"),
        ("PATCH", f"/api/automations/{aid}"),
        ("POST", f"/api/automations/{aid}/enable"),
        ("GET", f"/api/automations/{aid}/runs"),
    ):
        status, body = await raw(bot, method, path, json={"match": "all"})
        assert (status, body["error"]) == (404, f"no automation #{aid} — see GET /api/automations"), (
            method,
            path,
        )
    assert [a["id"] for a in (await bot.api("GET", "/api/automations"))["items"]] == [second["id"]]


async def test_delete_keeps_runs_with_the_name_as_it_was(bot: Bot) -> None:
    await setup_labels(bot)
    a = await bot.api(
        "POST",
        "/api/automations",
        json={"name": "Bye", "keywords": "bye", "actions": [{"type": "tag", "tag": "closing"}]},
        expect=201,
    )
    cid = (await bot.webhook("bye"))["conversation_id"]
    await bot.api("PATCH", f"/api/automations/{a['id']}", json={"name": "Old bye"})
    cid2 = (await bot.webhook("bye", contact="c-2"))["conversation_id"]
    runs = await bot.api("GET", f"/api/automations/{a['id']}/runs")
    assert runs["next_cursor"] is None
    assert all(set(r) == RUN_KEYS for r in runs["items"])
    assert sorted((r["conversation_id"], r["automation_name"]) for r in runs["items"]) == [
        (cid, "Bye"),
        (cid2, "Old bye"),
    ]
    await bot.api("DELETE", f"/api/automations/{a['id']}")
    (run,) = (await bot.conversation(cid))["runs"]
    assert (run["automation_id"], run["automation_name"], run["keywords"]) == (a["id"], "Bye", ["bye"])
    assert (await bot.conversation(cid2))["runs"][0]["automation_name"] == "Old bye"
    assert (await bot.conversation(cid))["tags"] == ["closing"]


async def test_duplicate_name_is_409(bot: Bot) -> None:
    await setup_labels(bot)
    body = {"name": "Bye", "keywords": "bye", "actions": [{"type": "tag", "tag": "closing"}]}
    first = await bot.api("POST", "/api/automations", json=body, expect=201)
    status, err = await raw(bot, "POST", "/api/automations", json={**body, "name": "  BYE "})
    assert (status, err) == (
        409,
        {
            "error": f'an automation named "Bye" already exists (#{first["id"]}) — pick another name',
            "field": "name",
        },
    )
    other = await bot.api("POST", "/api/automations", json={**body, "name": "Other"}, expect=201)
    status, err = await raw(bot, "PATCH", f"/api/automations/{other['id']}", json={"name": "bye"})
    assert status == 409
    assert [a["name"] for a in (await bot.api("GET", "/api/automations"))["items"]] == ["Bye", "Other"]


@pytest.mark.parametrize(
    ("body", "field", "error"),
    [
        (
            {"name": "x", "keywords": "a", "actions": [{"type": "tag", "tag": "vip2"}]},
            "actions",
            'unknown tag "vip2" — create it with POST /api/tags',
        ),
        (
            {"name": "x", "keywords": "a", "actions": []},
            "actions",
            'give at least one action, e.g. "actions": [{"type": "tag", "tag": "closing"}]',
        ),
        (
            {"name": "x", "keywords": "a", "actions": [{"type": "explode"}]},
            "actions",
            'unknown action "explode" — use tag, topic, resolve or crm',
        ),
        (
            {"name": "x", "actions": [{"type": "resolve"}]},
            "keywords",
            'keywords: give at least one keyword, e.g. "keywords": "au revoir, bye"',
        ),
        (
            {"name": "x", "keywords": 7, "actions": [{"type": "resolve"}]},
            "keywords",
            "keywords must be a list of keywords or one comma-separated string",
        ),
        (
            {"name": "", "keywords": "a", "actions": [{"type": "resolve"}]},
            "name",
            'give the automation a name, e.g. "name": "Au revoir"',
        ),
        (
            {"name": "x", "keywords": "a", "match": "most", "actions": [{"type": "resolve"}]},
            "match",
            'match must be "any" or "all", not "most"',
        ),
        (
            {"name": "x", "keywords": "a", "types": ["dm"], "actions": [{"type": "resolve"}]},
            "types",
            'unknown conversation type "dm" — use direct, group or public',
        ),
        (
            {"name": "x", "keywords": "a", "channels": "shop", "actions": [{"type": "resolve"}]},
            "channels",
            "channels must be a list of channel names",
        ),
        (
            {"name": "x", "keywords": "a", "enabled": "yes", "actions": [{"type": "resolve"}]},
            "enabled",
            "enabled must be true or false",
        ),
    ],
)
async def test_validation_is_400_with_api_wording(bot: Bot, body: dict[str, Any], field: str, error: str) -> None:
    status, err = await raw(bot, "POST", "/api/automations", json=body)
    assert (status, err) == (400, {"error": error, "field": field})
    assert (await bot.api("GET", "/api/automations"))["items"] == []


async def test_patch_validation(bot: Bot) -> None:
    await setup_labels(bot)
    a = await bot.api(
        "POST",
        "/api/automations",
        json={"name": "Bye", "keywords": "bye", "actions": [{"type": "resolve"}]},
        expect=201,
    )
    status, err = await raw(bot, "PATCH", f"/api/automations/{a['id']}", json={"colour": "red"})
    assert (status, err) == (400, {"error": 'unknown field "colour"', "field": "colour"})
    status, err = await raw(bot, "PATCH", f"/api/automations/{a['id']}", json={"keywords": ""})
    assert status == 400
    assert await bot.api("GET", f"/api/automations/{a['id']}") == {k: v for k, v in a.items() if k != "warnings"}


async def test_plan_refusal_is_403(make_bot: MakeBot, db_url: str) -> None:
    bot = await make_bot(make_settings(db_url, organization={"plan": "business"}))
    await bot.api("POST", "/api/tags", json={"name": "closing"}, expect=201)
    status, err = await raw(
        bot,
        "POST",
        "/api/automations",
        json={"name": "x", "keywords": "bye", "actions": [{"type": "resolve"}]},
    )
    assert (status, err) == (403, {"error": 'plan "business" does not include resolve (needs enterprise)'})
    status, err = await raw(
        bot,
        "POST",
        "/api/automations",
        json={"name": "x", "keywords": "bye", "actions": [{"type": "crm", "target": "salesforce"}]},
    )
    assert (status, err) == (
        403,
        {"error": 'plan "business" does not include crm (needs enterprise with advanced_inbox = true)'},
    )
    assert (await bot.api("GET", "/api/automations"))["items"] == []
    # a tag-only automation is fine; PATCHing a resolve into it is refused the same way
    a = await bot.api(
        "POST",
        "/api/automations",
        json={"name": "x", "keywords": "bye", "actions": [{"type": "tag", "tag": "closing"}]},
        expect=201,
    )
    status, _ = await raw(bot, "PATCH", f"/api/automations/{a['id']}", json={"actions": [{"type": "resolve"}]})
    assert status == 403
    assert (await bot.api("GET", f"/api/automations/{a['id']}"))["actions"] == [{"type": "tag", "tag": "closing"}]


async def test_enable_refused_when_the_plan_no_longer_allows(make_bot: MakeBot, db_url: str) -> None:
    bot = await make_bot(make_settings(db_url))
    a = await bot.api(
        "POST",
        "/api/automations",
        json={"name": "x", "keywords": "bye", "actions": [{"type": "resolve"}]},
        expect=201,
    )
    await bot.api("POST", f"/api/automations/{a['id']}/disable")
    await bot.client.close()
    bot = await make_bot(make_settings(db_url, organization={"plan": "business"}))
    assert 'skipped: plan "business" does not include resolve (needs enterprise)' in await bot.command("list")
    status, err = await raw(bot, "POST", f"/api/automations/{a['id']}/enable")
    assert (status, err) == (403, {"error": 'plan "business" does not include resolve (needs enterprise)'})
    assert (await bot.api("GET", f"/api/automations/{a['id']}"))["enabled"] is False


async def test_automations_test_changes_nothing(bot: Bot) -> None:
    await setup_labels(bot)
    a = await bot.api(
        "POST",
        "/api/automations",
        json={
            "name": "Au revoir",
            "keywords": "au revoir, bye",
            "actions": [{"type": "tag", "tag": "closing"}, {"type": "resolve", "reason": "Contact left"}],
            "types": ["direct"],
        },
        expect=201,
    )
    result = await bot.api("POST", "/api/automations/test", json={"text": "Merci, au revoir !"})
    assert result == {
        "matches": [
            {
                "automation_id": a["id"],
                "automation_name": "Au revoir",
                "keywords": ["au revoir"],
                "actions": [{"type": "tag", "tag": "closing"}, {"type": "resolve", "reason": "Contact left"}],
            }
        ],
        "tags": ["closing"],
        "topics": [],
        "resolve": True,
        "resolution_reason": "Contact left",
        "crm": [],
        "skipped": [],
    }
    out_of_scope = await bot.api(
        "POST", "/api/automations/test", json={"text": "bye", "channel": "shop", "type": "group"}
    )
    assert (out_of_scope["matches"], out_of_scope["resolve"]) == ([], False)
    for body, field in (({"text": ""}, "text"), ({"text": "bye", "channel": "nope"}, "channel"),
                        ({"text": "bye", "type": "dm"}, "type"), ({"text": 5}, "text")):  # fmt: skip
        status, err = await raw(bot, "POST", "/api/automations/test", json=body)
        assert (status, err["field"]) == (400, field)
    assert (await bot.api("GET", "/api/conversations"))["items"] == []
    assert (await bot.api("GET", f"/api/automations/{a['id']}/runs"))["items"] == []


# --- tags, topics, reasons ----------------------------------------------------------------------


@pytest.mark.parametrize(("path", "what"), [("tags", "tag"), ("topics", "topic"), ("reasons", "resolution reason")])
async def test_labels(bot: Bot, path: str, what: str) -> None:
    # a topic also says where its conversations stand in the queue (tests/test_topics.py)
    routing = {"priority": "normal", "team": None} if path == "topics" else {}
    assert await bot.api("GET", f"/api/{path}") == {"items": [], "next_cursor": None}
    assert await bot.api("POST", f"/api/{path}", json={"name": "  Billing   issue "}, expect=201) == {
        "name": "Billing issue",
        **routing,
    }
    await bot.api("POST", f"/api/{path}", json={"name": "Sales"}, expect=201)
    status, err = await raw(bot, "POST", f"/api/{path}", json={"name": "billing ISSUE"})
    assert (status, err) == (409, {"error": f'{what} "Billing issue" already exists', "field": "name"})
    for body in ({}, {"name": 3}, {"name": ""}, {"name": "a,b"}):
        assert (await raw(bot, "POST", f"/api/{path}", json=body))[0] == 400
    assert await bot.api("GET", f"/api/{path}") == {
        "items": [{"name": "Billing issue", **routing}, {"name": "Sales", **routing}],
        "next_cursor": None,
    }
    assert await bot.api("DELETE", f"/api/{path}/sales") == {"deleted": True, "name": "Sales"}
    status, err = await raw(bot, "DELETE", f"/api/{path}/Sales")
    assert status == 404
    assert await bot.api("DELETE", f"/api/{path}/Billing%20issue") == {
        "deleted": True,
        "name": "Billing issue",
    }
    assert (await bot.api("GET", f"/api/{path}"))["items"] == []


async def test_label_in_use_cannot_be_deleted(bot: Bot) -> None:
    await setup_labels(bot)
    a = await bot.api(
        "POST",
        "/api/automations",
        json={"name": "Bye", "keywords": "bye", "actions": [{"type": "tag", "tag": "vip"}]},
        expect=201,
    )
    status, err = await raw(bot, "DELETE", "/api/tags/vip")
    assert (status, err) == (
        409,
        {"error": f'tag "vip" is used by automation "Bye" (#{a["id"]}) — change or delete that automation first'},
    )
    assert {"name": "vip"} in (await bot.api("GET", "/api/tags"))["items"]


async def test_reasons_refused_when_turned_off(make_bot: MakeBot, db_url: str) -> None:
    bot = await make_bot(make_settings(db_url, organization={"resolution_reasons": False}))
    status, err = await raw(bot, "POST", "/api/reasons", json={"name": "Spam"})
    assert (status, err) == (
        403,
        {"error": "resolution reasons are turned off (resolution_reasons = false in [organization])"},
    )
    assert (await bot.api("GET", "/api/reasons"))["items"] == []


# --- openapi, health, metrics --------------------------------------------------------------------


async def test_openapi(bot: Bot) -> None:
    resp = await bot.client.get("/api/openapi.json")
    assert resp.status == 200
    doc = json.loads(await resp.text())
    assert doc["openapi"].startswith("3.")
    for path in (
        "/api/conversations", "/api/conversations/{id}", "/api/conversations/{id}/resolve",
        "/api/conversations/{id}/reopen", "/api/conversations/{id}/messages", "/api/automations",
        "/api/automations/{id}", "/api/automations/{id}/enable", "/api/automations/{id}/disable",
        "/api/automations/{id}/runs", "/api/automations/test", "/api/tags", "/api/tags/{name}",
        "/api/topics", "/api/topics/{name}", "/api/reasons", "/api/reasons/{name}",
    ):  # fmt: skip
        assert path in doc["paths"], path
    assert set(doc["paths"]["/api/automations/{id}"]) >= {"get", "patch", "delete"}


async def test_healthz_and_metrics(bot: Bot) -> None:
    resp = await bot.client.get("/healthz")
    assert resp.status == 200
    assert await resp.json() == {"status": "ok", "store": "ok"}
    await bot.webhook("hello")
    resp = await bot.client.get("/metrics")
    assert resp.status == 200
    assert resp.content_type == "text/plain"
    text = await resp.text()
    assert "# TYPE inbox_messages_total counter" in text
    assert 'inbox_messages_total{channel="shop",result="stored"} 1.0' in text


# --- bad bodies ----------------------------------------------------------------------------------------

POST_ENDPOINTS = [
    ("POST", "/api/conversations/{cid}/resolve"),
    ("POST", "/api/conversations/{cid}/messages"),
    ("POST", "/api/automations"),
    ("PATCH", "/api/automations/{aid}"),
    ("POST", "/api/automations/test"),
    ("POST", "/api/tags"),
    ("POST", "/api/topics"),
    ("POST", "/api/reasons"),
]


@pytest.mark.parametrize(("method", "path"), POST_ENDPOINTS)
async def test_bad_bodies_never_500(bot: Bot, method: str, path: str) -> None:
    cid = (await bot.webhook("hello"))["conversation_id"]
    body = {"name": "Bye", "keywords": "bye", "actions": [{"type": "resolve"}]}
    aid = (await bot.api("POST", "/api/automations", json=body, expect=201))["id"]
    before = await bot.conversation(cid)
    url = path.format(cid=cid, aid=aid)
    ctype = {"Content-Type": "application/json"}
    status, err = await raw(bot, method, url, data=b'{"text": ', headers=ctype)
    assert status == 400
    assert err["error"].startswith("body is not valid JSON")
    status, err = await raw(bot, method, url, data=b"\xff\xfe", headers=ctype)
    assert status == 400
    for body in (b'["text", "x"]', b'"text"', b"42", b"null"):
        status, err = await raw(bot, method, url, data=body, headers=ctype)
        assert (status, err) == (400, {"error": "body must be a JSON object"}), body
    deep = b'{"text": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    status, err = await raw(bot, method, url, data=deep, headers=ctype)
    assert (status, err) == (400, {"error": "body is not valid JSON: nested too deeply"})
    nested = json.dumps({"text": "ok", "reason": None, "x": [[[[{"y": "a\x00"}]]]]}).encode()
    status, err = await raw(bot, method, url, data=nested, headers=ctype)
    assert (status, err) == (400, {"error": "text must not contain NUL (\\u0000) characters"})
    big = json.dumps({"text": "x" * (256 * 1024), "name": "x"}).encode()
    status, err = await raw(bot, method, url, data=big, headers=ctype)
    assert (status, err) == (413, {"error": "body is larger than 256 KiB"})

    # chunked (no Content-Length) oversize bodies are refused too
    async def chunks() -> Any:
        for _ in range(9):
            yield b" " * (32 * 1024)

    status, err = await raw(bot, method, url, data=chunks(), headers=ctype)
    assert status == 413
    # nothing changed
    assert await bot.conversation(cid) == before
    assert [a["name"] for a in (await bot.api("GET", "/api/automations"))["items"]] == ["Bye"]
    for kind in ("tags", "topics", "reasons"):
        assert (await bot.api("GET", f"/api/{kind}"))["items"] == []


NUL_REQUESTS = [
    ("POST", "/api/tags", {"name": "a\x00"}),
    ("POST", "/api/topics", {"name": "\x00"}),
    ("POST", "/api/automations", {"name": "x\x00", "keywords": "a", "actions": [{"type": "resolve"}]}),
    ("POST", "/api/automations", {"name": "y", "keywords": ["a\x00b"], "actions": [{"type": "resolve"}]}),
    ("POST", "/api/conversations/{cid}/messages", {"text": "a\x00"}),
    ("POST", "/api/conversations/{cid}/resolve", {"reason": "a\x00"}),
    ("POST", "/api/conversations/{cid}/resolve", {"agent": "a\x00"}),
    ("POST", "/api/automations/test", {"text": "a\x00"}),
    ("GET", "/api/conversations?channel=%00", None),
    ("GET", "/api/conversations?tag=a%00b", None),
    ("DELETE", "/api/tags/%00", None),
]


@pytest.mark.parametrize("db_url", STORES, indirect=True)
@pytest.mark.parametrize(("method", "path", "body"), NUL_REQUESTS)
async def test_nul_characters_are_refused_not_a_store_error(
    bot: Bot, method: str, path: str, body: dict[str, Any] | None
) -> None:
    """PostgreSQL text cannot hold NUL: a 400, on every store, never a 500/503."""
    cid = (await bot.webhook("hello"))["conversation_id"]
    before = await bot.conversation(cid)
    status, err = await raw(bot, method, path.format(cid=cid), json=body)
    assert (status, err) == (400, {"error": "text must not contain NUL (\\u0000) characters"})
    assert await bot.conversation(cid) == before
    assert (await bot.api("GET", "/api/automations"))["items"] == []
    assert (await bot.api("GET", "/api/tags"))["items"] == []


async def test_unknown_api_routes_and_methods_answer_json(bot: Bot) -> None:
    status, body = await raw(bot, "GET", "/api/nothing-here")
    assert status == 404 and "no such endpoint" in body["error"]
    status, body = await raw(bot, "PUT", "/api/tags")
    assert status == 405 and body["error"].startswith("method not allowed")


async def test_metrics_are_prometheus_text_format(bot: Bot) -> None:
    resp = await bot.client.get("/metrics")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert "inbox_messages_total" in await resp.text()


async def test_an_automation_the_plan_no_longer_allows_can_be_renamed_not_reenabled(
    make_bot: MakeBot, db_url: str
) -> None:
    bot = await make_bot(make_settings(db_url))
    a = await bot.api(
        "POST", "/api/automations", json={"name": "x", "keywords": "bye", "actions": [{"type": "resolve"}]}, expect=201
    )
    await bot.client.close()
    bot = await make_bot(make_settings(db_url, organization={"plan": "business"}))
    renamed = await bot.api("PATCH", f"/api/automations/{a['id']}", json={"name": "Goodbye"})
    assert renamed["name"] == "Goodbye"
    status, err = await raw(bot, "PATCH", f"/api/automations/{a['id']}", json={"actions": [{"type": "resolve"}]})
    assert (status, err) == (403, {"error": 'plan "business" does not include resolve (needs enterprise)'})


async def test_unclosed_quote_in_keywords_is_refused_like_the_chat_command(bot: Bot) -> None:
    status, err = await raw(
        bot, "POST", "/api/automations", json={"name": "q", "keywords": '"bye, now', "actions": [{"type": "resolve"}]}
    )
    assert (status, err["error"]) == (400, 'keywords: a quote (") is not closed — close it and send again')
    assert (await bot.api("GET", "/api/automations"))["items"] == []


async def test_crm_is_null_without_salesforce_configured(make_bot: MakeBot, db_url: str) -> None:
    bot = await make_bot(make_settings(db_url, organization={"advanced_inbox": True}))
    await bot.api(
        "POST",
        "/api/automations",
        json={"name": "crm", "keywords": "refund", "actions": [{"type": "crm", "target": "salesforce"}]},
        expect=201,
    )
    cid = (await bot.webhook("I want a refund"))["conversation_id"]
    detail = await bot.conversation(cid)
    assert set(detail) == DETAIL_KEYS and detail["crm"] is None
    assert (await bot.api("GET", "/api/conversations"))["items"][0]["crm"] is None


async def test_filters_longer_than_any_name_find_nothing(bot: Bot) -> None:
    await bot.webhook("hello")
    for key in ("channel", "tag", "topic"):
        assert (await bot.api("GET", f"/api/conversations?{key}={'x' * 300}"))["items"] == []
