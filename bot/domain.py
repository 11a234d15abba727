"""Plain, frozen data shared by connectors, the engine and the inbox. No IO here."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class ConversationType(StrEnum):
    """How many people a conversation involves, as the platform tells it."""

    DIRECT = "direct"
    GROUP = "group"
    PUBLIC = "public"


class MatchMode(StrEnum):
    """`any`: one keyword is enough; `all`: every keyword across the conversation."""

    ANY = "any"
    ALL = "all"


class ActionType(StrEnum):
    """What an automation can do when it fires."""

    TAG = "tag"
    TOPIC = "topic"
    RESOLVE = "resolve"
    CRM = "crm"


class Status(StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"


class Direction(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class Delivery(StrEnum):
    """Where an outbound message stands: `stored` (its channel sends no replies), `pending`
    (waiting in the outbox), `sent`, or `failed` (for good)."""

    STORED = "stored"
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Action:
    """One action of an automation.

    `value` is the tag name (tag), the topic name (topic), the resolution reason or None
    (resolve), or the CRM target (crm).
    """

    type: ActionType
    value: str | None = None

    def to_json(self) -> dict[str, str | None]:
        return {"type": self.type.value, VALUE_KEY[self.type]: self.value}

    @classmethod
    def from_json(cls, item: Mapping[str, Any]) -> Action:
        """From the API/stored form `{"type": "tag", "tag": "closing"}`; raises ValueError/KeyError."""
        t = ActionType(item["type"])
        return cls(t, item.get(VALUE_KEY[t]))


# The JSON key that holds each action type's value (the automation JSON of the API).
VALUE_KEY: dict[ActionType, str] = {
    ActionType.TAG: "tag",
    ActionType.TOPIC: "topic",
    ActionType.RESOLVE: "reason",
    ActionType.CRM: "target",
}


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """A contact's message, normalized by a connector; the core never sees platform dicts."""

    channel: str
    platform_message_id: str
    thread_key: str
    contact_id: str
    text: str
    type: ConversationType = ConversationType.DIRECT
    contact_name: str | None = None
    sent_at: datetime | None = None
    # Where to send replies on the platform (Slack channel + thread_ts, Telegram chat id + topic).
    reply_to: dict[str, str | int | None] = field(default_factory=dict)


# --- stored records: what the store returns and takes back (never ORM rows) -----------------------
# Field names match the store's columns, so a record reads like the row it came from.


@dataclass(frozen=True, slots=True)
class Contact:
    """The outside person writing in, per channel."""

    id: int
    channel: str
    platform_id: str
    name: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Conversation:
    """Messages between one contact (or one thread) and the team on one channel."""

    id: int
    channel: str
    thread_key: str
    type: ConversationType
    status: Status
    contact_id: int
    previous_id: int | None
    resolution_reason: str | None
    resolved_by: str | None
    resolved_at: datetime | None
    keyword_progress: tuple[str, ...]
    reply_to: Mapping[str, Any]
    crm_target: str | None
    crm_case_id: str | None
    crm_case_number: str | None
    crm_status: str | None
    crm_transcript_upto: int | None
    crm_pending_message_id: int | None
    crm_closed: bool | None
    created_at: datetime
    updated_at: datetime
    # the queue: priority rank (0 urgent … 3 low, from the topics), the team routed to, who holds
    # it, since when the contact waits for an answer (None: resolved, or our message came last)
    priority: int = 2
    team_id: int | None = None
    assignee_id: int | None = None
    waiting_since: datetime | None = None

    @property
    def queue_key(self) -> QueueKey:
        """Where the conversation stands in the queue (`sort=queue`)."""
        return QueueKey(self.priority, self.waiting_since, self.id)


@dataclass(frozen=True, slots=True)
class QueueKey:
    """The queue's order: priority rank (urgent first), then waiting since (longest first; not
    waiting last), then id. A page of the queue resumes after the key of its last conversation."""

    priority: int
    waiting_since: datetime | None
    id: int


