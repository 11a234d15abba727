"""Why, preview and lint over HTTP, as an admin uses them, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from bot.engine import normalize
from bot.front import schemas
from bot.front.openapi import OPERATIONS
from bot.services import insight
from bot.services.insight import SHARE_MIN_MESSAGES
from tests.conftest import SHOP_SECRET, STORES, TOKEN, Bot, make_settings, signed_headers

MakeBot = Callable[..., Awaitable[Bot]]
pytestmark = pytest.mark.parametrize("db_url", STORES, indirect=True)


async def deliver(bot: Bot, text: str, *, thread: str, sent_at: str | None, channel: str) -> dict[str, Any]:
    """Post a contact's message through the signed webhook; the answer."""
    payload: dict[str, Any] = {"id": f"m-{uuid.uuid4().hex[:10]}", "contact": {"id": f"c-{thread}"}, "text": text}
    payload["thread"] = thread
    if sent_at:
        payload["sent_at"] = sent_at
    body = json.dumps(payload).encode()
    resp = await bot.client.post(f"/webhooks/{channel}", data=body, headers=signed_headers(SHOP_SECRET, body))
    data: dict[str, Any] = await resp.json()
    assert resp.status == 200, data
    return data


async def say(bot: Bot, text: str, *, thread: str, sent_at: str | None = None, channel: str = "shop") -> int:
    """Post a contact's message; returns the conversation id."""
    return int((await deliver(bot, text, thread=thread, sent_at=sent_at, channel=channel))["conversation_id"])


async def post(bot: Bot, text: str, *, thread: str, sent_at: str | None = None, channel: str = "shop") -> int:
    """Post a contact's message; returns the message id."""
    return int((await deliver(bot, text, thread=thread, sent_at=sent_at, channel=channel))["message_id"])


