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

from tortoise.functions import Max

from bot import domain
from bot.domain import Direction, Effects, InboundMessage, NewJob, Received, Status
from bot.store import models, queue, records, search
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
    for channel, pids in by_channel.items():
        rows = await models.Message.filter(channel=channel, platform_id__in=pids).values_list(
            "platform_id", "conversation_id", "id"
        )
        for pid, cid, mid in rows:
            found[(channel, pid)] = (cid, mid)
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


@boundary
async def open_conversations_for_update(keys: Sequence[str]) -> dict[str, domain.OpenConversation]:
    """Open conversations by open key, locked until the transaction ends (PostgreSQL)."""
    if not keys:
        return {}
    rows = (
        await models.Conversation.filter(open_key__in=list(keys))
        .select_for_update()
        .only(*records.OPEN_CONVERSATION_COLUMNS)
    )
    return {c.open_key: records.open_conversation(c) for c in rows if c.open_key}


@boundary
async def start_conversations(new: Sequence[tuple[InboundMessage, int]]) -> dict[str, domain.OpenConversation]:
    """Open one conversation per (message, contact pk), linked to the thread's previous one."""
    if not new:
        return {}
    previous: dict[tuple[str, str], int] = {}
    by_channel: dict[str, list[str]] = {}
    for msg, _ in new:
        by_channel.setdefault(msg.channel, []).append(msg.thread_key)
    for channel, threads in by_channel.items():
        rows = (
            await models.Conversation.filter(channel=channel, thread_key__in=threads)
            .group_by("thread_key")
            .annotate(last=Max("id"))
            .values_list("thread_key", "last")
        )
        for thread, last in rows:
            previous[(channel, thread)] = last
    await models.Conversation.bulk_create(
        [
            models.Conversation(
                channel=msg.channel,
                thread_key=msg.thread_key,
                open_key=open_key(msg.channel, msg.thread_key),
                type=msg.type.value,
                status=Status.OPEN.value,
                contact_id=contact_id,
                previous_id=previous.get((msg.channel, msg.thread_key)),
                keyword_progress=[],
                reply_to=dict(msg.reply_to),
            )
            for msg, contact_id in new
        ]
    )
    return await open_conversations_for_update([open_key(m.channel, m.thread_key) for m, _ in new])


@boundary
async def add_inbound_many(items: Sequence[tuple[InboundMessage, int]]) -> dict[tuple[str, str], int]:
    """Store inbound messages (message, conversation pk); returns (channel, platform id) → message pk."""
    stamp = now()
    await models.Message.bulk_create(
        [
            models.Message(
                conversation_id=conversation_id,
                channel=msg.channel,
                platform_id=msg.platform_message_id,
                direction=Direction.INBOUND.value,
                text=msg.text,
                author=f"contact:{msg.contact_id}",
                sent_at=msg.sent_at or stamp,
                created_at=stamp,
            )
            for msg, conversation_id in items
        ]
    )
    found = await find_inbound_many([(m.channel, m.platform_message_id) for m, _ in items])
    return {k: mid for k, (_, mid) in found.items()}


# --- applying what the engine planned ------------------------------------------------------------


@boundary
async def apply(effects: Sequence[Effects]) -> bool:
    """Write one round's effects: each changed conversation, then one insert per kind (tags,
    topics — and the priority and team they give —, runs, status events, outbox jobs). Returns
    whether outbox work was asked for."""
    t = now()
    tags: list[models.MessageTag] = []
    topics: list[models.ConversationTopic] = []
    runs: list[models.AutomationRun] = []
    events: list[models.ConversationEvent] = []
    jobs: list[NewJob] = []
    for e in effects:
        if e.changes_conversation:
            await models.Conversation.filter(id=e.conversation_id).update(**_conversation_columns(e, t))
        if e.resolve is not None:
            events.append(
                models.ConversationEvent(
                    conversation_id=e.conversation_id,
                    action="resolve",
                    actor=e.resolve.actor,
                    reason=e.resolve.reason,
                    created_at=t,
                )
            )
        for name in e.tags:
            tags.append(
                models.MessageTag(
                    message_id=e.message_id, conversation_id=e.conversation_id, name=name, key=name.casefold()
                )
            )
        for name in e.topics:
            topics.append(models.ConversationTopic(conversation_id=e.conversation_id, name=name, key=name.casefold()))
        for r in e.runs:
            runs.append(
                models.AutomationRun(
                    automation_id=r.automation_id,
                    automation_name=r.automation_name,
                    conversation_id=e.conversation_id,
                    message_id=e.message_id,
                    keywords=list(r.keywords),
                    actions=[a.to_json() for a in r.actions],
                    revision=r.revision,
                    created_at=t,
                )
            )
        jobs += e.jobs
    # the contact waits from their first message after our last reply: only conversations not
    # waiting yet can change (one statement for the round; resolved ones hold NULL)
    await refresh_waiting([e.conversation_id for e in effects if e.resolve is None], only_unset=True)
    await search.index_messages([(e.message_id, e.conversation_id, e.search_document) for e in effects])
    if tags:
        await models.MessageTag.bulk_create(tags, ignore_conflicts=True)
    if topics:
        await models.ConversationTopic.bulk_create(topics, ignore_conflicts=True)
        # priority and team follow the new topics, in the same transaction; the conversations
        # are locked since `receive`, so an agent changing their topics waits for this commit
        await queue.reroute([e.conversation_id for e in effects if e.topics])
    if runs:
        await models.AutomationRun.bulk_create(runs)
    if events:
        await models.ConversationEvent.bulk_create(events)
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
