"""The queue, over HTTP on both stores: waiting_since, message author and delivery, the
conversation's history, assignment and its conflict rule, `sort=queue` with its keyset cursor and
filters, and the queue's gauges in /metrics."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp import web

from bot.domain import User
from bot.services.people import People
from bot.store import repo
from bot.store.models import Conversation, Team
from tests.conftest import SHOP_SECRET, STORES, TOKEN, Bot, eventually, make_settings
from tests.signing import signed_headers

pytestmark = pytest.mark.parametrize("db_url", STORES, indirect=True)

MakeBot = Callable[..., Awaitable[Bot]]
PASSWORD = "correct horse battery"


def at(minute: int, second: int = 0) -> str:
    return f"2026-11-24T10:{minute:02d}:{second:02d}Z"


def parsed(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


async def send(
    bot: Bot, text: str, *, thread: str, sent_at: str | None = None, contact: str = "c-42", name: str = "Marie"
) -> dict[str, Any]:
    """A signed webhook message with its own `sent_at` (the platform's time of the message)."""
    payload: dict[str, Any] = {"id": f"m-{thread}-{text}-{sent_at}", "contact": {"id": contact, "name": name}}
    payload.update(text=text, thread=thread)
    if sent_at:
        payload["sent_at"] = sent_at
    body = json.dumps(payload).encode()
    resp = await bot.client.post("/webhooks/shop", data=body, headers=signed_headers(SHOP_SECRET, body))
    data = await resp.json()
    assert resp.status == 200, data
    return data  # type: ignore[no-any-return]


async def waiting(bot: Bot, cid: int) -> str | None:
    return (await bot.conversation(cid))["waiting_since"]  # type: ignore[no-any-return]


async def as_user(bot: Bot, user: User | int | None, method: str, path: str, *, expect: int = 200, **kw: Any) -> Any:
    """An API call with the bearer token, acting as `user` (X-Inbox-User) when given."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    if user is not None:
        headers["X-Inbox-User"] = str(user if isinstance(user, int) else user.id)
    resp = await bot.client.request(method, path, headers=headers, **kw)
    data = await resp.json()
    assert resp.status == expect, (resp.status, data)
    return data


async def add_user(email: str, name: str, role: str = "agent") -> User:
    return (await People().add_user(email=email, name=name, role=role, password=PASSWORD, actor="cli")).user


async def route(cid: int, *, priority: int = 2, team: str | None = None) -> None:
    """Put a conversation at a priority and team (as topics would: their rules are tested apart)."""
    team_id = None
    if team is not None:
        row = await Team.filter(key=team.casefold()).first()
        team_id = row.id if row else (await Team.create(name=team, key=team.casefold())).id
    await Conversation.filter(id=cid).update(priority=priority, team_id=team_id)


# --- waiting_since ------------------------------------------------------------------------------


async def test_waiting_since_is_the_first_inbound_message_after_our_last_reply(bot: Bot) -> None:
    cid = (await send(bot, "hello", thread="w", sent_at=at(5)))["conversation_id"]
    assert parsed(await waiting(bot, cid)) == parsed(at(5))
    # the conversation's order decides, not the platform's clock: a later message stamped earlier
    # does not move the start of the wait
    await send(bot, "are you there", thread="w", sent_at=at(1))
    assert parsed(await waiting(bot, cid)) == parsed(at(5))

    await bot.api("POST", f"/api/conversations/{cid}/messages", json={"text": "Yes, how can we help?"}, expect=201)
    assert await waiting(bot, cid) is None  # our message came last

    await send(bot, "my order", thread="w", sent_at=at(20))
    await send(bot, "is late", thread="w", sent_at=at(21))
    assert parsed(await waiting(bot, cid)) == parsed(at(20))

    await bot.api("POST", f"/api/conversations/{cid}/resolve", json={})
    assert await waiting(bot, cid) is None  # resolved: nobody waits
    await bot.api("POST", f"/api/conversations/{cid}/reopen", json={})
    assert parsed(await waiting(bot, cid)) == parsed(at(20))  # recomputed by the same rule

    await bot.api("POST", f"/api/conversations/{cid}/messages", json={"text": "Sent today"}, expect=201)
    await bot.api("POST", f"/api/conversations/{cid}/resolve", json={})
    await bot.api("POST", f"/api/conversations/{cid}/reopen", json={})
    assert await waiting(bot, cid) is None  # reopened with our message last


async def test_a_conversation_resolved_by_an_automation_waits_for_nobody(bot: Bot) -> None:
    await bot.api("POST", "/api/automations", json={"name": "Bye", "keywords": "bye", "actions": [{"type": "resolve"}]},
                  expect=201)  # fmt: skip
    cid = (await send(bot, "hello", thread="a", sent_at=at(1)))["conversation_id"]
    assert parsed(await waiting(bot, cid)) == parsed(at(1))
    # a resolve automation acts on a conversation's first message
    first = (await send(bot, "ok bye", thread="b", sent_at=at(3)))["conversation_id"]
    conv = await bot.conversation(first)
    assert (conv["status"], conv["resolved_by"], conv["waiting_since"]) == ("resolved", "automation:1", None)
    assert parsed(await waiting(bot, cid)) == parsed(at(1))  # the other conversation still waits


# --- author, delivery, events -------------------------------------------------------------------------


async def test_messages_say_who_wrote_ours_and_how_it_was_delivered(bot: Bot) -> None:
    cid = (await send(bot, "hello", thread="d"))["conversation_id"]
    reply = await bot.api("POST", f"/api/conversations/{cid}/messages", json={"text": "Hi", "agent": "a-7"}, expect=201)
    # the test channel has no reply_url: replies are only stored, for the integrator to read
    assert (reply["author"], reply["delivery"]) == ("agent:a-7", "stored")
    inbound, outbound = (await bot.conversation(cid))["messages"]
    assert (inbound["author"], inbound["delivery"]) == (None, None)
    assert (outbound["author"], outbound["delivery"]) == ("agent:a-7", "stored")


async def test_delivery_goes_pending_sent_failed_and_pending_again_on_retry(
    make_bot: MakeBot, db_url: str, aiohttp_server: Any
) -> None:
    statuses = [200, 400, 200]

    async def replies(request: web.Request) -> web.Response:
        status = statuses.pop(0) if statuses else 200
        return web.json_response({}, status=status)

    app = web.Application()
    app.router.add_post("/replies", replies)
    server = await aiohttp_server(app)
    bot = await make_bot(
        make_settings(
            db_url,
            channels=[{"name": "shop", "kind": "webhook", "secret_env": "TEST_SHOP_SECRET",
                       "reply_url": str(server.make_url("/replies"))}],
        )
    )  # fmt: skip
    await bot.state.outbox.stop()  # the test runs the outbox itself, to see `pending`
    cid = (await send(bot, "hello", thread="p"))["conversation_id"]

    async def delivery(mid: int) -> str:
        conv = await bot.conversation(cid)
        return next(m["delivery"] for m in conv["messages"] if m["id"] == mid)  # type: ignore[no-any-return]

    ok = await bot.api("POST", f"/api/conversations/{cid}/messages", json={"text": "one"}, expect=201)
    assert ok["delivery"] == "pending"
    await bot.state.outbox.drain()
    assert await delivery(ok["id"]) == "sent"

    refused = await bot.api("POST", f"/api/conversations/{cid}/messages", json={"text": "two"}, expect=201)
    await bot.state.outbox.drain()
    assert await delivery(refused["id"]) == "failed"  # the reply_url refused it: failed for good
    (job,) = [
        j for j in (await bot.api("GET", "/api/outbox?status=failed"))["items"] if j["message_id"] == refused["id"]
    ]
    await bot.api("POST", f"/api/outbox/{job['id']}/retry")
    assert await delivery(refused["id"]) == "pending"
    await bot.state.outbox.drain()
    assert await delivery(refused["id"]) == "sent"


async def test_events_tell_the_conversations_history_oldest_first(bot: Bot) -> None:
    ana = await add_user("ana@example.com", "Ana")
    await bot.api("POST", "/api/reasons", json={"name": "Done"}, expect=201)
    cid = (await send(bot, "hello", thread="e"))["conversation_id"]
    await bot.api("POST", f"/api/conversations/{cid}/assign", json={"user": ana.id})
    await as_user(bot, ana, "POST", f"/api/conversations/{cid}/messages", json={"text": "Hi"}, expect=201)
    await repo.record_event(cid, "topics_changed", ana.actor, "+Billing")  # as the topics service writes it
    await as_user(bot, ana, "POST", f"/api/conversations/{cid}/resolve", json={"reason": "Done"})
    await bot.api("POST", f"/api/conversations/{cid}/reopen", json={"agent": "a-2"})
    await bot.api("POST", f"/api/conversations/{cid}/assign", json={"user": None})

    conv = await bot.conversation(cid)
    events = conv["events"]
    assert [(e["kind"], e["by"], e["detail"]) for e in events] == [
        ("opened", None, None),
        ("assigned", "agent:api", f"user:{ana.id}"),
        ("replied", f"user:{ana.id}", None),
        ("topics_changed", f"user:{ana.id}", "+Billing"),
        ("resolved", f"user:{ana.id}", "Done"),
        ("reopened", "agent:a-2", None),
        ("assigned", "agent:api", None),
    ]
    assert events[0]["at"] == conv["created_at"]
    moments = [parsed(e["at"]) for e in events]
    assert moments == sorted(moments)  # type: ignore[type-var]
    assert conv["resolved_by"] is None and conv["assignee"] is None


# --- assignment ----------------------------------------------------------------------------------------


async def test_assignment_rules(bot: Bot) -> None:
    ana = await add_user("ana@example.com", "Ana")
    bob = await add_user("bob@example.com", "Bob")
    root = await add_user("root@example.com", "Root", role="admin")
    gone = await add_user("gone@example.com", "Gone")
    await People().update_user(gone.id, active=False, actor="cli")
    one = (await send(bot, "hello", thread="one"))["conversation_id"]
    two = (await send(bot, "hello", thread="two"))["conversation_id"]

    # a bearer token may assign anyone
    conv = await bot.api("POST", f"/api/conversations/{one}/assign", json={"user": ana.id})
    assert conv["assignee"] == {"id": ana.id, "name": "Ana"}
    # an agent may not take what someone else holds: 409 naming who, and nothing changes
    refused = await as_user(bot, bob, "POST", f"/api/conversations/{one}/assign", json={"user": bob.id}, expect=409)
    assert refused["error"] == f"conversation {one} is assigned to Ana (ana@example.com)"
    assert (await bot.conversation(one))["assignee"]["id"] == ana.id
    await as_user(bot, bob, "POST", f"/api/conversations/{one}/assign", json={"user": None}, expect=409)
    # nor give a conversation to someone else
    other = await as_user(bot, bob, "POST", f"/api/conversations/{two}/assign", json={"user": ana.id}, expect=403)
    assert "only for themselves" in other["error"]
    # but may take a free one, take it again (no second event), and let it go
    taken = await as_user(bot, bob, "POST", f"/api/conversations/{two}/assign", json={"user": bob.id})
    assert taken["assignee"] == {"id": bob.id, "name": "Bob"}
    await as_user(bot, bob, "POST", f"/api/conversations/{two}/assign", json={"user": bob.id})
    assert [e["by"] for e in taken["events"] if e["kind"] == "assigned"] == [f"user:{bob.id}"]
    assert [e for e in (await bot.conversation(two))["events"] if e["kind"] == "assigned"] == [
        e for e in taken["events"] if e["kind"] == "assigned"
    ]
    released = await as_user(bot, bob, "POST", f"/api/conversations/{two}/assign", json={"user": None})
    assert released["assignee"] is None
    # an admin acting through the header may assign anyone, whoever holds it
    moved = await as_user(bot, root, "POST", f"/api/conversations/{one}/assign", json={"user": bob.id})
    assert moved["assignee"]["id"] == bob.id and moved["events"][-1]["by"] == f"user:{root.id}"

    # bad input: 400 naming the field
    for body, field in [
        ({"user": 99999}, "user"),
        ({"user": gone.id}, "user"),
        ({"user": "ana"}, "user"),
        ({}, "user"),
        ({"user": ana.id, "colour": 1}, "colour"),
    ]:
        err = await bot.api("POST", f"/api/conversations/{one}/assign", json=body, expect=400)
        assert err["field"] == field, (body, err)
    assert "deactivated" in (await bot.api("POST", f"/api/conversations/{one}/assign", json={"user": gone.id},
                                           expect=400))["error"]  # fmt: skip
    await bot.api("POST", "/api/conversations/424242/assign", json={"user": ana.id}, expect=404)
    assert (await bot.conversation(one))["assignee"]["id"] == bob.id  # nothing half-written

    # a conversation opened later on the same thread starts unassigned
    await bot.api("POST", f"/api/conversations/{one}/resolve", json={})
    again = (await send(bot, "hello again", thread="one"))["conversation_id"]
    assert again != one and (await bot.conversation(again))["assignee"] is None


async def test_x_inbox_user_acts_as_that_user_with_that_users_role(bot: Bot) -> None:
    ana = await add_user("ana@example.com", "Ana")
    root = await add_user("root@example.com", "Root", role="admin")
    gone = await add_user("gone@example.com", "Gone")
    await People().update_user(gone.id, active=False, actor="cli")
    cid = (await send(bot, "hello", thread="x"))["conversation_id"]

    conv = await as_user(bot, ana, "POST", f"/api/conversations/{cid}/resolve", json={})
    assert conv["resolved_by"] == f"user:{ana.id}"
    err = await as_user(bot, ana, "POST", f"/api/conversations/{cid}/reopen", json={"agent": "a-1"}, expect=400)
    assert err["field"] == "agent"
    # an agent works on conversations, not settings; an admin may do both
    assert (await as_user(bot, ana, "GET", "/api/automations", expect=403))["error"].startswith("ana@example.com")
    await as_user(bot, ana, "POST", "/api/tags", json={"name": "vip"}, expect=403)
    await as_user(bot, root, "POST", "/api/tags", json={"name": "vip"}, expect=201)
    await as_user(bot, ana, "GET", "/api/conversations")
    for who in (99999, gone.id):
        assert (await as_user(bot, who, "GET", "/api/conversations", expect=400))["field"] == "X-Inbox-User"
    resp = await bot.client.get(
        "/api/conversations", headers={"Authorization": f"Bearer {TOKEN}", "X-Inbox-User": "ana"}
    )
    assert resp.status == 400 and (await resp.json())["field"] == "X-Inbox-User"
    resp = await bot.client.get("/api/conversations", headers={"X-Inbox-User": str(root.id)})
    assert resp.status == 401  # the header never replaces the token


# --- the queue -------------------------------------------------------------------------------------------


async def listed(bot: Bot, query: str, *, user: User | None = None) -> list[int]:
    data = await as_user(bot, user, "GET", f"/api/conversations?{query}")
    return [c["id"] for c in data["items"]]


async def test_sort_queue_orders_by_priority_then_the_longest_wait_then_id(bot: Bot) -> None:
    normal_late = (await send(bot, "a", thread="q1", sent_at=at(30)))["conversation_id"]
    normal_early = (await send(bot, "b", thread="q2", sent_at=at(10)))["conversation_id"]
    answered = (await send(bot, "c", thread="q3", sent_at=at(1)))["conversation_id"]
    await bot.api("POST", f"/api/conversations/{answered}/messages", json={"text": "done"}, expect=201)
    urgent = (await send(bot, "d", thread="q4", sent_at=at(50)))["conversation_id"]
    low = (await send(bot, "e", thread="q5", sent_at=at(0)))["conversation_id"]
    answered_too = (await send(bot, "f", thread="q6", sent_at=at(2)))["conversation_id"]
    await bot.api("POST", f"/api/conversations/{answered_too}/messages", json={"text": "done"}, expect=201)
    same_time = (await send(bot, "g", thread="q7", sent_at=at(10)))["conversation_id"]
    resolved = (await send(bot, "h", thread="q8", sent_at=at(3)))["conversation_id"]
    await bot.api("POST", f"/api/conversations/{resolved}/resolve", json={})
    await route(urgent, priority=0)
    await route(low, priority=3)

    queue = [urgent, normal_early, same_time, normal_late, answered, answered_too, low]
    assert await listed(bot, "status=open&sort=queue") == queue
    items = (await bot.api("GET", "/api/conversations?status=open&sort=queue"))["items"]
    assert [c["priority"] for c in items] == ["urgent", "normal", "normal", "normal", "normal", "normal", "low"]
    # without sort: newest first, as before
    assert await listed(bot, "status=open") == sorted(queue, reverse=True)
    # every status: resolved conversations wait for nobody
    assert await listed(bot, "sort=queue") == [urgent, normal_early, same_time, normal_late, answered,
                                               answered_too, resolved, low]  # fmt: skip
    # page by page: the same order, each once
    for size in (1, 2, 3, 7):
        seen, cursor = [], None
        while True:
            query = f"status=open&sort=queue&limit={size}" + (f"&cursor={cursor}" if cursor else "")
            data = await bot.api("GET", f"/api/conversations?{query}")
            seen += [c["id"] for c in data["items"]]
            cursor = data["next_cursor"]
            if cursor is None:
                break
        assert seen == queue, size


async def test_queue_pages_stay_stable_while_conversations_change(bot: Bot) -> None:
    ids = []
    for i in range(12):
        cid = (await send(bot, "hi", thread=f"s{i}", sent_at=at(10 + i % 5, i)))["conversation_id"]
        await route(cid, priority=i % 3)
        ids.append(cid)
    for cid in ids[:3]:
        await bot.api("POST", f"/api/conversations/{cid}/messages", json={"text": "answered"}, expect=201)
    changed: set[int] = set()
    seen: list[dict[str, Any]] = []
    cursor = None
    step = 0
    while True:
        query = "status=open&sort=queue&limit=4" + (f"&cursor={cursor}" if cursor else "")
        data = await bot.api("GET", f"/api/conversations?{query}")
        seen += data["items"]
        cursor = data["next_cursor"]
        if cursor is None:
            break
        # the queue moves between pages: new conversations come in, some are answered, resolved
        step += 1
        new = (await send(bot, "new", thread=f"n{step}", sent_at=at(0, step)))["conversation_id"]
        changed.add(new)
        unseen = [c for c in ids if c not in {s["id"] for s in seen} and c not in changed]
        if unseen:
            await bot.api("POST", f"/api/conversations/{unseen[-1]}/resolve", json={})
            changed.add(unseen[-1])
        assert step < 20
    got = [s["id"] for s in seen]
    steady = [c for c in ids if c not in changed]
    assert sorted(c for c in got if c in steady) == sorted(steady)  # every unchanged one, exactly once
    assert len(got) == len(set(got))

    def key(c: dict[str, Any]) -> tuple[Any, ...]:
        rank = ["urgent", "high", "normal", "low"].index(c["priority"])
        since = parsed(c["waiting_since"])
        return (rank, since is None, since or datetime.min.replace(tzinfo=UTC), c["id"])

    assert [key(c) for c in seen] == sorted(key(c) for c in seen)  # never goes back in the order


async def test_bad_cursors_and_sorts_are_refused(bot: Bot) -> None:
    for i in range(3):
        await send(bot, "hi", thread=f"c{i}")
    queue_cursor = (await bot.api("GET", "/api/conversations?sort=queue&limit=1"))["next_cursor"]
    newest_cursor = (await bot.api("GET", "/api/conversations?limit=1"))["next_cursor"]
    assert queue_cursor and newest_cursor
    for query, field in [
        (f"sort=queue&cursor={newest_cursor}", "cursor"),  # a cursor of the other order
        (f"cursor={queue_cursor}", "cursor"),
        ("sort=queue&cursor=bm9wZQ", "cursor"),
        ("sort=queue&cursor=%C3%A9%C3%A9", "cursor"),
        ("sort=queue&cursor=cTo5Ojk6OQ", "cursor"),  # q:9:9:9 — no such priority
        ("sort=oldest", "sort"),
    ]:
        err = await bot.api("GET", f"/api/conversations?{query}", expect=400)
        assert err["field"] == field, (query, err)


async def test_filters_team_assignee_priority_contact_combine_with_the_others(bot: Bot) -> None:
    ana = await add_user("ana@example.com", "Ana")
    marie = (await send(bot, "remboursement", thread="f1", contact="c-1", name="Marie Curie"))["conversation_id"]
    strasse = (await send(bot, "hallo", thread="f2", contact="c-2", name="Große Straße"))["conversation_id"]
    dmitri = (await send(bot, "privet", thread="f3", contact="c-3", name="Дмитрий"))["conversation_id"]
    plain = (await send(bot, "hello", thread="f4", contact="c-100", name="Bob"))["conversation_id"]
    await route(marie, priority=1, team="Billing")
    await route(strasse, priority=1, team="Support")
    await route(dmitri, priority=0, team="billing")
    await bot.api("POST", f"/api/conversations/{marie}/assign", json={"user": ana.id})
    await bot.api("POST", f"/api/conversations/{dmitri}/assign", json={"user": ana.id})

    assert await listed(bot, "team=Billing&sort=queue") == [dmitri, marie]
    assert await listed(bot, "team=BILLING&priority=high") == [marie]
    assert await listed(bot, "priority=urgent") == [dmitri]
    assert await listed(bot, "priority=normal") == [plain]
    assert await listed(bot, f"assignee={ana.id}&sort=queue") == [dmitri, marie]
    assert await listed(bot, "assignee=none") == [plain, strasse]
    assert await listed(bot, "assignee=me&sort=queue", user=ana) == [dmitri, marie]
    assert await listed(bot, "assignee=ME&q=remboursement", user=ana) == [marie]
    # contact: the platform id exactly, or part of the name in any case and any script
    assert await listed(bot, "contact=c-1") == [marie]
    assert await listed(bot, "contact=c-10") == []  # ids match whole, names match in part
    assert await listed(bot, "contact=CURIE") == [marie]
    assert await listed(bot, f"contact={quote('STRASSE')}") == [strasse]
    assert await listed(bot, f"contact={quote('ДМИТ')}") == [dmitri]
    assert await listed(bot, f"contact={quote('%')}") == []  # no wildcard
    assert await listed(bot, "contact=c&status=resolved") == []
    assert await listed(bot, "contact=c-1&channel=support") == []
    assert await listed(bot, f"contact={'x' * 300}") == []
    # unknown values: 400 naming the parameter and the value
    for query, field, word in [
        ("team=Nope", "team", '"Nope"'),
        ("priority=asap", "priority", '"asap"'),
        ("assignee=99999", "assignee", "99999"),
        ("assignee=someone", "assignee", '"someone"'),
        ("assignee=me", "assignee", "X-Inbox-User"),
        ("status=closed", "status", "status"),
        ("teem=Billing", "teem", '"teem"'),
    ]:
        err = await bot.api("GET", f"/api/conversations?{query}", expect=400)
        assert err["field"] == field and word in err["error"], (query, err)


async def test_metrics_count_open_conversations_and_the_longest_wait_per_priority_and_team(bot: Bot) -> None:
    billing = [(await send(bot, "hi", thread=f"m{i}", sent_at=at(i)))["conversation_id"] for i in range(3)]
    for cid in billing:
        await route(cid, priority=0, team="Billing")
    await send(bot, "hi", thread="other", sent_at=at(30))
    answered = (await send(bot, "hi", thread="answered"))["conversation_id"]
    await bot.api("POST", f"/api/conversations/{answered}/messages", json={"text": "ok"}, expect=201)
    await route(answered, priority=3)
    gone = (await send(bot, "hi", thread="gone"))["conversation_id"]
    await bot.api("POST", f"/api/conversations/{gone}/resolve", json={})

    async def scrape() -> dict[str, float]:
        text = await (await bot.client.get("/metrics")).text()
        return {
            line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("inbox_queue_")
        }

    figures = await scrape()
    assert figures['inbox_queue_open_conversations{priority="urgent",team="Billing"}'] == 3
    assert figures['inbox_queue_open_conversations{priority="normal",team=""}'] == 1
    assert figures['inbox_queue_open_conversations{priority="low",team=""}'] == 1
    assert len([k for k in figures if k.startswith("inbox_queue_open_conversations")]) == 3
    oldest = (datetime.now(UTC) - parsed(at(0))).total_seconds()  # type: ignore[operator]
    assert abs(figures['inbox_queue_longest_wait_seconds{priority="urgent",team="Billing"}'] - oldest) < 60
    assert figures['inbox_queue_longest_wait_seconds{priority="normal",team=""}'] < oldest
    assert figures['inbox_queue_longest_wait_seconds{priority="low",team=""}'] == 0  # answered: nobody waits
    # a combination that empties goes away
    for cid in billing:
        await bot.api("POST", f"/api/conversations/{cid}/resolve", json={})

    async def gone_from_metrics() -> bool:
        return not any("Billing" in k for k in await scrape())

    await eventually(gone_from_metrics, "the emptied combination to leave the metrics", tries=5)
