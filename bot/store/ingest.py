"""Ingest's writes, set-based: one round of a group commit takes a handful of statements, not a
handful per message.

A round holds at most one message per thread. `receive` takes it in (dedupe, contacts, the open
conversation of each thread — locked — or a new one, the messages themselves); the engine plans
each message's `Effects`; `apply` writes them all, one statement per kind. `take_in` runs a whole
batch of rounds as one transaction, so nothing is visible (or acknowledged) before the commit.

Each step is written once as statements (`bot.store.steps`): on SQLite the batch's transaction is
one hand-off to the database's thread; on PostgreSQL the same statements go through Tortoise.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tortoise.fields.data import JSON_DUMPS, JSON_LOADS

from bot import domain
from bot.domain import Direction, Effects, InboundMessage, NewJob, Received, Status
from bot.store import steps
from bot.store.base import now
from bot.store.conversations import open_key, resolved_columns
from bot.store.outbox import enqueue_steps
from bot.store.queue import reroute_steps, waiting_statement
from bot.store.search import index_statement
from bot.store.steps import K, Steps, is_sqlite, marks, rows_of, run_stream, run_transaction


class ContactCache:
    """(channel, platform id) → (pk, name): skips the contact look-up for contacts seen before.

    Drop it (make a new one) after a rolled-back transaction: it may hold contacts that were not
    committed."""

    def __init__(self, size: int = 50_000) -> None:
        self._size = size
        self._items: dict[tuple[str, str], tuple[int, str | None]] = {}

    def ids(self, wanted: Sequence[tuple[str, str, str | None]]) -> Steps[dict[tuple[str, str], int]]:
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
            found = yield from _contacts(misses)
            if len(self._items) + len(found) > self._size:
                self._items.clear()
            self._items.update(found)
            out.update({k: v[0] for k, v in found.items()})
        return out


# --- one batch, one transaction -----------------------------------------------------------------

Decide = Callable[[Sequence[Received]], Sequence[Effects]]


@dataclass(frozen=True, slots=True)
class Taken:
    """What a batch did: per round, its messages as received (in order); the effects applied;
    whether outbox work was enqueued."""

    rounds: list[list[Received]]
    effects: list[Effects]
    enqueued: bool


async def take_in(rounds: Sequence[Sequence[InboundMessage]], decide: Decide, *, contacts: ContactCache) -> Taken:
    """Store a batch as one transaction, committed when this returns: for each round (at most one
    message per thread) receive it, let `decide` (the engine, pure) plan each new message's
    effects, apply them. On SQLite the whole transaction is a single hand-off to the database's
    thread (`steps.run_transaction`), `decide` included."""

    def make() -> Steps[Taken]:
        return _take_in(rounds, decide, contacts, sqlite=sqlite)

    sqlite = is_sqlite()
    return await run_transaction(make, topics="route")


# A batch as a stream hands it over: the caller's key, its rounds, the engine for it.
Batch = tuple[K, Sequence[Sequence[InboundMessage]], Decide]


async def take_in_stream(
    take: Callable[[], Batch[K] | None],
    done: Callable[[K, Taken | Exception], None],
    *,
    contacts: ContactCache,
    linger: Callable[[float], bool] | None = None,
) -> None:
    """`take_in` for batch after batch while `take()` gives one (it runs on SQLite's thread, see
    `steps.run_stream`, as does `linger`); `done(key, what it took in or the error)` on the event
    loop after each commit. Stops at the first failed batch."""
    sqlite = is_sqlite()

    def next_one() -> tuple[K, Callable[[], Steps[Taken]]] | None:
        batch = take()
        if batch is None:
            return None
        key, rounds, decide = batch
        return key, lambda: _take_in(rounds, decide, contacts, sqlite=sqlite)

    await run_stream(next_one, done, topics="route", linger=linger)


def _take_in(
    rounds: Sequence[Sequence[InboundMessage]], decide: Decide, contacts: ContactCache, *, sqlite: bool
) -> Steps[Taken]:
    received: list[list[Received]] = []
    effects: list[Effects] = []
    enqueued = False
    for msgs in rounds:
        got, answered = yield from _receive(msgs, contacts, sqlite=sqlite)
        planned = list(decide([r for r in got if not r.duplicate]))
        if planned:
            enqueued |= yield from _apply(planned, sqlite=sqlite, answered=answered)
        received.append(got)
        effects += planned
    return Taken(received, effects, enqueued)


# --- taking a round in ----------------------------------------------------------------------------


async def receive(msgs: Sequence[InboundMessage], *, contacts: ContactCache) -> list[Received]:
    """Take in one round (at most one message per thread), in order, in the caller's transaction:
    a message stored before comes back as a duplicate; every other one is stored in its thread's
    open conversation (locked until the commit), opened for it when there is none."""
    received, _ = await steps.run(_receive(msgs, contacts, sqlite=is_sqlite()))
    return received


def _receive(
    msgs: Sequence[InboundMessage], contacts: ContactCache, *, sqlite: bool
) -> Steps[tuple[list[Received], set[int]]]:
    """The round as received, and the ids of its open conversations that were not waiting for us
    (answered: their waiting time starts again with this message)."""
    stored = yield from _find_inbound([(m.channel, m.platform_message_id) for m in msgs])
    fresh = [i for i, m in enumerate(msgs) if (m.channel, m.platform_message_id) not in stored]
    out: list[Received | None] = [None] * len(msgs)
    answered: set[int] = set()
    for i, m in enumerate(msgs):
        hit = stored.get((m.channel, m.platform_message_id))
        if hit is not None:
            out[i] = Received(m, hit[0], hit[1], None)
    if fresh:
        people = yield from contacts.ids([(msgs[i].channel, msgs[i].contact_id, msgs[i].contact_name) for i in fresh])
        keys = {i: open_key(msgs[i].channel, msgs[i].thread_key) for i in fresh}
        convs, answered = yield from _open_conversations(list(keys.values()), sqlite=sqlite)
        opened = [i for i in fresh if keys[i] not in convs]
        stamp = now()
        new = yield from _start_conversations(
            [(msgs[i], people[(msgs[i].channel, msgs[i].contact_id)]) for i in opened], stamp
        )
        convs.update(new)
        message_ids = yield from _add_inbound([(msgs[i], convs[keys[i]].id) for i in fresh], stamp)
        first = set(opened)
        for i in fresh:
            m, conv = msgs[i], convs[keys[i]]
            out[i] = Received(m, conv.id, message_ids[(m.channel, m.platform_message_id)], conv, i in first)
    return [r for r in out if r is not None], answered


def _by_channel(keys: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for channel, pid in keys:
        grouped.setdefault(channel, []).append(pid)
    return grouped


def _find_inbound(keys: Sequence[tuple[str, str]]) -> Steps[dict[tuple[str, str], tuple[int, int]]]:
    """(channel, platform id) → (conversation id, message id) for messages already stored."""
    found: dict[tuple[str, str], tuple[int, int]] = {}
    for channel, pids in _by_channel(keys).items():
        rows = yield (
            "SELECT platform_id, conversation_id, id FROM messages "
            f"WHERE channel = ? AND platform_id IN ({marks(len(pids))})",
            [channel, *pids],
        )
        for pid, conversation_id, message_id in rows:
            found[(channel, pid)] = (int(conversation_id), int(message_id))
    return found


def _contacts(
    wanted: Sequence[tuple[str, str, str | None]],
) -> Steps[dict[tuple[str, str], tuple[int, str | None]]]:
    """Find or create contacts (channel, platform id, name), renaming those whose name changed;
    returns key → (pk, name)."""
    keys = {(c, p): n for c, p, n in wanted}

    def fetch() -> Steps[dict[tuple[str, str], tuple[int, str | None]]]:
        out: dict[tuple[str, str], tuple[int, str | None]] = {}
        for channel, pids in _by_channel(list(keys)).items():
            rows = yield (
                f"SELECT platform_id, id, name FROM contacts WHERE channel = ? AND platform_id IN ({marks(len(pids))})",
                [channel, *pids],
            )
            out.update({(channel, pid): (int(cid), name) for pid, cid, name in rows})
        return out

    found = yield from fetch()
    missing = [k for k in keys if k not in found]
    if missing:
        t = now()
        yield (
            "INSERT INTO contacts (channel, platform_id, name, name_key, created_at) "
            f"VALUES {rows_of(5, len(missing))} ON CONFLICT DO NOTHING",
            [v for c, p in missing for v in (c, p, keys[(c, p)], _key(keys[(c, p)]), t)],
        )
        found = yield from fetch()
    for k, name in keys.items():
        if name and k in found and found[k][1] != name:
            yield ("UPDATE contacts SET name = ?, name_key = ? WHERE id = ?", [name, _key(name), found[k][0]])
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


def _open_conversations(
    keys: Sequence[str], *, sqlite: bool
) -> Steps[tuple[dict[str, domain.OpenConversation], set[int]]]:
    """Open conversations by open key, locked until the transaction ends (PostgreSQL; SQLite's
    write lock is the transaction's from its start); and the ids of those not waiting for us."""
    if not keys:
        return {}, set()
    sql = f"SELECT {_OPEN_COLUMNS}, waiting_since IS NULL FROM conversations WHERE open_key IN ({marks(len(keys))})"
    rows = yield (sql if sqlite else f"{sql} FOR UPDATE", list(keys))
    return dict(_open_conversation(row) for row in rows), {int(row[0]) for row in rows if row[6]}


def _start_conversations(
    new: Sequence[tuple[InboundMessage, int]], stamp: datetime
) -> Steps[dict[str, domain.OpenConversation]]:
    """Open one conversation per (message, contact pk), linked to the thread's previous one, and
    waiting since that message was sent (the waiting rule, for a conversation of one message)."""
    if not new:
        return {}
    previous: dict[tuple[str, str], int] = {}
    for channel, threads in _by_channel([(msg.channel, msg.thread_key) for msg, _ in new]).items():
        rows = yield (
            "SELECT thread_key, MAX(id) FROM conversations "
            f"WHERE channel = ? AND thread_key IN ({marks(len(threads))}) GROUP BY thread_key",
            [channel, *threads],
        )
        previous.update({(channel, thread): int(last) for thread, last in rows})
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
            msg.sent_at or stamp,
            stamp,
            stamp,
        )
        for msg, contact_id in new
    ]
    got = yield (
        "INSERT INTO conversations (channel, thread_key, open_key, type, status, contact_id, previous_id, "
        "keyword_progress, reply_to, waiting_since, created_at, updated_at) "
        f"VALUES {rows_of(12, len(rows))} RETURNING {_OPEN_COLUMNS}",
        [v for row in rows for v in row],
    )
    return dict(_open_conversation(row) for row in got)


