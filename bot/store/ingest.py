"""Ingest's writes, set-based: one round of a group commit takes a handful of statements, not a
handful per message.

A round holds at most one message per thread. `receive` takes it in (dedupe, contacts, the open
conversation of each thread — locked — or a new one, the messages themselves); the engine plans
each message's `Effects`; `apply` writes them all, one statement per kind. Both run inside the
caller's transaction, so nothing is visible (or acknowledged) before the commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.fields.data import JSON_DUMPS, JSON_LOADS

from bot import domain
from bot.domain import Direction, Effects, InboundMessage, NewJob, Received, Status
from bot.store import models, queue, search
from bot.store.base import boundary, now
from bot.store.conversations import open_key, resolved_columns
from bot.store.outbox import enqueue_jobs
from bot.store.queue import refresh_waiting


class ContactCache:
    """(channel, platform id) → (pk, name): skips the contact look-up for contacts seen before.

    Drop it (make a new one) after a rolled-back transaction: it may hold contacts that were not
    committed."""

    def __init__(self, size: int = 50_000) -> None:
        self._size = size
        self._items: dict[tuple[str, str], tuple[int, str | None]] = {}

    async def ids(self, wanted: Sequence[tuple[str, str, str | None]]) -> dict[tuple[str, str], int]:
        """(channel, platform id, name) → contact pk, creating (or renaming) contacts as needed."""
        out: dict[tuple[str, str], int] = {}
        misses: list[tuple[str, str, str | None]] = []
        for channel, pid, name in wanted:
            hit = self._items.get((channel, pid))
            if hit is not None and (name is None or hit[1] == name):
                out[(channel, pid)] = hit[0]
            else:
                misses.append((channel, pid, name))
        if misses:
            found = await contacts_many(misses)
            if len(self._items) + len(found) > self._size:
                self._items.clear()
            self._items.update(found)
            out.update({k: v[0] for k, v in found.items()})
        return out


# --- taking a round in ----------------------------------------------------------------------------


@boundary
async def receive(msgs: Sequence[InboundMessage], *, contacts: ContactCache) -> list[Received]:
    """Take in one round (at most one message per thread), in order: a message stored before comes
    back as a duplicate; every other one is stored in its thread's open conversation (locked until
    the commit), opened for it when there is none."""
    stored = await find_inbound_many([(m.channel, m.platform_message_id) for m in msgs])
    fresh = [i for i, m in enumerate(msgs) if (m.channel, m.platform_message_id) not in stored]
    out: list[Received | None] = [None] * len(msgs)
    for i, m in enumerate(msgs):
        hit = stored.get((m.channel, m.platform_message_id))
        if hit is not None:
            out[i] = Received(m, hit[0], hit[1], None)
    if fresh:
        people = await contacts.ids([(msgs[i].channel, msgs[i].contact_id, msgs[i].contact_name) for i in fresh])
        keys = {i: open_key(msgs[i].channel, msgs[i].thread_key) for i in fresh}
        convs = await open_conversations_for_update(list(keys.values()))
        opened = [i for i in fresh if keys[i] not in convs]
        convs.update(
            await start_conversations([(msgs[i], people[(msgs[i].channel, msgs[i].contact_id)]) for i in opened])
        )
        message_ids = await add_inbound_many([(msgs[i], convs[keys[i]].id) for i in fresh])
        first = set(opened)
        for i in fresh:
            m, conv = msgs[i], convs[keys[i]]
            out[i] = Received(m, conv.id, message_ids[(m.channel, m.platform_message_id)], conv, i in first)
    return [r for r in out if r is not None]


@boundary
async def find_inbound_many(keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], tuple[int, int]]:
    """(channel, platform id) → (conversation id, message id) for messages already stored."""
    by_channel: dict[str, list[str]] = {}
    for channel, pid in keys:
        by_channel.setdefault(channel, []).append(pid)
    found: dict[tuple[str, str], tuple[int, int]] = {}
    conn = _conn()
    for channel, pids in by_channel.items():
        p = _Params(conn)
        sql = (
            "SELECT platform_id, conversation_id, id FROM messages "
            f"WHERE channel = {p.add(channel)} AND platform_id IN ({p.add_all(pids)})"
        )
        for row in (await conn.execute_query(sql, p.values))[1]:
            found[(channel, row[0])] = (int(row[1]), int(row[2]))
    return found


@boundary
async def contacts_many(wanted: Sequence[tuple[str, str, str | None]]) -> dict[tuple[str, str], tuple[int, str | None]]:
    """Find or create contacts (channel, platform id, name); returns key → (pk, name)."""
    keys = {(c, p): n for c, p, n in wanted}

    async def fetch() -> dict[tuple[str, str], tuple[int, str | None]]:
        out: dict[tuple[str, str], tuple[int, str | None]] = {}
        by_channel: dict[str, list[str]] = {}
        for c, p in keys:
            by_channel.setdefault(c, []).append(p)
        for c, pids in by_channel.items():
            for pid, cid, name in await models.Contact.filter(channel=c, platform_id__in=pids).values_list(
                "platform_id", "id", "name"
            ):
                out[(c, pid)] = (cid, name)
        return out

    found = await fetch()
    missing = [k for k in keys if k not in found]
    if missing:
        await models.Contact.bulk_create(
            [
                models.Contact(channel=c, platform_id=p, name=keys[(c, p)], name_key=_key(keys[(c, p)]))
                for c, p in missing
            ],
            ignore_conflicts=True,
        )
        found = await fetch()
    for k, name in keys.items():
        if name and k in found and found[k][1] != name:
            await models.Contact.filter(id=found[k][0]).update(name=name, name_key=_key(name))
            found[k] = (found[k][0], name)
    return found


def _key(name: str | None) -> str | None:
    return name.casefold()[:255] if name else None


_OPEN_COLUMNS = "id, open_key, type, keyword_progress, reply_to, crm_target"


def _open_conversation(row: Any) -> tuple[str, domain.OpenConversation]:
    """(open key, record) from a row of `_OPEN_COLUMNS` (JSON arrives as text on both stores)."""
    progress, reply_to = row[3], row[4]
    return row[1], domain.OpenConversation(
        id=int(row[0]),
        type=domain.ConversationType(row[2]),
        keyword_progress=tuple(JSON_LOADS(progress) if isinstance(progress, str | bytes) else progress or ()),
        reply_to=(JSON_LOADS(reply_to) if isinstance(reply_to, str | bytes) else reply_to) or {},
        crm_target=row[5],
    )


@boundary
async def open_conversations_for_update(keys: Sequence[str]) -> dict[str, domain.OpenConversation]:
    """Open conversations by open key, locked until the transaction ends (PostgreSQL)."""
    if not keys:
        return {}
    conn = _conn()
    p = _Params(conn)
    sql = f"SELECT {_OPEN_COLUMNS} FROM conversations WHERE open_key IN ({p.add_all(keys)})"
    if not p.sqlite:
        sql += " FOR UPDATE"
    return dict(_open_conversation(row) for row in (await conn.execute_query(sql, p.values))[1])


@boundary
async def start_conversations(new: Sequence[tuple[InboundMessage, int]]) -> dict[str, domain.OpenConversation]:
    """Open one conversation per (message, contact pk), linked to the thread's previous one."""
    if not new:
        return {}
    conn = _conn()
    previous: dict[tuple[str, str], int] = {}
    by_channel: dict[str, list[str]] = {}
    for msg, _ in new:
        by_channel.setdefault(msg.channel, []).append(msg.thread_key)
    for channel, threads in by_channel.items():
        p = _Params(conn)
        sql = (
            "SELECT thread_key, MAX(id) FROM conversations "
            f"WHERE channel = {p.add(channel)} AND thread_key IN ({p.add_all(threads)}) GROUP BY thread_key"
        )
        for thread, last in (await conn.execute_query(sql, p.values))[1]:
            previous[(channel, thread)] = int(last)
    t = now()
    rows = [
        (
            msg.channel,
            msg.thread_key,
            open_key(msg.channel, msg.thread_key),
            msg.type.value,
            Status.OPEN.value,
            contact_id,
            previous.get((msg.channel, msg.thread_key)),
            "[]",
            JSON_DUMPS(dict(msg.reply_to)),
            t,
            t,
        )
        for msg, contact_id in new
    ]
    columns = "channel, thread_key, open_key, type, status, contact_id, previous_id, keyword_progress, reply_to"
    got = await _insert(conn, "conversations", f"{columns}, created_at, updated_at", rows, returning=_OPEN_COLUMNS)
    return dict(_open_conversation(row) for row in got)


