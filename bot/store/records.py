"""ORM row → domain record, for every table the store hands out. Nothing else sees a row."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from bot import domain
from bot.domain import Action, ConversationType, Direction, MatchMode, Status
from bot.store import models

# Enum members by stored value: a dict look-up is several times cheaper than calling the enum, and
# ingest converts a conversation row per message.
TYPES = {t.value: t for t in ConversationType}
STATUSES = {s.value: s for s in Status}
_DIRECTIONS = {d.value: d for d in Direction}


def contact(row: models.Contact) -> domain.Contact:
    return domain.Contact(
        id=row.id, channel=row.channel, platform_id=row.platform_id, name=row.name, created_at=row.created_at
    )


def conversation(row: models.Conversation) -> domain.Conversation:
    return domain.Conversation(
        id=row.id,
        channel=row.channel,
        thread_key=row.thread_key,
        type=TYPES[row.type],
        status=STATUSES[row.status],
        contact_id=row.contact_id,
        previous_id=row.previous_id,
        resolution_reason=row.resolution_reason,
        resolved_by=row.resolved_by,
        resolved_at=row.resolved_at,
        keyword_progress=tuple(row.keyword_progress or ()),
        reply_to=dict(row.reply_to or {}),
        crm_target=row.crm_target,
        crm_case_id=row.crm_case_id,
        crm_case_number=row.crm_case_number,
        crm_status=row.crm_status,
        crm_transcript_upto=row.crm_transcript_upto,
        crm_pending_message_id=row.crm_pending_message_id,
        crm_closed=row.crm_closed,
        created_at=row.created_at,
        updated_at=row.updated_at,
        priority=row.priority,
        team_id=row.team_id,
        assignee_id=row.assignee_id,
        waiting_since=row.waiting_since,
    )


OPEN_CONVERSATION_COLUMNS = ("id", "open_key", "type", "keyword_progress", "reply_to", "crm_target")


def open_conversation(row: models.Conversation) -> domain.OpenConversation:
    """From a row loaded with `.only(*OPEN_CONVERSATION_COLUMNS)`."""
    return domain.OpenConversation(
        id=row.id,
        type=TYPES[row.type],
        keyword_progress=tuple(row.keyword_progress or ()),
        reply_to=row.reply_to or {},
        crm_target=row.crm_target,
    )


def message(row: models.Message) -> domain.Message:
    return domain.Message(
        id=row.id,
        conversation_id=row.conversation_id,
        channel=row.channel,
        platform_id=row.platform_id,
        external_id=row.external_id,
        direction=_DIRECTIONS[row.direction],
        text=row.text,
        author=row.author,
        sent_at=row.sent_at,
        crm_comment_id=row.crm_comment_id,
        created_at=row.created_at,
        delivery=row.delivery,
    )


def label(row: models.Label) -> domain.Label:
    return domain.Label(id=row.id, kind=row.kind, name=row.name, created_at=row.created_at)


def topic(row: models.Label) -> domain.Topic:
    """From a topic's row loaded with `.select_related("team")`."""
    return domain.Topic(
        id=row.id,
        name=row.name,
        priority=domain.PRIORITY_ORDER[row.priority],
        team=row.team.name if row.team is not None else None,
        created_at=row.created_at,
    )


def actions(stored: Iterable[Mapping[str, Any]]) -> tuple[Action, ...]:
    return tuple(Action.from_json(item) for item in stored)


def automation(row: models.Automation) -> domain.Automation:
    return domain.Automation(
        id=row.id,
        name=row.name,
        keywords=tuple(row.keywords),
        match=MatchMode(row.match),
        actions=actions(row.actions),
        channels=tuple(row.channels or ()),
        types=tuple(ConversationType(t) for t in row.types or ()),
        enabled=row.enabled,
        created_by=row.created_by,
        created_at=row.created_at,
        updated_at=row.updated_at,
        revision=row.revision,
    )


def run(row: models.AutomationRun) -> domain.AutomationRun:
    return domain.AutomationRun(
        id=row.id,
        automation_id=row.automation_id,
        automation_name=row.automation_name,
        conversation_id=row.conversation_id,
        message_id=row.message_id,
        keywords=tuple(row.keywords),
        actions=actions(row.actions),
        created_at=row.created_at,
        revision=row.revision,
    )


def revision(row: models.AutomationRevision) -> domain.AutomationRevision:
    return domain.AutomationRevision(
        automation_id=row.automation_id,
        revision=row.revision,
        change=domain.RevisionChange(row.change),
        by=row.actor,
        at=row.created_at,
        automation=dict(row.automation),
    )


def audit_entry(row: models.AuditEntry) -> domain.AuditEntry:
    return domain.AuditEntry(
        id=row.id, at=row.created_at, actor=row.actor, kind=row.kind, target=row.target, summary=row.summary
    )


def event(row: models.ConversationEvent) -> domain.ConversationEvent:
    return domain.ConversationEvent(
        id=row.id,
        conversation_id=row.conversation_id,
        action=row.action,
        actor=row.actor,
        reason=row.reason,
        created_at=row.created_at,
    )


def job(row: models.OutboxJob) -> domain.OutboxJob:
    return domain.OutboxJob(
        id=row.id,
        kind=row.kind,
        payload=dict(row.payload),
        conversation_id=row.conversation_id,
        ordering_key=row.ordering_key,
        status=row.status,
        attempts=row.attempts,
        run_after=row.run_after,
        locked_until=row.locked_until,
        last_error=row.last_error,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
