"""Conversations, their contacts and messages: reads for the API, status changes, CRM progress."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from tortoise import connections
from tortoise.expressions import Q, Subquery
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from bot import domain
from bot.domain import PRIORITY_ORDER, ConversationFilter, Delivery, Direction, QueueKey, Status
from bot.store import models, records, search
from bot.store.base import boundary, inline_ids, now, select, stored_at, timestamp


def open_key(channel: str, thread_key: str) -> str:
    """The unique value an open conversation holds: one open conversation per (channel, thread)."""
    return f"{channel}\x1f{thread_key}"


# --- conversations -----------------------------------------------------------------------------


@boundary
async def get_conversation(conversation_id: int, *, for_update: bool = False) -> domain.Conversation | None:
    """The conversation, or None; `for_update` locks it until the transaction ends (PostgreSQL)."""
    if not for_update:
        return (await conversations_by_id([conversation_id])).get(conversation_id)
    row = await models.Conversation.filter(id=conversation_id).select_for_update().first()
    return records.conversation(row) if row else None


# Read with one plain SELECT wherever pages read conversations: building ORM rows (and parsing
# their timestamps and JSON through the ORM) cost several times the query for a page of them.
CONVERSATION_COLUMNS = (
    "id",
    "channel",
    "thread_key",
    "type",
    "status",
    "contact_id",
    "previous_id",
    "resolution_reason",
    "resolved_by",
    "resolved_at",
    "keyword_progress",
    "reply_to",
    "crm_target",
    "crm_case_id",
    "crm_case_number",
    "crm_status",
    "crm_transcript_upto",
    "crm_pending_message_id",
    "crm_closed",
    "created_at",
    "updated_at",
    "priority",
    "team_id",
    "assignee_id",
    "waiting_since",
)
_CONVERSATION_SELECT = f"SELECT {', '.join(CONVERSATION_COLUMNS)} FROM conversations"


_EMPTY_JSON: dict[str, Any] = {"[]": (), "{}": {}}  # what most conversations hold: no parsing


def _json(value: Any) -> Any:
    """A JSON column as the driver returns it: the stored text (SQLite, asyncpg) or decoded."""
    if isinstance(value, str) and value in _EMPTY_JSON:
        return _EMPTY_JSON[value]
    return json.loads(value) if isinstance(value, str | bytes) else value


def _conversation(r: Sequence[Any]) -> domain.Conversation:
    """From a row of `CONVERSATION_COLUMNS`, in that order."""
    return domain.Conversation(
        id=int(r[0]),
        channel=r[1],
        thread_key=r[2],
        type=records.TYPES[r[3]],
        status=records.STATUSES[r[4]],
        contact_id=int(r[5]),
        previous_id=r[6],
        resolution_reason=r[7],
        resolved_by=r[8],
        resolved_at=timestamp(r[9]),
        keyword_progress=tuple(_json(r[10]) or ()),
        reply_to=dict(_json(r[11]) or {}),
        crm_target=r[12],
        crm_case_id=r[13],
        crm_case_number=r[14],
        crm_status=r[15],
        crm_transcript_upto=r[16],
        crm_pending_message_id=r[17],
        crm_closed=None if r[18] is None else bool(r[18]),
        created_at=stored_at(r[19]),
        updated_at=stored_at(r[20]),
        priority=int(r[21]),
        team_id=r[22],
        assignee_id=r[23],
        waiting_since=timestamp(r[24]),
    )


@boundary
async def conversations_by_id(conversation_ids: Sequence[int]) -> dict[int, domain.Conversation]:
    """The conversations of these ids that exist."""
    ids = sorted({int(i) for i in conversation_ids})
    if not ids:
        return {}
    rows = await select(f"{_CONVERSATION_SELECT} WHERE id IN ({inline_ids(ids)})")
    return {c.id: c for c in map(_conversation, rows)}


async def _in_order(ids: Sequence[int]) -> list[domain.Conversation]:
    found = await conversations_by_id(ids)
    return [found[i] for i in ids if i in found]


def mark_resolved(conv: domain.Conversation, *, actor: str, reason: str | None) -> domain.Conversation:
    """The conversation as resolved by `actor` (nothing is stored: see `set_resolved`)."""
    t = now()
    return dataclasses.replace(
        conv,
        status=Status.RESOLVED,
        resolution_reason=reason,
        resolved_by=actor,
        resolved_at=t,
        updated_at=t,
    )


def resolved_columns(*, actor: str, reason: str | None, at: datetime) -> dict[str, Any]:
    """The columns a resolve writes (the open key is freed: the thread may open a new one; a
    resolved conversation waits for nobody)."""
    return {
        "status": Status.RESOLVED.value,
        "open_key": None,
        "resolution_reason": reason,
        "resolved_by": actor,
        "resolved_at": at,
        "waiting_since": None,
    }


@boundary
async def set_resolved(conv: domain.Conversation, *, actor: str, reason: str | None) -> domain.Conversation:
    """Resolve and record who did it; returns the conversation as stored."""
    done = dataclasses.replace(mark_resolved(conv, actor=actor, reason=reason), waiting_since=None)
    assert done.resolved_at is not None
    await models.Conversation.filter(id=conv.id).update(
        **resolved_columns(actor=actor, reason=reason, at=done.resolved_at), updated_at=done.updated_at
    )
    await record_event(conv.id, "resolve", actor, reason)
    return done


@boundary
async def set_reopened(conv: domain.Conversation, *, actor: str) -> domain.Conversation:
    """Reopen; raises StoreConflict when another conversation is open on the same thread."""
    t = now()
    await models.Conversation.filter(id=conv.id).update(
        status=Status.OPEN.value,
        open_key=open_key(conv.channel, conv.thread_key),
        resolution_reason=None,
        resolved_by=None,
        resolved_at=None,
        updated_at=t,
    )
    await record_event(conv.id, "reopen", actor, None)
    return dataclasses.replace(
        conv, status=Status.OPEN, resolution_reason=None, resolved_by=None, resolved_at=None, updated_at=t
    )


@boundary
async def record_event(conversation_id: int, action: str, actor: str, reason: str | None) -> None:
    await models.ConversationEvent.create(conversation_id=conversation_id, action=action, actor=actor, reason=reason)


@boundary
async def conversation_events(conversation_id: int) -> list[domain.ConversationEvent]:
    """What was done to the conversation and by whom (resolve, reopen, assign, topics changes),
    oldest first."""
    rows = await select(
        "SELECT id, action, actor, reason, created_at FROM conversation_events"
        f" WHERE conversation_id = {int(conversation_id)} ORDER BY id"
    )
    return [
        domain.ConversationEvent(
            id=int(r[0]),
            conversation_id=int(conversation_id),
            action=r[1],
            actor=r[2],
            reason=r[3],
            created_at=stored_at(r[4]),
        )
        for r in rows
    ]


def _filtered(f: ConversationFilter) -> QuerySet[models.Conversation] | None:
    """Conversations that pass the filter, in no order; None when nothing can pass."""
    # a filter longer than its column can match nothing (and Tortoise refuses to bind it)
    if (
        (f.channel and len(f.channel) > 64)
        or (f.topic and len(f.topic) > 100)
        or (f.tag and len(f.tag) > 100)
        or (f.contact and len(f.contact) > 255)
    ):
        return None
    qs = models.Conversation.all()
    if f.status is not None:
        qs = qs.filter(status=f.status.value)
    if f.channel:
        qs = qs.filter(channel=f.channel)
    if f.topic:
        topics = models.ConversationTopic.filter(key=f.topic.casefold()).values("conversation_id")
        qs = qs.filter(id__in=Subquery(topics))
    if f.tag:
        qs = qs.filter(id__in=Subquery(models.MessageTag.filter(key=f.tag.casefold()).values("conversation_id")))
    if f.words is not None:
        qs = qs.filter(id__in=search.matching_conversations(f.words, dialect=qs._db.capabilities.dialect))
    if f.team_id is not None:
        qs = qs.filter(team_id=f.team_id)
    if f.unassigned:
        qs = qs.filter(assignee_id__isnull=True)
    elif f.assignee_id is not None:
        qs = qs.filter(assignee_id=f.assignee_id)
    if f.priority is not None:
        qs = qs.filter(priority=f.priority)
    if f.contact:
        contacts = models.Contact.filter(Q(platform_id=f.contact) | Q(name_key__contains=f.contact.casefold()))
        qs = qs.filter(contact_id__in=Subquery(contacts.values("id")))
    return qs


@boundary
async def list_conversations(
    f: ConversationFilter,
    *,
    limit: int,
    before_id: int | None = None,
    queue: bool = False,
    after: QueueKey | None = None,
) -> list[domain.Conversation]:
    """Conversations that pass the filter: newest first (`before_id`: the page cursor), or in the
    queue's order with `queue` (`after`: the key of the previous page's last conversation)."""
    qs = _filtered(f)
    if qs is None:
        return []
    # the filter (composed by the ORM) picks the ids; one plain SELECT reads their rows
    if not queue:
        if before_id is not None:
            qs = qs.filter(id__lt=before_id)
        return await _in_order(await _ids_of(qs.order_by("-id").limit(limit)))
    return await _in_order(await _queue_page(qs, limit=limit, after=after, only=f.priority))


async def _ids_of(qs: QuerySet[models.Conversation]) -> list[int]:
    return [int(i) for i in await qs.values_list("id", flat=True)]  # type: ignore[call-overload]


async def _queue_page(
    qs: QuerySet[models.Conversation], *, limit: int, after: QueueKey | None, only: int | None
) -> list[int]:
    """The queue's order, read segment by segment: for each priority, the waiting conversations
    (oldest wait first), then those not waiting (by id). Each segment is one range of the index
    (status, priority, waiting_since, id), on both databases alike: SQLite sorts NULL first where
    the queue wants it last, so one ORDER BY could not use the index there. A page touches at most
    two segments per priority and reads no further than it shows. Returns their ids in order."""
    out: list[int] = []
    ranks = [only] if only is not None else list(range(len(PRIORITY_ORDER)))
    for rank in ranks:
        if after is not None and rank < after.priority:
            continue
        here = after if after is not None and rank == after.priority else None
        level = qs.filter(priority=rank)
        if here is None or here.waiting_since is not None:
            waiting = level.filter(waiting_since__isnull=False)
            if here is not None:
                # the range seeks the index; the rest only breaks ties on the same instant
                waiting = waiting.filter(waiting_since__gte=here.waiting_since).filter(
                    Q(waiting_since__gt=here.waiting_since) | Q(id__gt=here.id)
                )
            out += await _ids_of(waiting.order_by("waiting_since", "id").limit(limit - len(out)))
            if len(out) >= limit:
                return out
        idle = level.filter(waiting_since__isnull=True)
        if here is not None and here.waiting_since is None:
            idle = idle.filter(id__gt=here.id)
        out += await _ids_of(idle.order_by("id").limit(limit - len(out)))
        if len(out) >= limit:
            return out
    return out


@boundary
async def conversation_labels(ids: Sequence[int]) -> tuple[dict[int, list[str]], dict[int, list[str]]]:
    """(topics by conversation, tags by conversation), each in first-applied order, unique."""
    topics: dict[int, list[str]] = {i: [] for i in ids}
    tags: dict[int, list[str]] = {i: [] for i in ids}
    if not ids:
        return topics, tags
    listed = inline_ids(sorted(set(ids)))
    seen: set[tuple[int, str]] = set()
    for kind, cid, name, key, _ in await select(  # both in one query: a page asks for them together
        f"SELECT 0, conversation_id, name, key, id FROM conversation_topics WHERE conversation_id IN ({listed})"
        f" UNION ALL SELECT 1, conversation_id, name, key, id FROM message_tags WHERE conversation_id IN ({listed})"
        " ORDER BY 1, 5"
    ):
        if kind == 0:
            topics[int(cid)].append(name)
        elif (cid, key) not in seen:
            seen.add((cid, key))
            tags[int(cid)].append(name)
    return topics, tags


@boundary
async def conversation_messages(conversation_id: int) -> tuple[list[domain.Message], dict[int, list[str]]]:
    """The conversation's messages, oldest first, and each message's tags."""
    # One plain SELECT: building ORM rows (and parsing their timestamps through the ORM) cost ten
    # times the query for a long conversation's page.
    _, rows = await connections.get("default").execute_query(
        f"SELECT {', '.join(MESSAGE_COLUMNS)} FROM messages WHERE conversation_id = {int(conversation_id)} ORDER BY id"
    )
    messages = [_message(row) for row in rows]
    tags: dict[int, list[str]] = {m.id: [] for m in messages}
    for mid, name in await select(
        f"SELECT message_id, name FROM message_tags WHERE conversation_id = {int(conversation_id)} ORDER BY id"
    ):
        tags.setdefault(int(mid), []).append(name)
    return messages, tags


MESSAGE_COLUMNS = (
    "id",
    "conversation_id",
    "channel",
    "platform_id",
    "external_id",
    "direction",
    "text",
    "author",
    "sent_at",
    "crm_comment_id",
    "created_at",
    "delivery",
)


_DIRECTIONS = {d.value: d for d in Direction}


def _message(r: Sequence[Any]) -> domain.Message:
    """From a row of `MESSAGE_COLUMNS`, in that order."""
    return domain.Message(
        id=int(r[0]),
        conversation_id=int(r[1]),
        channel=r[2],
        platform_id=r[3],
        external_id=r[4],
        direction=_DIRECTIONS[r[5]],
        text=r[6],
        author=r[7],
        sent_at=timestamp(r[8]),
        crm_comment_id=r[9],
        created_at=stored_at(r[10]),
        delivery=r[11],
    )


@boundary
async def conversation_runs(conversation_id: int) -> list[domain.AutomationRun]:
    """The automations that fired in the conversation, oldest first (each page of it reads them)."""
    rows = await select(
        "SELECT id, automation_id, automation_name, message_id, keywords, actions, created_at, revision"
        f" FROM automation_runs WHERE conversation_id = {int(conversation_id)} ORDER BY id"
    )
    return [
        domain.AutomationRun(
            id=int(r[0]),
            automation_id=int(r[1]),
            automation_name=r[2],
            conversation_id=int(conversation_id),
            message_id=int(r[3]),
            keywords=tuple(_json(r[4])),
            actions=records.actions(_json(r[5])),
            created_at=stored_at(r[6]),
            revision=None if r[7] is None else int(r[7]),
        )
        for r in rows
    ]


# --- contacts and messages -----------------------------------------------------------------------


@boundary
async def get_contact(contact_id: int) -> domain.Contact | None:
    row = await models.Contact.filter(id=contact_id).first()
    return records.contact(row) if row else None


@boundary
async def get_contacts(contact_ids: Sequence[int]) -> dict[int, domain.Contact]:
    """Contacts by id (the ones that exist)."""
    if not contact_ids:
        return {}
    ids = inline_ids(sorted(set(contact_ids)))
    rows = await select(f"SELECT id, channel, platform_id, name, created_at FROM contacts WHERE id IN ({ids})")
    return {
        int(r[0]): domain.Contact(id=int(r[0]), channel=r[1], platform_id=r[2], name=r[3], created_at=stored_at(r[4]))
        for r in rows
    }


@boundary
async def add_message(
    *,
    conversation_id: int,
    channel: str,
    direction: Direction,
    text: str,
    platform_id: str | None = None,
    author: str | None = None,
    sent_at: datetime | None = None,
    crm_comment_id: str | None = None,
    search_document: str | None = None,
    delivery: Delivery | None = None,
) -> domain.Message:
    """Store one message (and index `search_document`, its searchable form); a `crm_comment_id`
    already held by another raises StoreConflict. `delivery`: an outbound message's state."""
    row = await models.Message.create(
        conversation_id=conversation_id,
        channel=channel,
        platform_id=platform_id,
        direction=direction.value,
        text=text,
        author=author,
        sent_at=sent_at or now(),
        crm_comment_id=crm_comment_id,
        delivery=delivery.value if delivery is not None else None,
    )
    if search_document is not None:
        await search.index_messages([(row.id, conversation_id, search_document)])
    return records.message(row)