def _add_inbound(items: Sequence[tuple[InboundMessage, int]], stamp: datetime) -> Steps[dict[tuple[str, str], int]]:
    """Store inbound messages (message, conversation pk); returns (channel, platform id) → message pk."""
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
    got = yield (
        "INSERT INTO messages (conversation_id, channel, platform_id, direction, text, author, sent_at, created_at) "
        f"VALUES {rows_of(8, len(rows))} RETURNING channel, platform_id, id",
        [v for row in rows for v in row],
    )
    return {(channel, pid): int(mid) for channel, pid, mid in got}


def _insert(
    table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], *, ignore_conflicts: bool = False
) -> Steps[None]:
    """One multi-row INSERT for all `rows` (tuples in `columns` order); nothing when there are none."""
    if rows:
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES {rows_of(len(columns), len(rows))}"
        yield (f"{sql} ON CONFLICT DO NOTHING" if ignore_conflicts else sql, [v for row in rows for v in row])


# --- applying what the engine planned ------------------------------------------------------------


# An automation run as stored: its columns, and `_run_row` gives the values in their order.
RUN_COLUMNS = (
    "automation_id", "automation_name", "conversation_id", "message_id", "keywords", "actions", "revision", "created_at"
)  # fmt: skip


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


async def apply(effects: Sequence[Effects]) -> bool:
    """Write one round's effects in the caller's transaction; whether outbox work was asked for."""
    return await steps.run(_apply(effects, sqlite=is_sqlite()))