async def raw(bot: Bot, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
    resp = await bot.client.request(method, path, headers={"Authorization": f"Bearer {TOKEN}"}, **kwargs)
    return resp.status, await resp.json()


async def automation(bot: Bot, **fields: Any) -> dict[str, Any]:
    return await bot.api("POST", "/api/automations", json=fields, expect=201)  # type: ignore[no-any-return]


# --- why ------------------------------------------------------------------------------------------


async def test_why_explains_each_message_with_offsets_into_the_stored_text(bot: Bot) -> None:
    for kind, name in (("tags", "closing"), ("tags", "vip")):
        await bot.api("POST", f"/api/{kind}", json={"name": name}, expect=201)
    bye = await automation(
        bot,
        name="Au revoir",
        keywords="au revoir, bye",
        actions=[{"type": "tag", "tag": "closing"}, {"type": "resolve"}],
    )
    both = await automation(
        bot, name="Both", keywords="order, refund", match="all", actions=[{"type": "tag", "tag": "vip"}]
    )
    scoped = await automation(
        bot, name="Scoped", keywords="bye", channels=["support"], actions=[{"type": "tag", "tag": "vip"}]
    )
    off = await automation(bot, name="Off", keywords="fine", enabled=False, actions=[{"type": "tag", "tag": "vip"}])
    await automation(bot, name="Silent", keywords="nothing here", actions=[{"type": "tag", "tag": "vip"}])

    first = "Ｈｅｌｌｏ, my ORDER"
    second = "ﬁne, bye! Réfund 👋"
    cid = await say(bot, first, thread="t1")
    assert await say(bot, second, thread="t1") == cid

    items = (await bot.api("GET", f"/api/conversations/{cid}/why"))["items"]
    msgs = [m for m in (await bot.conversation(cid))["messages"] if m["direction"] == "inbound"]
    m1, m2 = msgs[0]["id"], msgs[1]["id"]
    got = {(i["message_id"], i["automation_id"]): i for i in items}
    assert list(got) == [(m1, both["id"]), (m2, bye["id"]), (m2, both["id"]), (m2, scoped["id"]), (m2, off["id"])]

    incomplete = got[(m1, both["id"])]
    assert incomplete["outcome"] == "keywords_incomplete"
    assert incomplete["missing"] == ["refund"]
    assert incomplete["actions"] == []
    (found,) = incomplete["found"]
    assert first[found["start"] : found["end"]] == "ORDER"

    fired = got[(m2, bye["id"])]
    assert fired["outcome"] == "fired"
    assert fired["automation_name"] == "Au revoir"
    assert fired["actions"] == [{"type": "tag", "tag": "closing"}]
    assert fired["not_applied"] == [{"type": "resolve", "why": "not the first message"}]
    assert [second[f["start"] : f["end"]] for f in fired["found"]] == ["bye"]
    assert fired["revision"] == 1

    completed = got[(m2, both["id"])]
    assert completed["outcome"] == "fired"
    assert completed["missing"] == []
    assert [(f["keyword"], second[f["start"] : f["end"]]) for f in completed["found"]] == [("refund", "Réfund")]

    assert got[(m2, scoped["id"])]["outcome"] == "not_in_scope"
    assert got[(m2, scoped["id"])]["not_applied"] == [
        {"type": "tag", "why": "the message is not in the automation's scope"}
    ]
    disabled = got[(m2, off["id"])]
    assert disabled["outcome"] == "disabled"
    assert [second[f["start"] : f["end"]] for f in disabled["found"]] == ["ﬁne"]


async def test_why_judges_each_message_by_the_automation_as_it_stood_then(bot: Bot) -> None:
    """A message is explained by the revision in force when it came: a later keyword change, or a
    deletion, does not rewrite what happened before it."""
    await bot.api("POST", "/api/tags", json={"name": "vip"}, expect=201)
    a = await automation(
        bot, name="Orders", keywords="order, refund", match="all", actions=[{"type": "tag", "tag": "vip"}]
    )
    cid = await say(bot, "my order", thread="asof")
    await bot.api("PATCH", f"/api/automations/{a['id']}", json={"keywords": "parcel"})  # revision 2
    assert await say(bot, "my order again", thread="asof") == cid

    items = (await bot.api("GET", f"/api/conversations/{cid}/why"))["items"]
    first, second = [m["id"] for m in (await bot.conversation(cid))["messages"] if m["direction"] == "inbound"]
    [entry] = items  # the second message holds no keyword of revision 2: nothing to explain there
    assert (entry["message_id"], entry["revision"], entry["outcome"]) == (first, 1, "keywords_incomplete")
    assert entry["missing"] == ["refund"]
    assert second not in [i["message_id"] for i in items]

    await bot.api("DELETE", f"/api/automations/{a['id']}")
    assert (await bot.api("GET", f"/api/conversations/{cid}/why"))["items"] == items


async def test_why_keeps_a_deleted_automations_firing(bot: Bot) -> None:
    await bot.api("POST", "/api/tags", json={"name": "closing"}, expect=201)
    a = await automation(bot, name="Bye", keywords="bye", actions=[{"type": "tag", "tag": "closing"}])
    cid = await say(bot, "bye now", thread="t2")
    await bot.api("DELETE", f"/api/automations/{a['id']}")
    (item,) = (await bot.api("GET", f"/api/conversations/{cid}/why"))["items"]
    assert (item["automation_name"], item["outcome"], item["found"]) == (
        "Bye",
        "fired",
        [{"keyword": "bye", "start": 0, "end": 3}],
    )


async def test_why_of_an_unknown_conversation_is_404(bot: Bot) -> None:
    status, err = await raw(bot, "GET", "/api/conversations/999999/why")
    assert status == 404
    assert "999999" in err["error"]


# --- preview --------------------------------------------------------------------------------------


async def test_preview_replays_stored_messages_and_changes_nothing(bot: Bot) -> None:
    await bot.api("POST", "/api/tags", json={"name": "closing"}, expect=201)
    await bot.api("POST", "/api/topics", json={"name": "Refunds"}, expect=201)
    old = await say(bot, "my order is late", thread="p1", sent_at="2020-01-01T10:00:00Z")
    assert await say(bot, "I want a refund", thread="p1") == old  # order came before `since`
    one = await say(bot, "refund please", thread="p2")  # first message: would resolve
    await say(bot, "and my order too", thread="p2")
    await say(bot, "hello", thread="p3")
    await say(bot, "order refund", thread="p4", channel="support")
    before = await bot.conversation(one)

    fields = {
        "name": "Refunds",
        "keywords": "order, refund",
        "match": "all",
        "actions": [{"type": "tag", "tag": "closing"}, {"type": "topic", "topic": "Refunds"}, {"type": "resolve"}],
        "channels": ["shop"],
    }
    out = await bot.api("POST", "/api/automations/preview", json={**fields, "since": "2021-01-01T00:00:00Z"})
    assert out["messages_scanned"] == 5  # every inbound message since then, on any channel
    assert out["conversations_scanned"] == 4
    assert out["would_fire"] == {"messages": 2, "conversations": 2}  # p1's refund, p2's second message
    assert (out["would_tag"], out["would_apply_topics"], out["would_resolve"], out["would_send_to_crm"]) == (2, 2, 0, 0)
    assert [(x["conversation_id"], x["text"]) for x in out["examples"]] == [
        (old, "I want a refund"),
        (one, "and my order too"),
    ]
    assert out["examples"][0]["found"] == [{"keyword": "refund", "start": 9, "end": 15}]
    assert out["warnings"] == []

    anyone = await bot.api("POST", "/api/automations/preview", json={**fields, "match": "any", "since": "24h"})
    assert anyone["would_fire"] == {"messages": 3, "conversations": 2}
    assert anyone["would_resolve"] == 1  # p2's first message
    assert (await bot.api("GET", "/api/automations"))["items"] == []
    assert await bot.conversation(one) == before


async def test_preview_of_a_saved_automation_and_the_default_since(bot: Bot) -> None:
    await bot.api("POST", "/api/tags", json={"name": "closing"}, expect=201)
    await say(bot, "bye", thread="s1", sent_at="2020-01-01T10:00:00Z")  # older than 7 days
    await say(bot, "ok bye", thread="s2")
    a = await automation(bot, name="Bye", keywords="bye", actions=[{"type": "tag", "tag": "closing"}])
    out = await bot.api("POST", f"/api/automations/{a['id']}/preview", json={})
    assert (out["messages_scanned"], out["would_tag"]) == (1, 1)
    everything = await bot.api("POST", f"/api/automations/{a['id']}/preview", json={"since": "2019-06-01"})
    assert (everything["messages_scanned"], everything["would_tag"]) == (2, 2)
    status, _ = await raw(bot, "POST", "/api/automations/999/preview", json={})
    assert status == 404


@pytest.mark.parametrize("since", ["yesterday", "7 days", "-3d", "9999999d", "2026-13-01", "0001-01-01T00:00:00+01:00"])
async def test_unreadable_since_is_a_400_naming_it(bot: Bot, since: str) -> None:
    status, err = await raw(
        bot,
        "POST",
        "/api/automations/preview",
        json={"name": "x", "keywords": "a", "actions": [{"type": "resolve"}], "since": since},
    )
    assert status == 400
    assert err["field"] == "since"
    assert '"7d"' in err["error"] and '"24h"' in err["error"] and "ISO" in err["error"]


async def test_preview_refuses_what_create_refuses_the_same_way(bot: Bot) -> None:
    body = {"name": "x", "keywords": "a", "actions": [{"type": "tag", "tag": "missing"}]}
    created = await raw(bot, "POST", "/api/automations", json=body)
    previewed = await raw(bot, "POST", "/api/automations/preview", json=body)
    assert created[0] == 400
    assert previewed == created
    status, _ = await raw(bot, "GET", "/api/automations/preview")
    assert status == 405


# --- lint -----------------------------------------------------------------------------------------


async def test_lint_warns_on_save_and_never_blocks_it(make_bot: MakeBot, db_url: str) -> None:
    bot = await make_bot(make_settings(db_url, organization={"advanced_inbox": True}))
    await bot.api("POST", "/api/tags", json={"name": "vip"}, expect=201)
    greet = await automation(bot, name="Greet", keywords="Merci, bye", actions=[{"type": "resolve"}])
    assert [(w["kind"], w["automation_ids"]) for w in greet["warnings"]] == [("generic_resolve_keyword", [greet["id"]])]
    assert '"Merci"' in greet["warnings"][0]["message"]

    crm = await automation(bot, name="Crm", keywords="bye", actions=[{"type": "crm", "target": "salesforce"}])
    kinds = sorted((w["kind"], tuple(w["automation_ids"])) for w in crm["warnings"])
    assert kinds == [("conflict", (greet["id"], crm["id"])), ("duplicate_keyword", (greet["id"], crm["id"]))]

    far = await automation(
        bot, name="Far", keywords="far away", channels=["nowhere"], actions=[{"type": "tag", "tag": "vip"}]
    )
    assert [w["kind"] for w in far["warnings"]] == ["unknown_channel"]  # saved all the same
    assert far["channels"] == ["nowhere"]

    listed = (await bot.api("GET", "/api/automations/lint"))["warnings"]
    assert sorted(w["kind"] for w in listed) == [
        "conflict",
        "duplicate_keyword",
        "generic_resolve_keyword",
        "unknown_channel",
    ]
    # disabling takes an automation out of the list; enabling answers its warnings again
    await bot.api("POST", f"/api/automations/{crm['id']}/disable")
    assert sorted(w["kind"] for w in (await bot.api("GET", "/api/automations/lint"))["warnings"]) == [
        "generic_resolve_keyword",
        "unknown_channel",
    ]
    enabled = await bot.api("POST", f"/api/automations/{crm['id']}/enable")
    assert {w["kind"] for w in enabled["warnings"]} == {"conflict", "duplicate_keyword"}
    changed = await bot.api("PATCH", f"/api/automations/{crm['id']}", json={"keywords": "invoice"})
    assert changed["warnings"] == []


async def test_lint_finds_a_resolve_keyword_common_in_first_messages(bot: Bot) -> None:
    for i in range(SHARE_MIN_MESSAGES):
        await say(bot, "Done, thanks" if i % 5 == 0 else f"question {i}", thread=f"f{i}")
    a = await automation(bot, name="Done", keywords="done", actions=[{"type": "resolve"}])
    (w,) = a["warnings"]
    assert (w["kind"], w["automation_ids"]) == ("generic_resolve_keyword", [a["id"]])
    assert "20%" in w["message"]
    preview = await bot.api(
        "POST", "/api/automations/preview", json={"name": "Again", "keywords": "done", "actions": [{"type": "resolve"}]}
    )
    assert [x["kind"] for x in preview["warnings"]] == ["generic_resolve_keyword", "duplicate_keyword"]
    assert preview["warnings"][1]["automation_ids"] == [a["id"]]  # the unsaved one has no id to name


async def test_preview_agrees_with_what_live_ingest_did(bot: Bot) -> None:
    await bot.api("POST", "/api/tags", json={"name": "closing"}, expect=201)
    fields = {
        "keywords": "au revoir, merci",
        "match": "all",
        "actions": [{"type": "tag", "tag": "closing"}, {"type": "resolve"}],
        "types": ["direct"],
    }
    live = await automation(bot, name="Live", **fields)
    texts = ["Merci ! Au revoir", "merci", "rien", "AU-REVOIR", "merci beaucoup", "au revoir 👋", "merci"]
    for i, text in enumerate(texts * 3):
        await say(bot, text, thread=f"l{i % 4}")
    runs = (await bot.api("GET", f"/api/automations/{live['id']}/runs?limit=200"))["items"]
    resolved = (await bot.api("GET", "/api/conversations?status=resolved&limit=200"))["items"]
    out = await bot.api("POST", "/api/automations/preview", json={"name": "Copy", **fields, "since": "1d"})
    assert out["messages_scanned"] == len(texts) * 3
    assert out["would_fire"]["messages"] == out["would_tag"] == len(runs) > 0
    assert out["would_fire"]["conversations"] == len({r["conversation_id"] for r in runs})
    assert out["would_resolve"] == len(resolved) > 0


@pytest.mark.parametrize("match", ["all", "any"])
async def test_preview_of_varied_texts_read_in_small_chunks_agrees_with_live_ingest(
    bot: Bot, match: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keywords written the ways normalization brings back (capitals, accents composed or as
    combining marks, ligatures, fullwidth forms, no-break spaces, no-space scripts, emoji), earlier
    messages before `since`, other channels and a group, read three messages at a time: the
    preview counts what live ingest did, and shows its first runs with the words found."""
    monkeypatch.setattr(insight, "CHUNK", 3)
    await bot.api("POST", "/api/tags", json={"name": "closing"}, expect=201)
    fields = {
        "keywords": "refund, remboursé" if match == "all" else "refund, late delivery, remboursé, 再见",
        "match": match,
        "actions": [{"type": "tag", "tag": "closing"}, {"type": "resolve"}],
        "channels": ["shop"],
    }
    live = await automation(bot, name="Live", **fields)
    old = [
        await post(bot, "Ｒｅｆｕｎｄ?", thread="v1", sent_at="2020-01-01T10:00:00Z"),
        await post(bot, "rien 👋", thread="v2", sent_at="2020-01-01T10:00:00Z"),
        await post(bot, "re\u0301fund", thread="v3", sent_at="2020-01-01T10:00:00Z"),
    ]
    texts = [
        "LATE\u00a0DELIVERY, again",
        "je veux être REMBOURSÉ",
        "rembourse\u0301 svp",
        "好的，再见！",
        "ﬁle a refund",
        "late-delivery 🙏",
        "refunds are late",
        "nothing to see",
        "Ｌａｔｅ ｄｅｌｉｖｅｒｙ",
        "REFUND!!",
        "by\u00adstander refund",
        "remboursement",
    ]
    for i, text in enumerate(texts * 2):
        await post(bot, text, thread=f"v{i % 5}", channel="support" if i % 7 == 6 else "shop")
    runs = (await bot.api("GET", f"/api/automations/{live['id']}/runs?limit=200"))["items"]
    runs = sorted((r for r in runs if r["message_id"] not in old), key=lambda r: r["message_id"])

    out = await bot.api("POST", "/api/automations/preview", json={"name": "Copy", **fields, "since": "2021-01-01"})
    assert out["messages_scanned"] == len(texts) * 2
    assert out["would_fire"]["messages"] == out["would_tag"] == len(runs) > 0
    assert out["would_fire"]["conversations"] == len({r["conversation_id"] for r in runs})
    assert [x["message_id"] for x in out["examples"]] == [r["message_id"] for r in runs[:5]]
    for example, run in zip(out["examples"], runs, strict=False):
        assert [f["keyword"] for f in example["found"]] == run["keywords"]
        for f in example["found"]:
            assert normalize(example["text"][f["start"] : f["end"]]) == normalize(f["keyword"])


# --- chat -----------------------------------------------------------------------------------------


async def test_chat_why_in_a_few_lines(bot: Bot) -> None:
    await bot.api("POST", "/api/tags", json={"name": "closing"}, expect=201)
    await automation(
        bot, name="Au revoir", keywords="au revoir", actions=[{"type": "tag", "tag": "closing"}, {"type": "resolve"}]
    )
    await automation(
        bot, name="Both", keywords="order, refund", match="all", actions=[{"type": "tag", "tag": "closing"}]
    )
    cid = await say(bot, "Where is my order?", thread="w1")
    await say(bot, "ok, au revoir", thread="w1")
    reply = await bot.command(f"why #{cid}")
    lines = reply.splitlines()
    assert lines[0] == f"Conversation #{cid}, automation by automation:"
    assert lines[1].startswith("Message #") and lines[1].endswith('"Where is my order?"')
    assert lines[2] == '  ✗ #2 "Both" found "order" but still misses "refund"'
    assert (
        lines[4] == '  ✓ #1 "Au revoir" fired on "au revoir" → tag "closing" '
        "(resolve not applied: not the first message)"
    )
    assert len(lines) == 5
    assert "(résolution non appliquée : ce n’est pas le premier message)" in await bot.command(f"why #{cid}", lang="fr")
    assert await bot.command("why #999999") == "no conversation #999999"
    assert await bot.command("why twelve") == "name the conversation by its number, e.g. /automation why #12"


async def test_chat_preview_and_create_preview_save_nothing(bot: Bot) -> None:
    await bot.api("POST", "/api/tags", json={"name": "closing"}, expect=201)
    await say(bot, "merci, bye", thread="v1")
    await say(bot, "bye!", thread="v2", sent_at="2020-01-01T00:00:00Z")
    reply = await bot.command('create "Bye bye" keywords="bye, merci" resolve preview')
    assert reply.splitlines()[1:4] == [
        "scanned 1 message · 1 conversation",
        "would fire on 1 message · 1 conversation",
        "would tag 0 · apply topics to 0 · resolve 1 · send 0 to Salesforce",
    ]
    assert reply.splitlines()[-1].startswith('⚠ resolve keyword "merci" is a greeting or thanks')
    assert (await bot.api("GET", "/api/automations"))["items"] == []  # shown, not saved

    created = await bot.command('create "Bye bye" keywords="bye, merci" tags=closing resolve')
    assert created.splitlines()[0].startswith('Created automation #1 "Bye bye"')
    assert created.splitlines()[1].startswith("⚠ resolve keyword")
    everything = await bot.command('preview "Bye bye" since=2019-01-01')
    assert "scanned 2 messages · 2 conversations" in everything
    assert "would tag 2 · apply topics to 0 · resolve 2" in everything
    assert await bot.command('preview "Bye bye" since=soon') == (
        'since must be "7d" (days), "24h" (hours) or an ISO time such as "2026-11-24T10:00:00Z"'
    )


async def test_answers_match_their_documented_shapes(bot: Bot) -> None:
    await bot.api("POST", "/api/tags", json={"name": "closing"}, expect=201)
    a = await automation(bot, name="Bye", keywords="bye, merci", actions=[{"type": "resolve"}])
    schemas.AutomationSaved.model_validate(a)
    cid = await say(bot, "merci, bye", thread="d1")
    await say(bot, "bye again", thread="d1")
    schemas.WhyList.model_validate(await bot.api("GET", f"/api/conversations/{cid}/why"))
    schemas.PreviewOutcome.model_validate(await bot.api("POST", f"/api/automations/{a['id']}/preview"))
    schemas.LintList.model_validate(await bot.api("GET", "/api/automations/lint"))
    for op in ("previewAutomation", "previewSavedAutomation", "lintAutomations", "explainConversation"):
        assert any(o.id == op for o in OPERATIONS)