@boundary
async def add_inbound_many(items: Sequence[tuple[InboundMessage, int]]) -> dict[tuple[str, str], int]:
    """Store inbound messages (message, conversation pk); returns (channel, platform id) → message pk."""
    stamp = now()
    rows = [
        (
            conversation_id,
            msg.channel,
            msg.platform_message_id,
            Direction.INBOUND.value,
            msg.text,
            f"contact:{msg.contact_id}",
            msg.sent_at or stamp,
            stamp,
        )
        for msg, conversation_id in items
    ]
    got = await _insert(
        _conn(),
        "messages",
        "conversation_id, channel, platform_id, direction, text, author, sent_at, created_at",
        rows,
        returning="channel, platform_id, id",
    )
    return {(row[0], row[1]): int(row[2]) for row in got}


# --- raw SQL helpers: the hot path builds no ORM objects ---------------------------------------------


def _conn() -> BaseDBAsyncClient:
    """The current connection: the transaction's, inside one."""
    conn: BaseDBAsyncClient = connections.get("default")
    return conn


class _Params:
    """Placeholders in the connection's dialect (`?` or `$n`) with their values, in order."""

    def __init__(self, conn: BaseDBAsyncClient) -> None:
        self.sqlite = conn.capabilities.dialect == "sqlite"
        self.values: list[Any] = []

    def add(self, value: Any) -> str:
        self.values.append(value)
        return "?" if self.sqlite else f"${len(self.values)}"

    def add_all(self, values: Sequence[Any]) -> str:
        return ", ".join(self.add(v) for v in values)