def _apply(effects: Sequence[Effects], *, sqlite: bool, answered: set[int] | None = None) -> Steps[bool]:
    """Each changed conversation, then one insert per kind (tags, topics — and the priority and
    team they give —, runs, status events, outbox jobs). `answered`: the conversations that were
    not waiting for us before this round (None: not known, any may be)."""
    t = now()
    tags: list[tuple[Any, ...]] = []
    topics: list[tuple[Any, ...]] = []
    runs: list[tuple[Any, ...]] = []
    events: list[tuple[Any, ...]] = []
    jobs: list[NewJob] = []
    for e in effects:
        if e.changes_conversation:
            columns = _conversation_columns(e, t)
            yield (
                f"UPDATE conversations SET {', '.join(f'{name} = ?' for name in columns)} WHERE id = ?",
                [*columns.values(), e.conversation_id],
            )
        if e.resolve is not None:
            events.append((e.conversation_id, "resolve", e.resolve.actor, e.resolve.reason, t))
        tags += [(e.message_id, e.conversation_id, name, name.casefold()) for name in e.tags]
        topics += [(e.conversation_id, name, name.casefold()) for name in e.topics]
        runs += [_run_row(e, r, t) for r in e.runs]
        jobs += e.jobs
    # the contact waits from their first message after our last reply: only conversations not
    # waiting yet can change (new ones start waiting when opened; resolved ones hold NULL) — in
    # the steady state of a busy inbox, none
    waiting = [
        e.conversation_id for e in effects if e.resolve is None and (answered is None or e.conversation_id in answered)
    ]
    if waiting:
        yield waiting_statement(waiting, only_unset=True)
    if effects:
        yield index_statement([(e.message_id, e.conversation_id, e.search_document) for e in effects], sqlite=sqlite)
    yield from _insert("message_tags", ("message_id", "conversation_id", "name", "key"), tags, ignore_conflicts=True)
    if topics:
        yield from _insert("conversation_topics", ("conversation_id", "name", "key"), topics, ignore_conflicts=True)
        # priority and team follow the new topics, in the same transaction; the conversations
        # are locked since `receive`, so an agent changing their topics waits for this commit
        yield from reroute_steps([e.conversation_id for e in effects if e.topics])
    yield from _insert("automation_runs", RUN_COLUMNS, runs)
    yield from _insert("conversation_events", ("conversation_id", "action", "actor", "reason", "created_at"), events)
    if jobs:
        yield from enqueue_steps(jobs)
    return bool(jobs)


def _conversation_columns(e: Effects, at: datetime) -> dict[str, Any]:
    """The columns the effects change, with their values as stored (JSON as text)."""
    columns: dict[str, Any] = {"updated_at": at}
    if e.keyword_progress is not None:
        columns["keyword_progress"] = JSON_DUMPS(list(e.keyword_progress))
    if e.reply_to is not None:
        columns["reply_to"] = JSON_DUMPS(dict(e.reply_to))
    if e.crm_target is not None:
        columns["crm_target"] = e.crm_target
    if e.resolve is not None:
        columns.update(resolved_columns(actor=e.resolve.actor, reason=e.resolve.reason, at=at))
    return columns