@boundary
async def get_message(message_id: int) -> domain.Message | None:
    row = await models.Message.filter(id=message_id).first()
    return records.message(row) if row else None


@boundary
async def mark_sent(message_id: int, external_id: str | None) -> None:
    """Record the id the platform gave a delivered outbound message."""
    await models.Message.filter(id=message_id).update(external_id=external_id, delivery=Delivery.SENT.value)


@boundary
async def set_delivery(message_id: int, delivery: Delivery) -> None:
    """Where an outbound message's delivery stands (pending again after a retry, failed for good)."""
    await models.Message.filter(id=message_id, direction=Direction.OUTBOUND.value).update(delivery=delivery.value)


# --- CRM sync progress ------------------------------------------------------------------------------


@boundary
async def set_crm_fields(conversation_id: int, **values: Any) -> None:
    """Update the conversation's crm_* columns only (never races with ingest's own fields)."""
    if any(not k.startswith("crm_") for k in values):
        raise ValueError(f"only crm_* columns here, not {sorted(values)}")
    await models.Conversation.filter(id=conversation_id).update(**values)


@boundary
async def crm_last_message_id(conversation_id: int) -> int:
    row = await models.Message.filter(conversation_id=conversation_id).order_by("-id").only("id").first()
    return row.id if row else 0


