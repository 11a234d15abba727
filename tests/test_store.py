"""The store as a boundary: records out, values in, its own exceptions; and one ingest round as
receive (store) → plan (engine, pure) → apply (store). On SQLite and on PostgreSQL."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot import domain, outbox_kinds
from bot.domain import (
    Action,
    ActionType,
    ConversationType,
    Direction,
    InboundMessage,
    MatchMode,
    OpenConversation,
    Received,
    Status,
)
from bot.engine import Rule, RuleSet
from bot.engine.effects import plan
from bot.store import StoreConflict, StoreInvalid, db, ingest, repo
from tests.conftest import STORES

NOW = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)


def rules(*specs: tuple[int, str, tuple[str, ...], tuple[Action, ...]], match: MatchMode = MatchMode.ANY) -> RuleSet:
    return RuleSet(Rule(id=i, name=name, keywords=kws, match=match, actions=acts) for i, name, kws, acts in specs)


def inbound(text: str, *, mid: str = "m-1", thread: str = "t-1", **kw: Any) -> InboundMessage:
    return InboundMessage(
        channel="web", platform_message_id=mid, thread_key=thread, contact_id="c-1", text=text, sent_at=NOW, **kw
    )


def received(msg: InboundMessage, *, first: bool, **conv: Any) -> Received:
    state = OpenConversation(
        **{"id": 7, "type": ConversationType.DIRECT, "keyword_progress": (), "reply_to": {}, "crm_target": None, **conv}
    )
    return Received(msg, conversation_id=state.id, message_id=70, conversation=state, first=first)


BYE = (1, "Bye", ("bye",), (Action(ActionType.TAG, "closing"), Action(ActionType.RESOLVE, "Contact left")))
CRM = (2, "Order", ("order",), (Action(ActionType.TOPIC, "Orders"), Action(ActionType.CRM, "salesforce")))


# --- plan: pure -------------------------------------------------------------------------------------


def test_plan_a_first_message_resolves_and_tags() -> None:
    effects = plan(received(inbound("ok bye"), first=True), rules(BYE))
    assert effects.conversation_id == 7 and effects.message_id == 70
    assert effects.tags == ("closing",) and effects.topics == ()
    assert effects.resolve == domain.Resolution("automation:1", "Contact left")
    assert [(r.automation_id, r.keywords) for r in effects.runs] == [(1, ("bye",))]
    assert effects.jobs == () and effects.crm_target is None and effects.keyword_progress is None


def test_plan_a_later_message_tags_but_does_not_resolve() -> None:
    effects = plan(received(inbound("ok bye"), first=False), rules(BYE))
    assert effects.tags == ("closing",) and effects.resolve is None
    assert effects.runs[0].actions == (Action(ActionType.TAG, "closing"),)  # the run records what applied


def test_plan_nothing_matches_changes_nothing() -> None:
    effects = plan(received(inbound("hello"), first=False), rules(BYE))
    # only the message's searchable form, which every message has
    assert effects == domain.Effects(conversation_id=7, message_id=70, search_document="hello")
    assert not effects.changes_conversation


def test_plan_links_to_the_crm_once_and_syncs_every_message_after() -> None:
    linked = plan(received(inbound("my order"), first=True), rules(CRM))
    assert linked.crm_target == "salesforce" and linked.topics == ("Orders",)
    assert [(j.kind, j.ordering_key, j.unless_pending) for j in linked.jobs] == [(outbox_kinds.CRM_SYNC, "crm:7", True)]
    later = plan(received(inbound("thanks"), first=False, crm_target="salesforce"), rules(CRM))
    assert later.crm_target is None, "already linked: the target is not written again"
    assert [j.kind for j in later.jobs] == [outbox_kinds.CRM_SYNC]


def test_plan_keyword_progress_and_reply_to() -> None:
    both = rules((3, "Both", ("refund", "late"), (Action(ActionType.TAG, "urgent"),)), match=MatchMode.ALL)
    step = plan(received(inbound("it is late"), first=False), both)
    assert step.keyword_progress == ("late",) and step.tags == ()
    done = plan(received(inbound("refund please"), first=False, keyword_progress=("late",)), both)
    assert done.tags == ("urgent",) and done.keyword_progress == ("late", "refund")

    moved = inbound("hi", reply_to={"channel": "C2", "thread_ts": "2.0"})
    assert plan(received(moved, first=False, reply_to={"channel": "C1"}), both).reply_to == dict(moved.reply_to)
    assert plan(received(moved, first=True), both).reply_to is None, "a new conversation was opened with it"
    assert plan(received(moved, first=False, reply_to=dict(moved.reply_to)), both).reply_to is None


def test_plan_refuses_a_duplicate() -> None:
    with pytest.raises(ValueError):
        plan(Received(inbound("bye"), conversation_id=1, message_id=2, conversation=None), rules(BYE))


# --- the store ------------------------------------------------------------------------------------

on_both_stores = pytest.mark.parametrize("db_url", STORES, indirect=True)


async def ingest_round(msgs: list[InboundMessage], ruleset: RuleSet) -> tuple[list[Received], bool]:
    async with repo.transaction():
        got = await ingest.receive(msgs, contacts=ingest.ContactCache())
        enqueued = await ingest.apply([plan(r, ruleset) for r in got if not r.duplicate])
    return got, enqueued


@on_both_stores
async def test_a_round_is_received_then_applied(db_url: str) -> None:
    async with db.open_store(db_url):
        ruleset = rules(BYE, CRM)
        got, enqueued = await ingest_round(
            [inbound("bye", mid="a", thread="t-1"), inbound("my order", mid="b", thread="t-2")], ruleset
        )
        assert [(r.first, r.duplicate) for r in got] == [(True, False), (True, False)]
        bye, order = got
        assert enqueued, "the CRM-linked conversation got a sync job"

        resolved = await repo.get_conversation(bye.conversation_id)
        assert isinstance(resolved, domain.Conversation)
        assert resolved.status is Status.RESOLVED and resolved.resolved_by == "automation:1"
        assert resolved.resolution_reason == "Contact left"
        events = await repo.conversation_events(bye.conversation_id)
        assert [(e.action, e.actor, e.reason) for e in events] == [("resolve", "automation:1", "Contact left")]
        messages, tags = await repo.conversation_messages(bye.conversation_id)
        assert [m.direction for m in messages] == [Direction.INBOUND] and tags[messages[0].id] == ["closing"]

        linked = await repo.get_conversation(order.conversation_id)
        assert linked is not None and linked.crm_target == "salesforce" and linked.status is Status.OPEN
        topics, _ = await repo.conversation_labels([order.conversation_id])
        assert topics[order.conversation_id] == ["Orders"]
        runs = await repo.conversation_runs(order.conversation_id)
        assert [(r.automation_name, r.actions) for r in runs] == [("Order", CRM[3])]

        # the same message again is a duplicate: nothing planned, nothing written
        (again,), enqueued = await ingest_round([inbound("my order", mid="b", thread="t-2")], ruleset)
        assert again.duplicate and again.message_id == order.message_id and not enqueued
        # a later message merges into the waiting sync job instead of adding one
        (later,), enqueued = await ingest_round([inbound("thanks", mid="c", thread="t-2")], ruleset)
        assert not later.first and later.conversation_id == order.conversation_id and enqueued
        jobs = await repo.list_jobs(conversation_id=order.conversation_id)
        assert [(j.kind, j.status) for j in jobs] == [(outbox_kinds.CRM_SYNC, "pending")]
        # the resolved thread opens a new conversation, linked to the previous one
        (reopened,), _ = await ingest_round([inbound("hello again", mid="d", thread="t-1")], ruleset)
        assert reopened.first and reopened.conversation_id != bye.conversation_id
        new = await repo.get_conversation(reopened.conversation_id)
        assert new is not None and new.previous_id == bye.conversation_id


@on_both_stores
async def test_enabled_automations_read_raw_equal_the_records_of_single_reads(db_url: str) -> None:
    """Start-up reads every enabled automation in one raw query: the records are the same as
    the ones read one by one (JSON, enums, timestamps), and changes show in the light stamps."""
    from bot.store import automations

    async with db.open_store(db_url):
        await repo.create_label("tag", "vip")
        made = [
            await repo.create_automation(
                name=f"A{i}",
                keywords=["bye", "再见"] if i else ["👋"],
                match="all" if i else "any",
                actions=[{"type": "tag", "tag": "vip"}, {"type": "resolve", "reason": None}],
                channels=["web"] if i else [],
                types=["group"] if i == 2 else [],
                enabled=i != 1,
            )
            for i in range(3)
        ]
        read = await repo.enabled_automations()
        assert read == [await repo.get_automation(a.id) for a in made if a.enabled]
        stamps = await automations.enabled_stamps()
        assert sorted(stamps) == [made[0].id, made[2].id]
        await repo.set_automation_enabled(made[1].id, True)
        await repo.save_automation(dataclasses.replace(made[0], keywords=("ciao",)))
        after = await automations.enabled_stamps()
        assert sorted(after) == [a.id for a in made]
        assert after[made[0].id] != stamps[made[0].id] and after[made[2].id] == stamps[made[2].id]


class _Abort(Exception):
    pass


@on_both_stores
async def test_a_round_that_fails_after_apply_leaves_nothing(db_url: str) -> None:
    """Everything a round writes — message, conversation, tags, runs, waiting time, search
    index, outbox job — is one transaction: a failure before the commit keeps none of it."""
    async with db.open_store(db_url):
        ruleset = rules(BYE, CRM)
        with pytest.raises(_Abort):
            async with repo.transaction():
                got = await ingest.receive(
                    [inbound("my order", mid="a", thread="t-1"), inbound("hello", mid="b", thread="t-2")],
                    contacts=ingest.ContactCache(),
                )
                assert await ingest.apply([plan(r, ruleset) for r in got])
                raise _Abort
        assert await repo.list_conversations(domain.ConversationFilter(), limit=10) == []
        assert await repo.list_jobs() == []
        assert await repo.list_runs() == []
        # and the same messages are then stored as new, not answered as duplicates
        got, _ = await ingest_round([inbound("my order", mid="a", thread="t-1")], ruleset)
        assert not got[0].duplicate and got[0].first


@on_both_stores
async def test_records_come_out_frozen_and_go_back_as_values(db_url: str) -> None:
    async with db.open_store(db_url):
        await repo.create_label("tag", "closing")
        a = await repo.create_automation(
            name="Bye", keywords=["bye"], match="any", actions=[Action(ActionType.TAG, "closing")]
        )
        assert isinstance(a, domain.Automation) and a.actions == (Action(ActionType.TAG, "closing"),)
        with pytest.raises(dataclasses.FrozenInstanceError):
            a.enabled = False  # type: ignore[misc]
        off = await repo.set_automation_enabled(a.id, False)
        assert off is not None and not off.enabled and a.enabled
        renamed = await repo.update_automation(
            a.id,
            name="Au revoir",
            keywords=["bye", "au revoir"],
            match=MatchMode.ALL,
            actions=[{"type": "tag", "tag": "closing"}],  # the JSON form is taken too
            channels=[],
            types=[ConversationType.GROUP],
            enabled=True,
        )
        assert renamed is not None and renamed.name == "Au revoir" and renamed.match is MatchMode.ALL
        assert renamed.types == (ConversationType.GROUP,)
        assert await repo.find_automation("AU REVOIR") == renamed
        assert [x.id for x in await repo.automations_using("tag", "CLOSING")] == [a.id]
        await repo.delete_automation(renamed.id)
        assert await repo.update_automation(a.id, **_fields(renamed)) is None


def _fields(a: domain.Automation) -> dict[str, Any]:
    return {
        "name": a.name,
        "keywords": a.keywords,
        "match": a.match,
        "actions": a.actions,
        "channels": a.channels,
        "types": a.types,
        "enabled": a.enabled,
    }


@on_both_stores
async def test_the_store_raises_its_own_exceptions(db_url: str) -> None:
    async with db.open_store(db_url):
        await repo.create_label("tag", "closing")
        with pytest.raises(StoreConflict):
            await repo.create_label("tag", "Closing")
        assert repo.IntegrityError is StoreConflict  # the older name still catches it
        with pytest.raises(StoreInvalid):
            await repo.create_label("tag", "x" * 500)
        # inside a transaction too, and nothing of it is kept
        with pytest.raises(StoreConflict):
            async with repo.transaction():
                await repo.create_label("topic", "Orders")
                await repo.create_label("topic", "orders")
        assert await repo.list_labels("topic") == []


@on_both_stores
async def test_status_changes_return_new_records(db_url: str) -> None:
    async with db.open_store(db_url):
        (first,), _ = await ingest_round([inbound("hello", mid="a")], rules())
        conv = await repo.get_conversation(first.conversation_id)
        assert conv is not None
        done = await repo.set_resolved(conv, actor="agent:ann", reason=None)
        assert done.status is Status.RESOLVED and conv.status is Status.OPEN
        assert await repo.get_conversation(conv.id) == done
        (second,), _ = await ingest_round([inbound("again", mid="b")], rules())  # the thread opens another one
        with pytest.raises(StoreConflict):  # one open conversation per thread
            await repo.set_reopened(done, actor="agent:ann")
        newer = await repo.get_conversation(second.conversation_id)
        assert newer is not None
        await repo.set_resolved(newer, actor="agent:ann", reason=None)
        back = await repo.set_reopened(done, actor="agent:ann")
        assert back.status is Status.OPEN and back.resolved_by is None
        assert await repo.get_conversation(conv.id) == back


@on_both_stores
async def test_a_renewed_lease_is_a_new_record(db_url: str) -> None:
    async with db.open_store(db_url):
        await repo.enqueue(outbox_kinds.REPLY, {"message_id": 1})
        (job,) = await repo.claim_jobs(limit=1, lease_seconds=60, skip_locked=True)
        assert job.status == "running" and job.locked_until is not None
        renewed = await repo.renew_job(job, lease_seconds=120)
        assert renewed is not None and renewed.locked_until != job.locked_until
        assert not await repo.finish_job(job), "the old token no longer holds the lease"
        assert await repo.finish_job(renewed)
        stored = await repo.get_job(job.id)
        assert stored is not None and stored.status == "done"


@on_both_stores
async def test_messages_read_back_whole_and_each_conversation_has_its_latest(db_url: str) -> None:
    async with db.open_store(db_url):
        (first, other), _ = await ingest_round(
            [inbound("hello", mid="a", thread="t-1"), inbound("other thread", mid="b", thread="t-2")], rules()
        )
        (later,), _ = await ingest_round([inbound("second line\nof text", mid="c", thread="t-1")], rules())
        reply = await repo.add_message(
            conversation_id=first.conversation_id,
            channel="web",
            direction=Direction.OUTBOUND,
            text="our answer",
            author="user:7",
            delivery=domain.Delivery.PENDING,
        )
        messages, _ = await repo.conversation_messages(first.conversation_id)
        assert [(m.id, m.text, m.direction) for m in messages] == [
            (first.message_id, "hello", Direction.INBOUND),
            (later.message_id, "second line\nof text", Direction.INBOUND),
            (reply.id, "our answer", Direction.OUTBOUND),
        ]
        assert messages[0].sent_at == NOW and messages[0].created_at.tzinfo is not None
        assert (messages[2].author, messages[2].delivery, messages[2].platform_id) == ("user:7", "pending", None)
        assert messages == [await repo.get_message(m.id) for m in messages]  # the same records as one by one

        latest = await repo.last_messages([first.conversation_id, other.conversation_id, 10**9])
        assert {cid: m.text for cid, m in latest.items()} == {
            first.conversation_id: "our answer",
            other.conversation_id: "other thread",
        }
        assert await repo.last_messages([]) == {}


@on_both_stores
async def test_a_batch_is_one_transaction_committed_when_take_in_returns(db_url: str) -> None:
    """`take_in` stores a whole batch as one transaction (on SQLite one hand-off to the
    database's thread): a failure while deciding any round keeps nothing of the earlier rounds,
    and the same batch then stores everything, round after round (a thread's second message
    lands in the conversation its first one opened, or in a new one once that was resolved)."""
    async with db.open_store(db_url):
        ruleset = rules(BYE, CRM)
        batch = [
            [inbound("my order", mid="a", thread="t-1"), inbound("bye", mid="b", thread="t-2")],
            [inbound("and more", mid="c", thread="t-1"), inbound("hello again", mid="d", thread="t-2")],
        ]
        decided: list[int] = []

        def failing(got: Sequence[Received]) -> list[domain.Effects]:
            decided.append(len(got))
            if len(decided) == 2:
                raise _Abort
            return [plan(r, ruleset) for r in got]

        from tortoise import connections

        from bot.store import steps

        # SQLite runs the batch as one call on its thread (the fast path must not fall away
        # unnoticed, say with an aiosqlite upgrade); PostgreSQL statement by statement
        assert steps.one_hand_off(connections.get("default")) == db_url.startswith("sqlite")
        with pytest.raises(_Abort):
            await ingest.take_in(batch, failing, contacts=ingest.ContactCache())
        assert decided == [2, 2], "the first round was decided, the second failed"
        assert await repo.list_conversations(domain.ConversationFilter(), limit=10) == []
        assert await repo.list_runs() == [] and await repo.list_jobs() == []

        taken = await ingest.take_in(batch, lambda got: [plan(r, ruleset) for r in got], contacts=ingest.ContactCache())
        (order, bye), (more, again) = taken.rounds
        assert taken.enqueued and len(taken.effects) == 4
        assert more.conversation_id == order.conversation_id and not more.first
        assert again.first and again.conversation_id != bye.conversation_id
        resolved = await repo.get_conversation(bye.conversation_id)
        assert resolved is not None and resolved.status is Status.RESOLVED
        # redelivered: duplicates, nothing decided for them
        seen: list[int] = []
        taken = await ingest.take_in(batch[:1], lambda got: seen.append(len(got)) or [], contacts=ingest.ContactCache())
        assert [r.duplicate for r in taken.rounds[0]] == [True, True] and seen == [0]
        assert [r.message_id for r in taken.rounds[0]] == [order.message_id, bye.message_id]


@on_both_stores
async def test_a_batch_the_database_refuses_raises_the_stores_conflict_and_keeps_nothing(db_url: str) -> None:
    """A constraint the database enforces (here a tag on a message that does not exist: a
    foreign key) comes out as StoreConflict — not the driver's exception — with nothing stored."""
    async with db.open_store(db_url):
        ruleset = rules(BYE)

        def broken(got: Sequence[Received]) -> list[domain.Effects]:
            return [dataclasses.replace(plan(r, ruleset), message_id=10**9, tags=("x",)) for r in got]

        with pytest.raises(StoreConflict):
            await ingest.take_in([[inbound("hello", mid="b")]], broken, contacts=ingest.ContactCache())
        assert await repo.list_conversations(domain.ConversationFilter(), limit=10) == []


@on_both_stores
async def test_a_stream_commits_batch_after_batch_and_stops_at_the_first_failure(db_url: str) -> None:
    """`take_in_stream` takes batches while there are some (on SQLite, on the database's thread)
    and reports each one on the event loop after its commit, in order; a failing batch keeps
    nothing, is reported with the store's error, and stops the stream before the next one; other
    statements still get their turn while batches keep coming."""
    import asyncio
    import threading
    from collections import deque

    from bot.store import steps

    async with db.open_store(db_url):
        ruleset = rules(BYE)
        loop_thread = threading.get_ident()
        waiting: deque[tuple[str, list[list[InboundMessage]], ingest.Decide]] = deque()

        def decide(got: Sequence[Received]) -> list[domain.Effects]:
            return [plan(r, ruleset) for r in got]

        def broken(got: Sequence[Received]) -> list[domain.Effects]:  # a tag on no message: a foreign key
            return [dataclasses.replace(plan(r, ruleset), message_id=10**9, tags=("x",)) for r in got]

        for i in range(3):
            waiting.append((f"b{i}", [[inbound(f"hello {i}", mid=f"m{i}", thread=f"t{i}")]], decide))
        waiting.append(("bad", [[inbound("bye", mid="bad", thread="t-bad")]], broken))
        waiting.append(("after", [[inbound("later", mid="after", thread="t-after")]], decide))
        reports: list[tuple[str, object, bool]] = []

        def take() -> tuple[str, list[list[InboundMessage]], ingest.Decide] | None:
            return waiting.popleft() if waiting else None

        def done(key: str, taken: ingest.Taken | Exception) -> None:
            reports.append((key, taken, threading.get_ident() == loop_thread))

        await ingest.take_in_stream(take, done, contacts=ingest.ContactCache())
        assert [key for key, _, _ in reports] == ["b0", "b1", "b2", "bad"], "stopped at the failure"
        assert all(on_loop for _, _, on_loop in reports), "reported on the event loop"
        assert all(isinstance(t, ingest.Taken) for _, t, _ in reports[:3])
        assert isinstance(reports[3][1], StoreConflict)
        assert [key for key, _, _ in waiting] == ["after"], "the next batch is left for the caller"
        stored = await repo.list_conversations(domain.ConversationFilter(), limit=10)
        assert len(stored) == 3, "the failed batch kept nothing"

        # a steady stream (a batch each time one is asked for) lets other statements through:
        # the connection is handed back at least every budget
        left = [200]

        def endless() -> tuple[str, list[list[InboundMessage]], ingest.Decide] | None:
            left[0] -= 1
            if left[0] < 0:
                return None
            n = left[0]
            return f"e{n}", [[inbound(f"again {n}", mid=f"e{n}", thread=f"e{n}")]], decide

        # on SQLite, a batch that arrives while the thread lingers is taken in the same hand-off
        lingered: list[float] = []

        def linger(seconds: float) -> bool:
            lingered.append(seconds)
            if len(lingered) == 1:
                waiting.append(("late", [[inbound("just now", mid="late", thread="t-late")]], decide))
                return True
            return False

        reports.clear()
        waiting.clear()
        waiting.append(("early", [[inbound("first", mid="early", thread="t-early")]], decide))
        await ingest.take_in_stream(take, done, contacts=ingest.ContactCache(), linger=linger)
        if db_url.startswith("sqlite"):
            assert [key for key, _, _ in reports] == ["early", "late"]
            assert len(lingered) == 2 and all(0 < s <= steps.LINGER_SECONDS for s in lingered)
        else:  # only SQLite's thread lingers (elsewhere `take` runs on the event loop, which must not wait)
            assert [key for key, _, _ in reports] == ["early"] and lingered == []

        stream = asyncio.create_task(ingest.take_in_stream(endless, lambda *_: None, contacts=ingest.ContactCache()))
        await asyncio.sleep(0.01)
        read = await repo.list_conversations(domain.ConversationFilter(), limit=1)
        assert read and not stream.done(), "a read got its turn while the stream still ran"
        await stream
        assert left[0] < 0


async def test_sqlite_checkpoints_run_in_the_background_not_inside_commits(tmp_path: Path) -> None:
    """While the checkpointer runs, commits no longer checkpoint (automatic checkpoints are off
    on the store's connection) and the log is copied into the database in the background; when
    it stops, automatic checkpoints come back and the log is checkpointed."""
    import asyncio

    from tortoise import connections

    from bot.store.checkpoint import Checkpointer

    file = tmp_path / "inbox.sqlite3"
    await db.migrate(f"sqlite://{file}")
    async with db.open_store(f"sqlite://{file}"):
        conn = connections.get("default")

        async def automatic() -> int:
            return int((await conn.execute_query("PRAGMA wal_autocheckpoint"))[1][0][0])

        assert await automatic() == 1000
        checkpointer = Checkpointer(file, interval=0.05)
        await checkpointer.start()
        await asyncio.sleep(0.2)  # what migrating left in the log is copied
        empty = file.stat().st_size
        try:
            assert await automatic() == 0
            ruleset = rules(BYE)
            for i in range(40):  # ~1,500 pages of log: past what one automatic checkpoint allows
                await ingest.take_in(
                    [[inbound("x" * 20_000, mid=f"m-{i}", thread=f"t-{i}")]],
                    lambda got: [plan(r, ruleset) for r in got],
                    contacts=ingest.ContactCache(),
                )
            # the messages' pages reach the database file only through a checkpoint: ours
            for _ in range(100):
                if file.stat().st_size > empty + 700_000:
                    break
                await asyncio.sleep(0.05)
            assert file.stat().st_size > empty + 700_000, "the log was never copied into the database"
        finally:
            await checkpointer.stop()
        assert await automatic() == 1000
        assert len(await repo.list_conversations(domain.ConversationFilter(), limit=100)) == 40