async def _insert(
    conn: BaseDBAsyncClient,
    table: str,
    columns: str,
    rows: Sequence[Sequence[Any]],
    *,
    returning: str | None = None,
    ignore_conflicts: bool = False,
) -> list[Any]:
    """One multi-row INSERT for all `rows` (tuples in `columns` order); the RETURNING rows."""
    if not rows:
        return []
    p = _Params(conn)
    values = ", ".join(f"({p.add_all(row)})" for row in rows)
    sql = f"INSERT INTO {table} ({columns}) VALUES {values}"
    if ignore_conflicts:
        sql += " ON CONFLICT DO NOTHING"
    if not returning:
        await conn.execute_query(sql, p.values)
        return []
    # execute_query_dict: PostgreSQL's execute_query drops the rows of an INSERT
    return [tuple(row.values()) for row in await conn.execute_query_dict(f"{sql} RETURNING {returning}", p.values)]


# --- applying what the engine planned ------------------------------------------------------------


# An automation run as stored: one column list, and `_run_row` gives the values in its order.
RUN_COLUMNS = "automation_id, automation_name, conversation_id, message_id, keywords, actions, revision, created_at"


def _run_row(e: Effects, r: domain.PlannedRun, at: datetime) -> tuple[Any, ...]:
    return (
        r.automation_id,
        r.automation_name,
        e.conversation_id,
        e.message_id,
        JSON_DUMPS(list(r.keywords)),
        JSON_DUMPS([a.to_json() for a in r.actions]),
        r.revision,
        at,
    )


@boundary
async def apply(effects: Sequence[Effects]) -> bool:
    """Write one round's effects: each changed conversation, then one insert per kind (tags,
    topics — and the priority and team they give —, runs, status events, outbox jobs). Returns
    whether outbox work was asked for."""
    t = now()
    conn = _conn()
    tags: list[tuple[Any, ...]] = []
    topics: list[tuple[Any, ...]] = []
    runs: list[tuple[Any, ...]] = []
    events: list[tuple[Any, ...]] = []
    jobs: list[NewJob] = []
    for e in effects:
        if e.changes_conversation:
            await models.Conversation.filter(id=e.conversation_id).update(**_conversation_columns(e, t))
        if e.resolve is not None:
            events.append((e.conversation_id, "resolve", e.resolve.actor, e.resolve.reason, t))
        tags += [(e.message_id, e.conversation_id, name, name.casefold()) for name in e.tags]
        topics += [(e.conversation_id, name, name.casefold()) for name in e.topics]
        runs += [_run_row(e, r, t) for r in e.runs]
        jobs += e.jobs
    # the contact waits from their first message after our last reply: only conversations not
    # waiting yet can change (one statement for the round; resolved ones hold NULL)
    await refresh_waiting([e.conversation_id for e in effects if e.resolve is None], only_unset=True)
    await search.index_messages([(e.message_id, e.conversation_id, e.search_document) for e in effects])
    await _insert(conn, "message_tags", "message_id, conversation_id, name, key", tags, ignore_conflicts=True)
    if topics:
        await _insert(conn, "conversation_topics", "conversation_id, name, key", topics, ignore_conflicts=True)
        # priority and team follow the new topics, in the same transaction; the conversations
        # are locked since `receive`, so an agent changing their topics waits for this commit
        await queue.reroute([e.conversation_id for e in effects if e.topics])
    await _insert(conn, "automation_runs", RUN_COLUMNS, runs)
    await _insert(conn, "conversation_events", "conversation_id, action, actor, reason, created_at", events)
    await enqueue_jobs(jobs)
    return bool(jobs)


def _conversation_columns(e: Effects, at: datetime) -> dict[str, Any]:
    columns: dict[str, Any] = {"updated_at": at}
    if e.keyword_progress is not None:
        columns["keyword_progress"] = list(e.keyword_progress)
    if e.reply_to is not None:
        columns["reply_to"] = dict(e.reply_to)
    if e.crm_target is not None:
        columns["crm_target"] = e.crm_target
    if e.resolve is not None:
        columns.update(resolved_columns(actor=e.resolve.actor, reason=e.resolve.reason, at=at))
    return columns
