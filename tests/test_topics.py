"""Topics with a priority and a team, and the priority and team they give conversations: the
rules of routing, every way a conversation's topics change (automation, agent, admin, deletion),
the chat commands and every bad input — over HTTP and chat, on both stores."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
from aiohttp import ClientResponse

from bot.services.people import People
from bot.store import repo
from tests.conftest import STORES, TOKEN, Bot

pytestmark = pytest.mark.parametrize("db_url", STORES, indirect=True)


# --- helpers -------------------------------------------------------------------------------------


async def teams(*names: str) -> None:
    """Teams are the people service's (their API is tested with it); here they only need to exist."""
    for name in names:
        await People().add_team(name, actor="cli")


async def topic(bot: Bot, name: str, priority: str | None = None, team: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name}
    if priority is not None:
        body["priority"] = priority
    if team is not None:
        body["team"] = team
    return await bot.api("POST", "/api/topics", json=body, expect=201)  # type: ignore[no-any-return]


async def raw(bot: Bot, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
    resp: ClientResponse = await bot.client.request(
        method, path, headers={"Authorization": f"Bearer {TOKEN}"}, **kwargs
    )
    return resp.status, await resp.json()


async def change(bot: Bot, cid: int, *, add: Sequence[str] = (), remove: Sequence[str] = (), **extra: Any) -> Any:
    """POST /api/conversations/{cid}/topics; the conversation JSON it answers."""
    body = {"add": list(add), "remove": list(remove), **extra}
    return await bot.api("POST", f"/api/conversations/{cid}/topics", json=body)


async def conversation(bot: Bot, text: str = "hello", *, thread: str | None = None) -> int:
    return int((await bot.webhook(text, thread=thread))["conversation_id"])


def routing(conv: dict[str, Any]) -> tuple[str, str | None]:
    return conv["priority"], conv["team"]


async def events(cid: int) -> list[tuple[str, str, str | None]]:
    return [(e.action, e.actor, e.reason) for e in await repo.conversation_events(cid)]


# --- topics: priority and team ------------------------------------------------------------------------


async def test_a_topic_has_a_priority_and_a_team(bot: Bot) -> None:
    await teams("Billing", "Sales")
    assert await topic(bot, "Refunds", "high", "billing") == {"name": "Refunds", "priority": "high", "team": "Billing"}
    assert await topic(bot, "Other") == {"name": "Other", "priority": "normal", "team": None}
    assert await topic(bot, "Outage", "URGENT", None) == {"name": "Outage", "priority": "urgent", "team": None}
    listed = await bot.api("GET", "/api/topics")
    assert listed == {
        "items": [
            {"name": "Other", "priority": "normal", "team": None},
            {"name": "Outage", "priority": "urgent", "team": None},
            {"name": "Refunds", "priority": "high", "team": "Billing"},
        ],
        "next_cursor": None,
    }
    # PATCH changes what it is given; team null removes it
    patched = await bot.api("PATCH", "/api/topics/refunds", json={"priority": "low"})
    assert patched == {"name": "Refunds", "priority": "low", "team": "Billing"}
    patched = await bot.api("PATCH", "/api/topics/Refunds", json={"team": "SALES"})
    assert patched == {"name": "Refunds", "priority": "low", "team": "Sales"}
    patched = await bot.api("PATCH", "/api/topics/Refunds", json={"team": None})
    assert patched == {"name": "Refunds", "priority": "low", "team": None}
    assert await bot.api("PATCH", "/api/topics/Refunds", json={}) == patched


async def test_bad_topic_input_names_the_field_and_value_and_writes_nothing(bot: Bot) -> None:
    await teams("Billing")
    await topic(bot, "Refunds")
    refusals = [
        ("POST", "/api/topics", {"name": "Sales", "team": "Nowhere"},
         400, {"error": 'unknown team "Nowhere" — create it with POST /api/teams', "field": "team"}),
        ("POST", "/api/topics", {"name": "Sales", "priority": "hgih"},
         400, {"error": 'unknown priority "hgih" — use urgent, high, normal or low', "field": "priority"}),
        ("POST", "/api/topics", {"name": "Sales", "priority": 1},
         400, {"error": "priority must be urgent, high, normal or low", "field": "priority"}),
        ("POST", "/api/topics", {"name": "Sales", "team": ["Billing"]},
         400, {"error": "team must be a team's name, or null for none", "field": "team"}),
        ("POST", "/api/topics", {"name": "Sales", "colour": "red"},
         400, {"error": 'unknown field "colour"', "field": "colour"}),
        ("POST", "/api/topics", {"priority": "high"},
         400, {"error": 'give the topic\'s name, e.g. {"name": "billing"}', "field": "name"}),
        ("POST", "/api/topics", {"name": "refunds", "priority": "high"},
         409, {"error": 'topic "Refunds" already exists', "field": "name"}),
        ("PATCH", "/api/topics/Refunds", {"team": "Nowhere"},
         400, {"error": 'unknown team "Nowhere" — create it with POST /api/teams', "field": "team"}),
        ("PATCH", "/api/topics/Refunds", {"priority": "hgih", "team": "Billing"},
         400, {"error": 'unknown priority "hgih" — use urgent, high, normal or low', "field": "priority"}),
        ("PATCH", "/api/topics/Refunds", {"name": "Other"},
         400, {"error": 'unknown field "name"', "field": "name"}),
        ("PATCH", "/api/topics/Nothing", {"priority": "high"},
         404, {"error": 'unknown topic "Nothing" — see GET /api/topics'}),
    ]  # fmt: skip
    for method, path, body, status, error in refusals:
        assert await raw(bot, method, path, json=body) == (status, error), body
    assert (await bot.api("GET", "/api/topics"))["items"] == [{"name": "Refunds", "priority": "normal", "team": None}]


# --- the rules of routing, through agents' topic changes -------------------------------------------


async def test_no_topics_is_normal_and_no_team(bot: Bot) -> None:
    cid = await conversation(bot)
    assert routing(await bot.conversation(cid)) == ("normal", None)
    items = (await bot.api("GET", "/api/conversations"))["items"]
    assert routing(items[0]) == ("normal", None)


async def test_priority_is_the_highest_among_the_topics(bot: Bot) -> None:
    await topic(bot, "Later", "low")
    await topic(bot, "Soon", "high")
    await topic(bot, "Now", "urgent")
    cid = await conversation(bot)
    assert routing(await change(bot, cid, add=["Later"])) == ("low", None)
    assert routing(await change(bot, cid, add=["soon"])) == ("high", None)
    assert routing(await change(bot, cid, add=["Now"])) == ("urgent", None)
    assert routing(await change(bot, cid, remove=["now", "Soon"])) == ("low", None)
    assert routing(await change(bot, cid, remove=["Later"])) == ("normal", None)


async def test_team_comes_from_the_highest_priority_topic_that_names_one(bot: Bot) -> None:
    await teams("Billing", "Sales")
    await topic(bot, "Leads", "low", "Sales")
    await topic(bot, "Outage", "urgent")
    await topic(bot, "Refunds", "high", "Billing")
    cid = await conversation(bot)
    assert routing(await change(bot, cid, add=["Leads"])) == ("low", "Sales")
    assert routing(await change(bot, cid, add=["Outage"])) == ("urgent", "Sales")  # the only one with a team
    assert routing(await change(bot, cid, add=["Refunds"])) == ("urgent", "Billing")
    conv = await change(bot, cid, remove=["Refunds"])
    assert routing(conv) == ("urgent", "Sales") and conv["topics"] == ["Leads", "Outage"]


async def test_ties_go_to_the_topic_applied_first(bot: Bot) -> None:
    await teams("Billing", "Sales")
    await topic(bot, "Leads", "high", "Sales")
    await topic(bot, "Refunds", "high", "Billing")
    cid = await conversation(bot)
    assert routing(await change(bot, cid, add=["Leads", "Refunds"])) == ("high", "Sales")
    assert routing(await change(bot, cid, remove=["Leads"])) == ("high", "Billing")
    conv = await change(bot, cid, add=["Leads"])  # applied again: now after Refunds
    assert routing(conv) == ("high", "Billing") and conv["topics"] == ["Refunds", "Leads"]


# --- each way a conversation's topics change ----------------------------------------------------------


async def test_an_automation_routes_the_conversation_during_ingest(bot: Bot) -> None:
    await teams("Billing", "Sales")
    await topic(bot, "Refunds", "high", "Billing")
    await topic(bot, "Leads", "high", "Sales")
    for name, word, label in (("Refund", "refund", "Refunds"), ("Lead", "quote", "Leads")):
        body = {"name": name, "keywords": word, "actions": [{"type": "topic", "topic": label}]}
        await bot.api("POST", "/api/automations", json=body, expect=201)
    # many conversations at once: one group commit may route several, set-based
    sent = await asyncio.gather(*(bot.webhook(f"a refund please {i}", thread=f"r{i}") for i in range(12)))
    for data in sent:
        assert routing(await bot.conversation(data["conversation_id"])) == ("high", "Billing")
    cid = sent[0]["conversation_id"]
    await bot.webhook("and a quote", thread="r0")  # a second topic of equal priority, applied later
    conv = await bot.conversation(cid)
    assert conv["topics"] == ["Refunds", "Leads"] and routing(conv) == ("high", "Billing")
    await bot.webhook("just a question", thread="plain")
    plain = (await bot.api("GET", "/api/conversations?limit=1"))["items"][0]
    assert routing(plain) == ("normal", None)


async def test_an_agent_changes_topics_by_hand_and_the_change_is_recorded(bot: Bot) -> None:
    await teams("Billing")
    await topic(bot, "Refunds", "urgent", "Billing")
    await topic(bot, "Sales")
    cid = await conversation(bot)
    conv = await change(bot, cid, add=["refunds", "Sales"], agent="ana")
    assert conv["id"] == cid and conv["topics"] == ["Refunds", "Sales"] and routing(conv) == ("urgent", "Billing")
    assert "messages" in conv  # the conversation as GET /api/conversations/{id} shows it
    conv = await change(bot, cid, add=["Sales"], remove=["REFUNDS"], agent="ana")
    assert conv["topics"] == ["Sales"] and routing(conv) == ("normal", None)
    assert await change(bot, cid, add=["Sales"], remove=["Refunds"]) == conv  # nothing to change
    assert await events(cid) == [
        ("topics_changed", "agent:ana", "+Refunds +Sales"),
        ("topics_changed", "agent:ana", "−Refunds"),
    ]
    await change(bot, cid, add=["Refunds"])
    assert (await events(cid))[-1] == ("topics_changed", "agent:api", "+Refunds")


async def test_bad_topic_changes_name_the_problem_and_change_nothing(bot: Bot) -> None:
    await topic(bot, "Refunds", "high")
    cid = await conversation(bot)
    await change(bot, cid, add=["Refunds"])
    before = await bot.conversation(cid)
    url = f"/api/conversations/{cid}/topics"
    refusals = [
        ({"add": ["Nope"]},
         400, {"error": 'unknown topic "Nope" — create it with POST /api/topics', "field": "add"}),
        ({"add": ["Refunds"], "remove": ["Nope"]},
         400, {"error": 'unknown topic "Nope" — create it with POST /api/topics', "field": "remove"}),
        ({"add": ["Refunds"], "remove": ["refunds"]},
         400, {"error": 'topic "Refunds" is both added and removed — keep it in one list', "field": "remove"}),
        ({"add": ["x" * 300]},
         400, {"error": f'unknown topic "{"x" * 300}" — create it with POST /api/topics', "field": "add"}),
        ({},
         400, {"error": 'give topics to add or remove, e.g. {"add": ["Refunds"], "remove": ["Sales"]}',
               "field": "add"}),
        ({"add": [" "]},
         400, {"error": 'give topics to add or remove, e.g. {"add": ["Refunds"], "remove": ["Sales"]}',
               "field": "add"}),
        ({"add": "Refunds"}, 400, {"error": "add must be a list of topic names", "field": "add"}),
        ({"remove": [3]}, 400, {"error": "remove[0] must be a list of topic names", "field": "remove"}),
        ({"add": ["Refunds"], "tags": []}, 400, {"error": 'unknown field "tags"', "field": "tags"}),
    ]  # fmt: skip
    for body, status, error in refusals:
        assert await raw(bot, "POST", url, json=body) == (status, error), body
    status, error = await raw(bot, "POST", "/api/conversations/999999/topics", json={"add": ["Refunds"]})
    assert (status, error) == (404, {"error": "no such conversation: 999999"})
    assert await bot.conversation(cid) == before
    assert [e[2] for e in await events(cid)] == ["+Refunds"]


async def test_an_admin_changing_a_topic_moves_its_open_conversations(bot: Bot) -> None:
    await teams("Billing", "Sales")
    await topic(bot, "Refunds", "high", "Billing")
    await topic(bot, "Leads", "normal", "Sales")
    open_ids = [await conversation(bot, thread=f"o{i}") for i in range(3)]
    done = await conversation(bot, thread="done")
    for cid in [*open_ids, done]:
        await change(bot, cid, add=["Refunds", "Leads"])
    await bot.api("POST", f"/api/conversations/{done}/resolve", json={})
    untouched = await conversation(bot, thread="other")
    await change(bot, untouched, add=["Leads"])

    await bot.api("PATCH", "/api/topics/Refunds", json={"priority": "low"})
    for cid in open_ids:  # Leads (normal, Sales) is now the highest
        assert routing(await bot.conversation(cid)) == ("normal", "Sales")
    assert routing(await bot.conversation(done)) == ("high", "Billing")  # resolved: as it was
    await bot.api("PATCH", "/api/topics/Refunds", json={"priority": "urgent", "team": None})
    for cid in open_ids:
        assert routing(await bot.conversation(cid)) == ("urgent", "Sales")
    await bot.api("PATCH", "/api/topics/Leads", json={"team": None})
    for cid in open_ids:
        assert routing(await bot.conversation(cid)) == ("urgent", None)
    assert routing(await bot.conversation(untouched)) == ("normal", None)
    assert routing(await bot.conversation(done)) == ("high", "Billing")


async def test_a_deleted_topic_stays_named_but_no_longer_routes(bot: Bot) -> None:
    await teams("Billing")
    await topic(bot, "Refunds", "urgent", "Billing")
    await topic(bot, "Sales", "low")
    cid = await conversation(bot)
    await change(bot, cid, add=["Refunds", "Sales"])
    await bot.api("DELETE", "/api/topics/Refunds")
    conv = await bot.conversation(cid)
    assert conv["topics"] == ["Refunds", "Sales"] and routing(conv) == ("low", None)
    # its name can still be removed from the conversation; adding it is refused
    status, error = await raw(bot, "POST", f"/api/conversations/{cid}/topics", json={"add": ["Refunds"]})
    assert (status, error["field"]) == (400, "add")
    conv = await change(bot, cid, remove=["Refunds"])
    assert conv["topics"] == ["Sales"] and routing(conv) == ("low", None)
    await change(bot, cid, add=["Sales"])  # nothing changes
    # a topic created again under that name routes the conversations that kept it
    other = await conversation(bot, thread="kept")
    await topic(bot, "Outage", "high")
    await change(bot, other, add=["Outage"])
    await bot.api("DELETE", "/api/topics/Outage")
    assert routing(await bot.conversation(other)) == ("normal", None)
    await topic(bot, "outage", "urgent", "Billing")
    assert routing(await bot.conversation(other)) == ("urgent", "Billing")


# --- chat ------------------------------------------------------------------------------------------


async def test_chat_adds_lists_and_changes_topics(bot: Bot) -> None:
    await teams("Billing")
    assert await bot.command("topics add Refunds priority=high team=billing") == (
        'Added topic "Refunds" (high, team Billing).'
    )
    assert await bot.command("topics add Late delivery priority=low") == 'Added topic "Late delivery" (low, no team).'
    assert await bot.command('topics add "Sales leads"') == 'Added topic "Sales leads" (normal, no team).'
    assert await bot.command("topics") == (
        "Topics:\nLate delivery · low\nRefunds · high · team Billing\nSales leads · normal"
    )
    cid = await conversation(bot)
    await change(bot, cid, add=["Refunds"])
    assert await bot.command("topics set refunds priority=urgent") == (
        'Topic "Refunds" is now urgent, team Billing; its open conversations follow.'
    )
    assert routing(await bot.conversation(cid)) == ("urgent", "Billing")
    assert await bot.command("topics set Refunds team=none") == (
        'Topic "Refunds" is now urgent, no team; its open conversations follow.'
    )
    assert routing(await bot.conversation(cid)) == ("urgent", None)
    assert await bot.command('topics set "Late delivery" team=Billing priority=normal') == (
        'Topic "Late delivery" is now normal, team Billing; its open conversations follow.'
    )
    assert "topics set NAME" in await bot.command("help")


async def test_chat_refusals_name_the_problem_and_the_way_out(bot: Bot) -> None:
    await bot.command("topics add Refunds")
    refusals = [
        ("topics add Sales team=Nowhere",
         'unknown team "Nowhere" — create it first (POST /api/teams), then send this again'),
        ("topics add Sales priority=hgih", 'unknown priority "hgih" — use urgent, high, normal or low'),
        ("topics add Sales priority=high priority=low", '"priority" is given twice'),
        ("topics add Sales priority=high extra", 'unexpected "extra" — put the name first, then priority=… and team=…'),
        ("topics add priority=high", "give the topic's name, e.g. /automation topics add billing"),
        ("topics set Nothing priority=high", 'unknown topic "Nothing" — see /automation topics'),
        ("topics set Refunds", "say what to change, e.g. /automation topics set Refunds priority=high team=Billing"),
        ("topics set priority=high", "name the topic to change, e.g. /automation topics set Refunds priority=high"),
        ("topics set Refunds team=Nowhere",
         'unknown team "Nowhere" — create it first (POST /api/teams), then send this again'),
        ("topics rename Refunds",
         'unknown "rename" — use /automation topics, topics add NAME, topics set NAME or topics delete NAME'),
    ]  # fmt: skip
    for text, reply in refusals:
        assert await bot.command(text) == reply, text
    assert await bot.command("topics") == "Topics:\nRefunds · normal"
    assert await bot.command("topics set Refunds priority=high", admin=False) == (
        "Only inbox admins can manage automations."
    )
    assert await bot.command("topics") == "Topics:\nRefunds · normal"
