"""Conversation lifecycle and automation effects, end to end over HTTP,
on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bot.store import db
from tests.conftest import STORES, Bot, eventually, make_settings

pytestmark = pytest.mark.parametrize("db_url", STORES, indirect=True)


async def setup_au_revoir(bot: Bot, **fields: Any) -> dict[str, Any]:
    await bot.api("POST", "/api/reasons", json={"name": "Contact left"}, expect=201)
    await bot.api("POST", "/api/tags", json={"name": "closing"}, expect=201)
    body = {
        "name": "Au revoir",
        "keywords": "au revoir, bye",
        "actions": [{"type": "tag", "tag": "closing"}, {"type": "resolve", "reason": "Contact left"}],
        **fields,
    }
    return await bot.api("POST", "/api/automations", json=body, expect=201)  # type: ignore[no-any-return]


async def test_au_revoir_after_agent_resolved_opens_and_closes_a_new_conversation(bot: Bot) -> None:
    automation = await setup_au_revoir(bot)
    first = await bot.webhook("Bonjour, ma commande n'est pas arrivée", id="m-1")
    await bot.webhook("Elle devait arriver lundi", id="m-2")
    conv = await bot.conversation(first["conversation_id"])
    assert conv["status"] == "open" and len(conv["messages"]) == 2

    await bot.api("POST", f"/api/conversations/{conv['id']}/resolve", json={"reason": "Contact left"})
    resolved = await bot.conversation(conv["id"])
    assert resolved["status"] == "resolved"
    assert resolved["resolved_by"] == "agent:api" and resolved["resolved_at"]

    bye = await bot.webhook("Au revoir !", id="m-3")
    assert bye["conversation_id"] != conv["id"]
    new = await bot.conversation(bye["conversation_id"])
    assert new["previous_id"] == conv["id"]
    assert new["status"] == "resolved"
    assert new["resolution_reason"] == "Contact left"
    assert new["resolved_by"] == f"automation:{automation['id']}"
    assert new["tags"] == ["closing"]
    assert [m["text"] for m in new["messages"]] == ["Au revoir !"]
    assert [r["keywords"] for r in new["runs"]] == [["au revoir"]]


async def test_resolve_only_on_first_message_other_actions_always(bot: Bot) -> None:
    await setup_au_revoir(bot)
    first = await bot.webhook("hello there", thread="t-1")
    later = await bot.webhook("ok bye", thread="t-1")
    assert later["conversation_id"] == first["conversation_id"]
    conv = await bot.conversation(first["conversation_id"])
    assert conv["status"] == "open", "a keyword on a later message must not auto-resolve"
    assert conv["tags"] == ["closing"]
    assert conv["messages"][1]["tags"] == ["closing"]
    assert conv["runs"][0]["actions"] == [{"type": "tag", "tag": "closing"}]


async def test_match_all_across_messages_and_resolve_needs_all_in_first(bot: Bot) -> None:
    await bot.api("POST", "/api/topics", json={"name": "Refunds"}, expect=201)
    await bot.api(
        "POST",
        "/api/automations",
        json={
            "name": "Refund",
            "keywords": ["refund", "order"],
            "match": "all",
            "actions": [{"type": "topic", "topic": "Refunds"}, {"type": "resolve", "reason": None}],
        },
        expect=201,
    )
    a = await bot.webhook("I want a refund", thread="all-1")
    conv = await bot.conversation(a["conversation_id"])
    assert conv["topics"] == [] and conv["runs"] == []
    await bot.webhook("nothing relevant", thread="all-1")
    await bot.webhook("for my order 42", thread="all-1")
    conv = await bot.conversation(a["conversation_id"])
    assert conv["topics"] == ["Refunds"]
    assert conv["status"] == "open", "all keywords were not in the first message: no resolve"
    assert conv["runs"][0]["keywords"] == ["order"]

    b = await bot.webhook("Refund for order 7 please", thread="all-2")
    conv_b = await bot.conversation(b["conversation_id"])
    assert conv_b["status"] == "resolved" and conv_b["resolved_by"].startswith("automation:")
    assert conv_b["topics"] == ["Refunds"]


async def test_scope_by_channel_and_type(bot: Bot) -> None:
    await bot.api("POST", "/api/tags", json={"name": "vip"}, expect=201)
    await bot.api(
        "POST",
        "/api/automations",
        json={
            "name": "Scoped",
            "keywords": "urgent",
            "actions": [{"type": "tag", "tag": "vip"}],
            "channels": ["support"],
            "types": ["group"],
        },
        expect=201,
    )
    r1 = await bot.webhook("urgent!", channel="shop", type="group", thread="s1")
    r2 = await bot.webhook("urgent!", channel="support", type="direct", thread="s2")
    r3 = await bot.webhook("urgent!", channel="support", type="group", thread="s3")
    assert (await bot.conversation(r1["conversation_id"]))["tags"] == []
    assert (await bot.conversation(r2["conversation_id"]))["tags"] == []
    assert (await bot.conversation(r3["conversation_id"]))["tags"] == ["vip"]


async def test_oldest_resolving_automation_reason_wins_and_all_fire(bot: Bot) -> None:
    for reason in ("First reason", "Second reason"):
        await bot.api("POST", "/api/reasons", json={"name": reason}, expect=201)
    await bot.api("POST", "/api/tags", json={"name": "t2"}, expect=201)
    old = await bot.api(
        "POST",
        "/api/automations",
        json={"name": "old", "keywords": "bye", "actions": [{"type": "resolve", "reason": "First reason"}]},
        expect=201,
    )
    new = await bot.api(
        "POST",
        "/api/automations",
        json={
            "name": "new",
            "keywords": "bye",
            "actions": [{"type": "resolve", "reason": "Second reason"}, {"type": "tag", "tag": "t2"}],
        },
        expect=201,
    )
    r = await bot.webhook("bye")
    conv = await bot.conversation(r["conversation_id"])
    assert conv["resolution_reason"] == "First reason"
    assert conv["resolved_by"] == f"automation:{old['id']}"
    assert [run["automation_id"] for run in conv["runs"]] == [old["id"], new["id"]]
    assert conv["tags"] == ["t2"]


async def test_disabled_and_deleted_automations_do_not_fire_and_runs_survive(bot: Bot) -> None:
    a = await setup_au_revoir(bot)
    await bot.api("POST", f"/api/automations/{a['id']}/disable")
    r = await bot.webhook("bye", thread="d1")
    assert (await bot.conversation(r["conversation_id"]))["status"] == "open"
    await bot.api("POST", f"/api/automations/{a['id']}/enable")
    r = await bot.webhook("bye", thread="d2")
    assert (await bot.conversation(r["conversation_id"]))["status"] == "resolved"
    await bot.api("PATCH", f"/api/automations/{a['id']}", json={"name": "Renamed later"})
    await bot.api("DELETE", f"/api/automations/{a['id']}")
    r3 = await bot.webhook("bye", thread="d3")
    assert (await bot.conversation(r3["conversation_id"]))["status"] == "open"
    runs = (await bot.conversation(r["conversation_id"]))["runs"]
    assert runs[0]["automation_name"] == "Au revoir"


async def test_redelivery_is_stored_once_and_fires_once(bot: Bot) -> None:
    await setup_au_revoir(bot)
    results = await asyncio.gather(*(bot.webhook("bye", id="same-id") for _ in range(5)))
    assert {(r["conversation_id"], r["message_id"]) for r in results} == {
        (results[0]["conversation_id"], results[0]["message_id"])
    }
    assert sum(not r["duplicate"] for r in results) == 1
    conv = await bot.conversation(results[0]["conversation_id"])
    assert len(conv["messages"]) == 1 and len(conv["runs"]) == 1
    again = await bot.webhook("bye", id="same-id")
    assert again["duplicate"] is True and again["message_id"] == results[0]["message_id"]


async def test_concurrent_first_messages_for_one_thread_give_one_conversation(bot: Bot) -> None:
    results = await asyncio.gather(*(bot.webhook(f"hello {i}", thread="race") for i in range(20)))
    assert len({r["conversation_id"] for r in results}) == 1
    listing = await bot.api("GET", "/api/conversations?limit=200")
    assert len(listing["items"]) == 1
    assert len((await bot.conversation(results[0]["conversation_id"]))["messages"]) == 20


async def test_two_apps_on_one_store_keep_one_open_conversation_per_thread(make_bot: Any, db_url: str) -> None:
    """Two workers (two apps, separate connections) racing on the same thread keys."""
    one = await make_bot(make_settings(db_url))
    two = await make_bot(make_settings(db_url))
    sends = []
    for i in range(30):
        target = one if i % 2 else two
        sends.append(target.webhook(f"hi {i}", thread=f"k{i % 3}", id=f"w-{i}"))
        sends.append(target.webhook(f"hi {i}", thread=f"k{i % 3}", id=f"w-{i}"))  # redelivered
    results = await asyncio.gather(*sends)
    by_thread: dict[str, set[int]] = {}
    for i, r in enumerate(results):
        by_thread.setdefault(f"k{(i // 2) % 3}", set()).add(r["conversation_id"])
    assert all(len(ids) == 1 for ids in by_thread.values()), by_thread
    listing = await one.api("GET", "/api/conversations?limit=200")
    assert len(listing["items"]) == 3
    total = 0
    for item in listing["items"]:
        total += len((await one.conversation(item["id"]))["messages"])
    assert total == 30


async def test_reopen_conflicts_when_a_newer_conversation_is_open(bot: Bot) -> None:
    r1 = await bot.webhook("first", thread="re")
    await bot.api("POST", f"/api/conversations/{r1['conversation_id']}/resolve", json={})
    r2 = await bot.webhook("second", thread="re")
    assert r2["conversation_id"] != r1["conversation_id"]
    await bot.api("POST", f"/api/conversations/{r1['conversation_id']}/reopen", expect=409)
    await bot.api("POST", f"/api/conversations/{r2['conversation_id']}/resolve", json={})
    reopened = await bot.api("POST", f"/api/conversations/{r1['conversation_id']}/reopen")
    assert reopened["status"] == "open" and reopened["resolved_by"] is None
    r3 = await bot.webhook("third", thread="re")
    assert r3["conversation_id"] == r1["conversation_id"]


async def test_automation_change_reaches_another_worker(make_bot: Any, db_url: str) -> None:
    """No restart needed: the other worker picks the change up by itself. Bounded polling with a
    generous limit (a busy machine must not fail it); bench/bench_propagation.py measures the delay."""
    one = await make_bot(make_settings(db_url))
    two = await make_bot(make_settings(db_url))
    await setup_au_revoir(one)

    async def reloaded() -> bool:
        return len(two.state.rules.current()) == 1

    await eventually(reloaded, "the other worker to load the new automation", tries=1000)  # up to ~20 s
    r = await two.webhook("bye", thread="w2")
    assert (await two.conversation(r["conversation_id"]))["status"] == "resolved"


def _fires(bot: Bot, text: str) -> list[str]:
    """Names of the automations this worker's current rules fire on `text` (a first message)."""
    from bot.domain import ConversationType

    ev = bot.state.rules.current().evaluate(text=text, channel="shop", type=ConversationType.DIRECT, first_message=True)
    return [f.rule.name for f in ev.firings]


