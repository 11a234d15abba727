"""The queries the rest of the bot uses. The one place that talks to the ORM (with views.py)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from tortoise.exceptions import IntegrityError as _IntegrityError
from tortoise.exceptions import OperationalError as _OperationalError
from tortoise.exceptions import ValidationError as _ValidationError
from tortoise.expressions import Q, Subquery
from tortoise.functions import Max, Min
from tortoise.transactions import in_transaction

from bot.domain import VALUE_KEY, ActionType, Direction, InboundMessage, Status
from bot.engine.search import document, terms
from bot.store import search
from bot.store.models import (
    Automation,
    AutomationRun,
    Contact,
    Conversation,
    ConversationEvent,
    ConversationTopic,
    KeyValue,
    Label,
    Message,
    MessageTag,
    OutboxJob,
)

IntegrityError = _IntegrityError
OperationalError = _OperationalError
ValidationError = _ValidationError

__all__ = [
    "Automation",
    "AutomationRun",
    "Contact",
    "Conversation",
    "IntegrityError",
    "Label",
    "Message",
    "OperationalError",
    "OutboxJob",
]

AUTOMATIONS_REVISION = "automations_revision"


def now() -> datetime:
    return datetime.now(UTC)


def open_key(channel: str, thread_key: str) -> str:
    return f"{channel}\x1f{thread_key}"


@contextlib.asynccontextmanager
async def transaction() -> AsyncIterator[Any]:
    """One database transaction; queries made by this task inside it join it."""
    async with in_transaction("default") as conn:
        if conn.capabilities.dialect == "sqlite":  # take the write lock up front (busy_timeout waits for it):
            await conn.execute_query("UPDATE key_values SET value = value WHERE 0")  # no stale-snapshot BUSY
        yield conn


async def ping() -> bool:
    await KeyValue.filter(key="__ping__").exists()
    return True


# --- ingest primitives (called inside a transaction) -----------------------------------------


class ContactCache:
    """(channel, platform id) → (pk, name): skips the contact look-up for contacts seen before."""

    def __init__(self, size: int = 50_000) -> None:
        self._size = size
        self._items: dict[tuple[str, str], tuple[int, str | None]] = {}

    async def ids(self, wanted: Sequence[tuple[str, str, str | None]]) -> dict[tuple[str, str], int]:
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


async def add_message(
    *,
    conversation_id: int,
    channel: str,
    direction: Direction,
    text: str,
    platform_id: str | None = None,
    author: str | None = None,
    sent_at: datetime | None = None,
) -> Message:
    message = await Message.create(
        conversation_id=conversation_id,
        channel=channel,
        platform_id=platform_id,
        direction=direction.value,
        text=text,
        author=author,
        sent_at=sent_at or now(),
    )
    await search.index_messages([(message.id, conversation_id, document(text))])
    return message


def new_run(**kwargs: Any) -> AutomationRun:
    return AutomationRun(**kwargs)


async def save_conversation(conv: Conversation, fields: Sequence[str]) -> None:
    if fields:
        await conv.save(update_fields=[*fields, "updated_at"])


async def record_event(conversation_id: int, action: str, actor: str, reason: str | None) -> None:
    await ConversationEvent.create(conversation_id=conversation_id, action=action, actor=actor, reason=reason)


# --- set-based ingest (one round of a group commit: distinct thread keys) -------------------


async def find_inbound_many(keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], tuple[int, int]]:
    """(channel, platform id) → (conversation id, message id) for messages already stored."""
    by_channel: dict[str, list[str]] = {}
    for channel, pid in keys:
        by_channel.setdefault(channel, []).append(pid)
    found: dict[tuple[str, str], tuple[int, int]] = {}
    for channel, pids in by_channel.items():
        rows = await Message.filter(channel=channel, platform_id__in=pids).values_list(
            "platform_id", "conversation_id", "id"
        )
        for pid, cid, mid in rows:
            found[(channel, pid)] = (cid, mid)
    return found


async def contacts_many(wanted: Sequence[tuple[str, str, str | None]]) -> dict[tuple[str, str], tuple[int, str | None]]:
    """Find or create contacts (channel, platform id, name); returns key → (pk, name)."""
    keys = {(c, p): n for c, p, n in wanted}

    async def fetch() -> dict[tuple[str, str], tuple[int, str | None]]:
        out: dict[tuple[str, str], tuple[int, str | None]] = {}
        by_channel: dict[str, list[str]] = {}
        for c, p in keys:
            by_channel.setdefault(c, []).append(p)
        for c, pids in by_channel.items():
            for pid, cid, name in await Contact.filter(channel=c, platform_id__in=pids).values_list(
                "platform_id", "id", "name"
            ):
                out[(c, pid)] = (cid, name)
        return out

    found = await fetch()
    missing = [k for k in keys if k not in found]
    if missing:
        await Contact.bulk_create(
            [Contact(channel=c, platform_id=p, name=keys[(c, p)]) for c, p in missing], ignore_conflicts=True
        )
        found = await fetch()
    for k, name in keys.items():
        if name and k in found and found[k][1] != name:
            await Contact.filter(id=found[k][0]).update(name=name)
            found[k] = (found[k][0], name)
    return found


async def open_conversations_for_update(keys: Sequence[str]) -> dict[str, Conversation]:
    """Open conversations by open key, locked until the transaction ends (PostgreSQL)."""
    if not keys:
        return {}
    rows = await Conversation.filter(open_key__in=list(keys)).select_for_update()
    return {c.open_key: c for c in rows if c.open_key}


async def start_conversations(new: Sequence[tuple[InboundMessage, int]]) -> dict[str, Conversation]:
    """Open one conversation per (message, contact pk), linked to the thread's previous one."""
    if not new:
        return {}
    previous: dict[tuple[str, str], int] = {}
    by_channel: dict[str, list[str]] = {}
    for msg, _ in new:
        by_channel.setdefault(msg.channel, []).append(msg.thread_key)
    for channel, threads in by_channel.items():
        rows = (
            await Conversation.filter(channel=channel, thread_key__in=threads)
            .group_by("thread_key")
            .annotate(last=Max("id"))
            .values_list("thread_key", "last")
        )
        for thread, last in rows:
            previous[(channel, thread)] = last
    await Conversation.bulk_create(
        [
            Conversation(
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


async def add_inbound_many(items: Sequence[tuple[InboundMessage, int]]) -> dict[tuple[str, str], int]:
    """Store inbound messages (message, conversation pk); returns (channel, platform id) → message pk."""
    stamp = now()
    await Message.bulk_create(
        [
            Message(
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
    await search.index_messages(
        [(found[(m.channel, m.platform_message_id)][1], cid, document(m.text)) for m, cid in items]
    )
    return {k: mid for k, (_, mid) in found.items()}


async def bulk_insert(rows: Sequence[Any], *, ignore_conflicts: bool = False) -> None:
    """Insert rows of one model (built with repo's constructors) in one statement."""
    if rows:
        await type(rows[0]).bulk_create(list(rows), ignore_conflicts=ignore_conflicts)


def message_tag(message_id: int, conversation_id: int, name: str) -> MessageTag:
    return MessageTag(message_id=message_id, conversation_id=conversation_id, name=name, key=name.casefold())


def conversation_topic(conversation_id: int, name: str) -> ConversationTopic:
    return ConversationTopic(conversation_id=conversation_id, name=name, key=name.casefold())


def conversation_event(conversation_id: int, action: str, actor: str, reason: str | None) -> ConversationEvent:
    return ConversationEvent(
        conversation_id=conversation_id, action=action, actor=actor, reason=reason, created_at=now()
    )


def outbox_job(
    kind: str, payload: dict[str, Any], *, conversation_id: int | None, ordering_key: str | None
) -> OutboxJob:
    t = now()
    return OutboxJob(
        kind=kind,
        payload=payload,
        conversation_id=conversation_id,
        ordering_key=ordering_key,
        status="pending",
        run_after=t,
        created_at=t,
        updated_at=t,
    )


# --- conversations -----------------------------------------------------------------------------


async def get_conversation(conversation_id: int, *, for_update: bool = False) -> Conversation | None:
    qs = Conversation.filter(id=conversation_id)
    if for_update:
        qs = qs.select_for_update()
    return await qs.first()


def mark_resolved(conv: Conversation, *, actor: str, reason: str | None) -> list[str]:
    """Set a conversation's resolved state in memory; returns the fields to save."""
    conv.status = Status.RESOLVED.value
    conv.open_key = None
    conv.resolution_reason = reason
    conv.resolved_by = actor
    conv.resolved_at = now()
    return ["status", "open_key", "resolution_reason", "resolved_by", "resolved_at"]


async def set_resolved(conv: Conversation, *, actor: str, reason: str | None) -> None:
    await save_conversation(conv, mark_resolved(conv, actor=actor, reason=reason))
    await record_event(conv.id, "resolve", actor, reason)


async def set_reopened(conv: Conversation, *, actor: str) -> None:
    """Reopen; raises IntegrityError when another conversation is open on the same thread."""
    conv.status = Status.OPEN.value
    conv.open_key = open_key(conv.channel, conv.thread_key)
    conv.resolution_reason = None
    conv.resolved_by = None
    conv.resolved_at = None
    await save_conversation(conv, ["status", "open_key", "resolution_reason", "resolved_by", "resolved_at"])
    await record_event(conv.id, "reopen", actor, None)


async def list_conversations(
    *,
    status: str | None,
    channel: str | None,
    topic: str | None,
    tag: str | None,
    before_id: int | None,
    limit: int,
    q: str | None = None,
) -> list[Conversation]:
    # a filter longer than its column can match nothing (and Tortoise refuses to bind it)
    if (channel and len(channel) > 64) or (topic and len(topic) > 100) or (tag and len(tag) > 100):
        return []
    qs = Conversation.all()
    if status:
        qs = qs.filter(status=status)
    if channel:
        qs = qs.filter(channel=channel)
    if topic:
        qs = qs.filter(id__in=Subquery(ConversationTopic.filter(key=topic.casefold()).values("conversation_id")))
    if tag:
        qs = qs.filter(id__in=Subquery(MessageTag.filter(key=tag.casefold()).values("conversation_id")))
    if q is not None:
        dialect = qs._db.capabilities.dialect
        qs = qs.filter(id__in=search.matching_conversations(terms(q), dialect=dialect))
    if before_id is not None:
        qs = qs.filter(id__lt=before_id)
    return await qs.order_by("-id").limit(limit).prefetch_related("contact")


async def conversation_labels(ids: Sequence[int]) -> tuple[dict[int, list[str]], dict[int, list[str]]]:
    """(topics by conversation, tags by conversation), each in first-applied order, unique."""
    topics: dict[int, list[str]] = {i: [] for i in ids}
    tags: dict[int, list[str]] = {i: [] for i in ids}
    if not ids:
        return topics, tags
    for cid, name in (
        await ConversationTopic.filter(conversation_id__in=ids).order_by("id").values_list("conversation_id", "name")
    ):
        topics[cid].append(name)
    seen: set[tuple[int, str]] = set()
    for cid, name, key in (
        await MessageTag.filter(conversation_id__in=ids).order_by("id").values_list("conversation_id", "name", "key")
    ):
        if (cid, key) not in seen:
            seen.add((cid, key))
            tags[cid].append(name)
    return topics, tags


async def conversation_messages(conversation_id: int) -> tuple[list[Message], dict[int, list[str]]]:
    messages = await Message.filter(conversation_id=conversation_id).order_by("id")
    tags: dict[int, list[str]] = {m.id: [] for m in messages}
    for mid, name in (
        await MessageTag.filter(conversation_id=conversation_id).order_by("id").values_list("message_id", "name")
    ):
        tags.setdefault(mid, []).append(name)
    return messages, tags


async def conversation_runs(conversation_id: int) -> list[AutomationRun]:
    return await AutomationRun.filter(conversation_id=conversation_id).order_by("id")


async def get_contact(contact_id: int) -> Contact | None:
    return await Contact.filter(id=contact_id).first()


async def mark_sent(message_id: int, external_id: str | None) -> None:
    await Message.filter(id=message_id).update(external_id=external_id)


async def get_message(message_id: int) -> Message | None:
    return await Message.filter(id=message_id).first()


# --- labels (tags, topics, reasons) -----------------------------------------------------------


async def list_labels(kind: str) -> list[Label]:
    return await Label.filter(kind=kind).order_by("key")


async def find_label(kind: str, name: str) -> Label | None:
    return await Label.filter(kind=kind, key=name.casefold()).first()


async def find_labels(kind: str, names: Iterable[str]) -> dict[str, Label]:
    keys = [n.casefold() for n in names]
    return {lab.key: lab for lab in await Label.filter(kind=kind, key__in=keys)}


async def create_label(kind: str, name: str) -> Label:
    return await Label.create(kind=kind, name=name, key=name.casefold())


async def delete_label(label: Label) -> None:
    await label.delete()


# --- automations -------------------------------------------------------------------------------


async def list_automations(*, after_id: int | None = None, limit: int | None = None) -> list[Automation]:
    qs = Automation.all().order_by("id")
    if after_id is not None:
        qs = qs.filter(id__gt=after_id)
    if limit is not None:
        qs = qs.limit(limit)
    return await qs


async def enabled_automations() -> list[Automation]:
    return await Automation.filter(enabled=True).order_by("id")


async def get_automation(automation_id: int) -> Automation | None:
    return await Automation.filter(id=automation_id).first()


async def find_automation(name: str) -> Automation | None:
    return await Automation.filter(key=name.casefold()).first()


async def create_automation(**fields: Any) -> Automation:
    return await Automation.create(**fields)


async def save_automation(a: Automation) -> None:
    await a.save()


async def delete_automation(a: Automation) -> None:
    await a.delete()


async def automations_using(kind: str, name: str) -> list[Automation]:
    """Automations whose actions name this tag/topic/reason (case-insensitively)."""
    action_type = {"tag": ActionType.TAG, "topic": ActionType.TOPIC, "reason": ActionType.RESOLVE}[kind]
    value_key = VALUE_KEY[action_type]
    out = []
    for a in await Automation.all().order_by("id"):
        for act in a.actions:
            v = act.get(value_key)
            if act.get("type") == action_type.value and isinstance(v, str) and v.casefold() == name.casefold():
                out.append(a)
                break
    return out


async def list_runs(
    *, automation_id: int | None = None, before_id: int | None = None, limit: int = 50
) -> list[AutomationRun]:
    qs = AutomationRun.all()
    if automation_id is not None:
        qs = qs.filter(automation_id=automation_id)
    if before_id is not None:
        qs = qs.filter(id__lt=before_id)
    return await qs.order_by("-id").limit(limit)


async def bump_automations_revision() -> int:
    """Count a change to the automations; every worker reloads when it sees a new revision."""
    for _ in range(3):
        try:
            async with in_transaction("default"):
                row = await KeyValue.filter(key=AUTOMATIONS_REVISION).select_for_update().first()
                if row is None:
                    await KeyValue.create(key=AUTOMATIONS_REVISION, value="1")
                    return 1
                value = int(row.value) + 1
                await KeyValue.filter(key=AUTOMATIONS_REVISION).update(value=str(value))
                return value
        except IntegrityError:  # two first changes at once: the other one created the row
            continue
    raise RuntimeError("could not record the automations revision")


async def automations_revision() -> int:
    row = await KeyValue.filter(key=AUTOMATIONS_REVISION).first()
    return int(row.value) if row else 0


async def kv_get(key: str) -> str | None:
    row = await KeyValue.filter(key=key).first()
    return row.value if row else None


async def kv_set(key: str, value: str) -> None:
    if not await KeyValue.filter(key=key).update(value=value):
        await KeyValue.create(key=key, value=value)


# --- outbox ---------------------------------------------------------------------------------------


async def enqueue(
    kind: str,
    payload: dict[str, Any],
    *,
    conversation_id: int | None = None,
    ordering_key: str | None = None,
    delay: float = 0.0,
) -> OutboxJob:
    return await OutboxJob.create(
        kind=kind,
        payload=payload,
        conversation_id=conversation_id,
        ordering_key=ordering_key,
        status="pending",
        run_after=now() + timedelta(seconds=delay),
    )


async def claim_jobs(*, limit: int, lease_seconds: float, skip_locked: bool) -> list[OutboxJob]:
    """Take up to `limit` due jobs for this worker, each leased until `job.locked_until` (the
    worker's claim token: renew, finish and retry only succeed while it still matches).

    On PostgreSQL rows locked by another worker are skipped (FOR UPDATE SKIP LOCKED); a job whose
    lease ran out (a crashed worker) is due again. Jobs sharing an ordering key run one at a time,
    oldest first: only the oldest unfinished job of a key is a candidate, so jobs waiting behind a
    backed-off one never fill the claim window and starve other keys."""
    t = now()
    async with transaction():
        heads = (
            OutboxJob.filter(status__in=["pending", "running"], ordering_key__isnull=False)
            .group_by("ordering_key")
            .annotate(first=Min("id"))
            .values("first")
        )
        due = Q(status="pending", run_after__lte=t) | Q(status="running", locked_until__lt=t)
        qs = OutboxJob.filter(due).filter(Q(ordering_key__isnull=True) | Q(id__in=Subquery(heads)))
        qs = qs.order_by("id").limit(limit)
        jobs = await (qs.select_for_update(skip_locked=True) if skip_locked else qs)
        if jobs:
            token = t + timedelta(seconds=lease_seconds)
            await OutboxJob.filter(id__in=[j.id for j in jobs]).update(
                status="running", locked_until=token, updated_at=t
            )
            for j in jobs:
                j.status, j.locked_until = "running", token
        return jobs


async def renew_job(job: OutboxJob, *, lease_seconds: float) -> bool:
    """Extend this worker's lease on a running job; False when the lease was lost to another worker."""
    token = now() + timedelta(seconds=lease_seconds)
    renewed = await OutboxJob.filter(id=job.id, status="running", locked_until=job.locked_until).update(
        locked_until=token
    )
    if renewed:
        job.locked_until = token
    return bool(renewed)


async def finish_job(job: OutboxJob) -> bool:
    """Mark done, if this worker still holds the job's lease."""
    return bool(
        await OutboxJob.filter(id=job.id, status="running", locked_until=job.locked_until).update(
            status="done", locked_until=None, last_error=None, updated_at=now()
        )
    )


async def retry_job(job: OutboxJob, *, attempts: int, delay: float, error: str, failed: bool) -> bool:
    """Back off (or fail for good), if this worker still holds the job's lease."""
    return bool(
        await OutboxJob.filter(id=job.id, status="running", locked_until=job.locked_until).update(
            status="failed" if failed else "pending",
            attempts=attempts,
            run_after=now() + timedelta(seconds=delay),
            locked_until=None,
            last_error=error[:2000],
            updated_at=now(),
        )
    )


async def pending_job_conversations(kind: str, conversation_ids: Sequence[int]) -> set[int]:
    """Conversations that already have a not-yet-started job of this kind (idempotent jobs merge)."""
    if not conversation_ids:
        return set()
    rows = await OutboxJob.filter(kind=kind, status="pending", conversation_id__in=list(conversation_ids)).values_list(
        "conversation_id", flat=True
    )
    return {int(r) for r in rows}  # type: ignore[call-overload]


async def list_jobs(
    *, status: str | None = None, conversation_id: int | None = None, before_id: int | None = None, limit: int = 50
) -> list[OutboxJob]:
    qs = OutboxJob.all()
    if status:
        qs = qs.filter(status=status)
    if conversation_id is not None:
        qs = qs.filter(conversation_id=conversation_id)
    if before_id is not None:
        qs = qs.filter(id__lt=before_id)
    return await qs.order_by("-id").limit(limit)


async def count_jobs(status: str) -> int:
    return await OutboxJob.filter(status=status).count()


async def get_job(job_id: int) -> OutboxJob | None:
    return await OutboxJob.filter(id=job_id).first()


async def requeue_job(job_id: int) -> bool:
    return bool(
        await OutboxJob.filter(id=job_id, status="failed").update(
            status="pending", attempts=0, run_after=now(), updated_at=now()
        )
    )


# --- CRM sync (connectors/salesforce.py) ----------------------------------------------------------


async def set_crm_fields(conversation_id: int, **values: Any) -> None:
    """Update the conversation's crm_* columns only (never races with ingest's own fields)."""
    await Conversation.filter(id=conversation_id).update(**values)


async def crm_last_message_id(conversation_id: int) -> int:
    row = await Message.filter(conversation_id=conversation_id).order_by("-id").only("id").first()
    return row.id if row else 0


async def crm_unsynced_messages(conversation_id: int, *, after_id: int) -> list[Message]:
    """Messages after the Case's transcript that have no CaseComment yet, oldest first."""
    return await Message.filter(conversation_id=conversation_id, id__gt=after_id, crm_comment_id__isnull=True).order_by(
        "id"
    )


async def crm_comment_done(message_id: int, comment_id: str, conversation_id: int) -> None:
    """Record the CaseComment of a message and clear the conversation's pending marker, together."""
    async with in_transaction("default"):
        await Message.filter(id=message_id).update(crm_comment_id=comment_id)
        await Conversation.filter(id=conversation_id).update(crm_pending_message_id=None)


async def set_message_crm_comment(message_id: int, comment_id: str) -> None:
    """Raises IntegrityError when another message already holds this CaseComment id."""
    await Message.filter(id=message_id).update(crm_comment_id=comment_id)


async def known_crm_comments(comment_ids: Sequence[str]) -> set[str]:
    if not comment_ids:
        return set()
    rows = await Message.filter(crm_comment_id__in=list(comment_ids)).values_list("crm_comment_id", flat=True)
    return {str(r) for r in rows}


async def crm_linked_conversations(target: str) -> list[Conversation]:
    """Conversations linked to a CRM record (newest last)."""
    return await Conversation.filter(crm_target=target, crm_case_id__isnull=False).order_by("id")