@boundary
async def crm_unsynced_messages(conversation_id: int, *, after_id: int) -> list[domain.Message]:
    """Messages after the Case's transcript that have no CaseComment yet, oldest first."""
    rows = await models.Message.filter(
        conversation_id=conversation_id, id__gt=after_id, crm_comment_id__isnull=True
    ).order_by("id")
    return [records.message(m) for m in rows]


@boundary
async def crm_comment_done(message_id: int, comment_id: str, conversation_id: int) -> None:
    """Record the CaseComment of a message and clear the conversation's pending marker, together."""
    async with in_transaction("default"):
        await models.Message.filter(id=message_id).update(crm_comment_id=comment_id)
        await models.Conversation.filter(id=conversation_id).update(crm_pending_message_id=None)


@boundary
async def set_message_crm_comment(message_id: int, comment_id: str) -> None:
    """Raises StoreConflict when another message already holds this CaseComment id."""
    await models.Message.filter(id=message_id).update(crm_comment_id=comment_id)


@boundary
async def known_crm_comments(comment_ids: Sequence[str]) -> set[str]:
    """The CaseComment ids already stored on a message."""
    if not comment_ids:
        return set()
    rows = await models.Message.filter(crm_comment_id__in=list(comment_ids)).values_list("crm_comment_id", flat=True)
    return {str(r) for r in rows}


@boundary
async def crm_linked_conversations(target: str) -> list[domain.Conversation]:
    """Conversations linked to a CRM record (newest last)."""
    rows = await models.Conversation.filter(crm_target=target, crm_case_id__isnull=False).order_by("id")
    return [records.conversation(c) for c in rows]


@boundary
async def last_messages(conversation_ids: Sequence[int]) -> dict[int, domain.Message]:
    """The latest message of each conversation that has one (a queue page's previews): one
    grouped read over the (conversation, id) index."""
    if not conversation_ids:
        return {}
    ids = ", ".join(str(int(i)) for i in sorted(set(conversation_ids)))  # ints only: safe to inline
    _, rows = await connections.get("default").execute_query(
        f"SELECT {', '.join(MESSAGE_COLUMNS)} FROM messages WHERE id IN"
        f" (SELECT MAX(id) FROM messages WHERE conversation_id IN ({ids}) GROUP BY conversation_id)"
    )
    return {m.conversation_id: m for m in map(_message, rows)}