async def _until(check: Any, timeout: float = 2.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline and not check():  # noqa: ASYNC110 - another worker's state
        await asyncio.sleep(0.05)
    assert check()


async def test_every_kind_of_automation_change_reaches_both_workers(make_bot: Any, db_url: str) -> None:
    """Changes made on either worker — create, keyword change, disable, enable, delete — take
    effect on the worker that made them at once and on the other one after its next poll, also
    when both change automations in turn (each applies its own change or catches up)."""
    one = await make_bot(make_settings(db_url))
    two = await make_bot(make_settings(db_url))
    bye = await setup_au_revoir(one)
    assert _fires(one, "bye") == ["Au revoir"]
    await _until(lambda: _fires(two, "bye") == ["Au revoir"])

    await one.api("PATCH", f"/api/automations/{bye['id']}", json={"keywords": "ciao"})
    assert _fires(one, "bye") == [] and _fires(one, "ciao") == ["Au revoir"]
    await _until(lambda: _fires(two, "ciao") == ["Au revoir"] and _fires(two, "bye") == [])

    # the second worker changes things now: its rules are behind by nothing, the first one's by one
    tagged = await two.api(
        "POST",
        "/api/automations",
        json={"name": "Tagger", "keywords": "ciao", "actions": [{"type": "tag", "tag": "closing"}]},
        expect=201,
    )
    await two.api("POST", f"/api/automations/{bye['id']}/disable")
    assert _fires(two, "ciao") == ["Tagger"]
    await one.api("POST", f"/api/automations/{bye['id']}/enable")  # one catches up, then applies
    assert _fires(one, "ciao") == ["Au revoir", "Tagger"]
    await _until(lambda: _fires(two, "ciao") == ["Au revoir", "Tagger"])

    await two.api("DELETE", f"/api/automations/{tagged['id']}")
    assert _fires(two, "ciao") == ["Au revoir"]
    await _until(lambda: _fires(one, "ciao") == ["Au revoir"])
    r = await one.webhook("ciao", thread="w3")
    assert (await one.conversation(r["conversation_id"]))["status"] == "resolved"


async def test_migrate_is_idempotent(make_bot: Any, db_url: str) -> None:
    """Migrating an up-to-date store again applies nothing and keeps what it holds."""
    bot = await make_bot(make_settings(db_url))
    cid = (await bot.webhook("kept across migrations", thread="mig"))["conversation_id"]
    assert await db.pending_migrations(db_url) == []
    await db.migrate(db_url)
    await db.migrate(db_url)
    assert await db.pending_migrations(db_url) == []
    again = await make_bot(make_settings(db_url))
    assert [m["text"] for m in (await again.conversation(cid))["messages"]] == ["kept across migrations"]