@dataclass(frozen=True, slots=True)
class ConversationFilter:
    """Which conversations a list shows; every field set narrows it (None: any)."""

    status: Status | None = None
    channel: str | None = None
    topic: str | None = None
    tag: str | None = None
    words: tuple[str, ...] | None = None  # search terms (`bot.engine.search.terms`), all in one conversation
    team_id: int | None = None
    assignee_id: int | None = None
    unassigned: bool = False
    priority: int | None = None  # a rank
    contact: str | None = None  # the contact's platform id exactly, or part of its name (any case)


@dataclass(frozen=True, slots=True)
class Message:
    """One inbound (from the contact) or outbound (from the team) message."""

    id: int
    conversation_id: int
    channel: str
    platform_id: str | None
    external_id: str | None
    direction: Direction
    text: str
    author: str | None
    sent_at: datetime | None
    crm_comment_id: str | None
    created_at: datetime
    # outbound only: stored (the channel sends nothing) | pending | sent | failed
    delivery: str | None = None


@dataclass(frozen=True, slots=True)
class Label:
    """An admin-managed name: a tag, a topic or a resolution reason (`kind`)."""

    id: int
    kind: str
    name: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Topic:
    """A topic with what it says about the queue: its priority and the team it routes to."""

    id: int
    name: str
    priority: Priority
    team: str | None
    created_at: datetime

    @property
    def routing(self) -> TopicRouting:
        return TopicRouting(self.priority, self.team)


@dataclass(frozen=True, slots=True)
class Automation:
    """An admin's rule as stored: keywords, match mode, actions, scope and the enabled flag."""

    id: int
    name: str
    keywords: tuple[str, ...]
    match: MatchMode
    actions: tuple[Action, ...]
    channels: tuple[str, ...]
    types: tuple[ConversationType, ...]
    enabled: bool
    created_by: str | None
    created_at: datetime
    updated_at: datetime
    revision: int = 1  # the number of its latest revision


class RevisionChange(StrEnum):
    """What a revision of an automation records."""

    CREATED = "created"
    UPDATED = "updated"
    ENABLED = "enabled"
    DISABLED = "disabled"
    DELETED = "deleted"
    ROLLED_BACK = "rolled_back"


@dataclass(frozen=True, slots=True)
class AutomationRevision:
    """One change to an automation, by whom, and the automation (its JSON form) after it."""

    automation_id: int
    revision: int
    change: RevisionChange
    by: str
    at: datetime
    automation: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One line of the audit log: who (`actor`) did what (`kind`) to what (`target`)."""

    id: int
    at: datetime
    actor: str
    kind: str
    target: str
    summary: str


@dataclass(frozen=True, slots=True)
class AutomationRun:
    """One automation fired on one message, and what it did. Survives the automation's deletion."""

    id: int
    automation_id: int
    automation_name: str
    conversation_id: int
    message_id: int
    keywords: tuple[str, ...]
    actions: tuple[Action, ...]
    created_at: datetime
    revision: int | None = None  # the automation's revision that fired (None: stored before revisions)


@dataclass(frozen=True, slots=True)
class OutboxJob:
    """Durable external work (channel replies, CRM sync). `locked_until` is the claim token."""

    id: int
    kind: str
    payload: Mapping[str, Any]
    conversation_id: int | None
    ordering_key: str | None
    status: str
    attempts: int
    run_after: datetime
    locked_until: datetime | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class ConversationEvent:
    """Who changed a conversation, and when (`action`: resolve, reopen, assign, topics_changed;
    `reason`: the resolution reason, the assignee as `user:<id>`, what changed in the topics)."""

    id: int
    conversation_id: int
    action: str
    actor: str
    reason: str | None
    created_at: datetime


# --- one ingest round: what the store took in, what the engine plans, what the store applies -----


@dataclass(frozen=True, slots=True)
class OpenConversation:
    """What ingest needs of a thread's open conversation to plan a message's effects — and all the
    store reads of it per message (a full `Conversation` costs twice as much to load)."""

    id: int
    type: ConversationType
    keyword_progress: tuple[str, ...]
    reply_to: Mapping[str, Any]
    crm_target: str | None


@dataclass(frozen=True, slots=True)
class Received:
    """An inbound message as the store took it in, inside the round's transaction.

    `conversation` is the open conversation it was stored in (locked until the commit), or None
    when the message was stored before (a platform retry): a duplicate changes nothing.
    """

    message: InboundMessage
    conversation_id: int
    message_id: int
    conversation: OpenConversation | None
    first: bool = False  # the message opened its conversation

    @property
    def duplicate(self) -> bool:
        return self.conversation is None


@dataclass(frozen=True, slots=True)
class NewJob:
    """Outbox work to enqueue in the same transaction as the change that needs it.

    `unless_pending`: the job does everything not done yet, so one waiting job of this kind for
    the conversation is enough (a running one may have read too early: it does not count).
    """

    kind: str
    payload: Mapping[str, Any]
    conversation_id: int | None = None
    ordering_key: str | None = None
    unless_pending: bool = False


@dataclass(frozen=True, slots=True)
class PlannedRun:
    """An automation that fired on a message, as its run will be recorded."""

    automation_id: int
    automation_name: str
    keywords: tuple[str, ...]
    actions: tuple[Action, ...]
    revision: int | None = None  # the automation's revision that fired


@dataclass(frozen=True, slots=True)
class Resolution:
    """Resolve the conversation: by whom (`automation:<id>`, `agent:<name>`) and why."""

    actor: str
    reason: str | None


@dataclass(frozen=True, slots=True)
class Effects:
    """What one inbound message changes: planned by the engine (pure), applied by the store.

    A field left at None (or empty) changes nothing.
    """

    conversation_id: int
    message_id: int
    tags: tuple[str, ...] = ()  # on the message
    topics: tuple[str, ...] = ()  # on the conversation
    runs: tuple[PlannedRun, ...] = ()
    resolve: Resolution | None = None
    keyword_progress: tuple[str, ...] | None = None  # the conversation's new progress
    reply_to: Mapping[str, Any] | None = None  # where replies go from now on
    crm_target: str | None = None  # link the conversation to this CRM
    jobs: tuple[NewJob, ...] = ()
    search_document: str = ""  # the message as the full-text index holds it

    @property
    def changes_conversation(self) -> bool:
        return (
            self.resolve is not None
            or self.keyword_progress is not None
            or self.reply_to is not None
            or self.crm_target is not None
        )


# --- people -----------------------------------------------------------------------------------------


class Role(StrEnum):
    """`admin`: everything; `agent`: conversations, not settings."""

    ADMIN = "admin"
    AGENT = "agent"


@dataclass(frozen=True, slots=True)
class Team:
    """A group of agents that topics route conversations to."""

    id: int
    name: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class User:
    """A person who signs in to the web inbox. The password hash never leaves the store."""

    id: int
    email: str
    name: str
    role: Role
    teams: tuple[str, ...]
    active: bool
    language: str | None
    session_epoch: int
    created_at: datetime

    @property
    def actor(self) -> str:
        """How the product records what this user did (`resolved_by`, author, events, audit)."""
        return f"user:{self.id}"


class Priority(StrEnum):
    """A topic's priority; a conversation takes the highest among its topics."""

    URGENT = "urgent"
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"

    @property
    def rank(self) -> int:
        """0 for urgent … 3 for low: the queue's sort key."""
        return PRIORITY_ORDER.index(self)


PRIORITY_ORDER: tuple[Priority, ...] = (Priority.URGENT, Priority.HIGH, Priority.NORMAL, Priority.LOW)


@dataclass(frozen=True, slots=True)
class TopicRouting:
    """What a topic on a conversation says about the queue: its priority and the team it names."""

    priority: Priority
    team: str | None


@dataclass(frozen=True, slots=True)
class QueueFigure:
    """Open conversations of one priority and team, and since when the longest waiting one waits."""

    priority: Priority
    team: str | None
    open: int
    oldest_wait: datetime | None
