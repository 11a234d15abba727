"""Tortoise ORM models: the store's tables. Only `bot.store` imports this module.

A `<relation>_id: int` annotation names the column Tortoise adds beside a foreign key, so the store
reads it typed; it declares no field."""

from __future__ import annotations

from typing import Any

from tortoise import fields
from tortoise.models import Model


class Contact(Model):
    """The outside person writing in, per channel."""

    id = fields.BigIntField(primary_key=True)
    channel = fields.CharField(max_length=64)
    platform_id = fields.CharField(max_length=255)
    name = fields.CharField(max_length=255, null=True)
    # the name case-folded (Python's casefold: any script), so the queue's `contact=` filter finds
    # part of a name the same way on SQLite and PostgreSQL, whose lower() disagree beyond ASCII
    name_key = fields.CharField(max_length=255, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "contacts"
        unique_together = (("channel", "platform_id"),)


class Conversation(Model):
    """Messages between one contact (or thread) and the team on one channel."""

    id = fields.BigIntField(primary_key=True)
    channel = fields.CharField(max_length=64)
    thread_key = fields.CharField(max_length=255)
    # "<channel>\x1f<thread_key>" while open, NULL once resolved: the unique index makes
    # "at most one open conversation per (channel, thread key)" a database guarantee.
    open_key = fields.CharField(max_length=330, null=True, unique=True)
    type = fields.CharField(max_length=16)
    status = fields.CharField(max_length=16, default="open", db_index=True)
    contact: fields.ForeignKeyRelation[Contact] = fields.ForeignKeyField(
        "inbox.Contact", related_name="conversations", on_delete=fields.RESTRICT
    )
    contact_id: int  # the column behind `contact` (annotation only: Tortoise makes the attribute)
    previous_id = fields.BigIntField(null=True)
    resolution_reason = fields.CharField(max_length=100, null=True)
    resolved_by = fields.CharField(max_length=100, null=True)
    resolved_at = fields.DatetimeField(null=True)
    # Normalized keywords of `all` automations seen so far in this conversation's inbound messages.
    keyword_progress: list[str] = fields.JSONField(default=list)
    # Where replies go on the platform (Slack channel/thread_ts, Telegram chat/topic).
    reply_to: dict[str, Any] = fields.JSONField(default=dict)
    # Set when a `crm` action linked the conversation; the outbox keeps the Case in sync from then on.
    crm_target = fields.CharField(max_length=32, null=True)
    crm_case_id = fields.CharField(max_length=64, null=True, db_index=True)
    crm_case_number = fields.CharField(max_length=64, null=True)
    crm_status = fields.CharField(max_length=64, null=True)
    # Salesforce sync progress: the last message id written into the Case Description (set before the
    # Case is created, so a retry after a timeout knows a Case may exist); the message whose CaseComment
    # create was sent but not confirmed; whether the Case was closed when last seen.
    crm_transcript_upto = fields.BigIntField(null=True)
    crm_pending_message_id = fields.BigIntField(null=True)
    crm_closed = fields.BooleanField(null=True)
    # the queue: derived from the topics (priority 0 urgent … 3 low), who holds it, since when the
    # contact waits for an answer (NULL: resolved, or the last message is ours)
    priority = fields.SmallIntField(default=2, db_default=2)
    team: fields.ForeignKeyNullableRelation[Team] = fields.ForeignKeyField(
        "inbox.Team", related_name="conversations", null=True, on_delete=fields.SET_NULL
    )
    team_id: int | None
    assignee: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "inbox.User", related_name="assigned", null=True, on_delete=fields.SET_NULL
    )
    assignee_id: int | None
    waiting_since = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "conversations"
        indexes = (("channel", "thread_key"), ("status", "priority", "waiting_since", "id"))


class Message(Model):
    """One inbound (from the contact) or outbound (from the team) message."""

    id = fields.BigIntField(primary_key=True)
    conversation: fields.ForeignKeyRelation[Conversation] = fields.ForeignKeyField(
        "inbox.Conversation", related_name="messages", on_delete=fields.CASCADE
    )
    conversation_id: int
    channel = fields.CharField(max_length=64)
    # Inbound: the platform's message id (dedupe key). Outbound: NULL.
    platform_id = fields.CharField(max_length=255, null=True)
    # Outbound: the id the platform gave the sent message, once delivered.
    external_id = fields.CharField(max_length=255, null=True)
    direction = fields.CharField(max_length=8)
    text = fields.TextField()
    author = fields.CharField(max_length=100, null=True)
    sent_at = fields.DatetimeField(null=True)
    # The Salesforce CaseComment that mirrors this message (or that it came from, for an agent's
    # comment sent back through the channel). Unique: a comment is never sent or stored twice.
    crm_comment_id = fields.CharField(max_length=64, null=True, unique=True)
    # outbound only: stored (the channel sends nothing) | pending | sent | failed
    delivery = fields.CharField(max_length=8, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "messages"
        unique_together = (("channel", "platform_id"),)
        # a conversation's messages in order: its view, waiting_since, the CRM transcript
        indexes = (("conversation_id", "id"),)


class MessageTag(Model):
    id = fields.BigIntField(primary_key=True)
    message: fields.ForeignKeyRelation[Message] = fields.ForeignKeyField(
        "inbox.Message", related_name="tags", on_delete=fields.CASCADE
    )
    conversation: fields.ForeignKeyRelation[Conversation] = fields.ForeignKeyField(
        "inbox.Conversation", related_name="message_tags", on_delete=fields.CASCADE
    )
    conversation_id: int
    name = fields.CharField(max_length=100)
    key = fields.CharField(max_length=100, db_index=True)

    class Meta:
        table = "message_tags"
        unique_together = (("message", "key"),)
        indexes = (("conversation_id", "id"),)  # a page of conversations with their tags


class ConversationTopic(Model):
    id = fields.BigIntField(primary_key=True)
    conversation: fields.ForeignKeyRelation[Conversation] = fields.ForeignKeyField(
        "inbox.Conversation", related_name="topics", on_delete=fields.CASCADE
    )
    name = fields.CharField(max_length=100)
    key = fields.CharField(max_length=100, db_index=True)

    class Meta:
        table = "conversation_topics"
        unique_together = (("conversation", "key"),)


class ConversationEvent(Model):
    """Who changed a conversation's status, and when (resolve, reopen)."""

    id = fields.BigIntField(primary_key=True)
    conversation: fields.ForeignKeyRelation[Conversation] = fields.ForeignKeyField(
        "inbox.Conversation", related_name="events", on_delete=fields.CASCADE
    )
    conversation_id: int
    action = fields.CharField(max_length=16)
    actor = fields.CharField(max_length=100)
    reason = fields.CharField(max_length=100, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "conversation_events"
        indexes = (("conversation_id", "id"),)


class Label(Model):
    """An admin-managed name: a tag, a topic or a resolution reason."""

    id = fields.IntField(primary_key=True)
    kind = fields.CharField(max_length=8)  # tag | topic | reason
    name = fields.CharField(max_length=100)
    key = fields.CharField(max_length=100)
    # topics only: the queue priority (0 urgent … 3 low) and the team they route conversations to
    priority = fields.SmallIntField(default=2, db_default=2)
    team: fields.ForeignKeyNullableRelation[Team] = fields.ForeignKeyField(
        "inbox.Team", related_name="topics", null=True, on_delete=fields.RESTRICT
    )
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "labels"
        unique_together = (("kind", "key"),)


class Automation(Model):
    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=100)
    key = fields.CharField(max_length=100, unique=True)
    keywords: list[str] = fields.JSONField()
    match = fields.CharField(max_length=8, default="any")
    actions: list[dict[str, Any]] = fields.JSONField()
    channels: list[str] = fields.JSONField(default=list)
    types: list[str] = fields.JSONField(default=list)
    enabled = fields.BooleanField(default=True)
    created_by = fields.CharField(max_length=100, null=True)
    # the number of its latest revision (automation_revisions), which the compiled rules record on
    # each run
    revision = fields.IntField(default=1, db_default=1)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "automations"


class AutomationRevision(Model):
    """One change to an automation and the automation as it stood after it. Append-only, and kept
    after the automation is deleted (no foreign key)."""

    id = fields.BigIntField(primary_key=True)
    automation_id = fields.IntField()
    revision = fields.IntField()  # from 1, per automation
    change = fields.CharField(max_length=16)  # created | updated | enabled | disabled | deleted | rolled_back
    actor = fields.CharField(max_length=100)
    automation: dict[str, Any] = fields.JSONField()
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "automation_revisions"
        unique_together = (("automation_id", "revision"),)


class AuditEntry(Model):
    """Who changed what: admin changes and actions of people on conversations. Append-only."""

    id = fields.BigIntField(primary_key=True)
    actor = fields.CharField(max_length=100)
    kind = fields.CharField(max_length=32)
    target = fields.CharField(max_length=200)
    summary = fields.CharField(max_length=500)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "audit_log"
        indexes = (("actor", "id"), ("kind", "id"))


class AutomationRun(Model):
    """One automation fired on one message. Survives the automation's deletion."""

    id = fields.BigIntField(primary_key=True)
    automation_id = fields.IntField(db_index=True)
    automation_name = fields.CharField(max_length=100)
    conversation: fields.ForeignKeyRelation[Conversation] = fields.ForeignKeyField(
        "inbox.Conversation", related_name="runs", on_delete=fields.CASCADE
    )
    message: fields.ForeignKeyRelation[Message] = fields.ForeignKeyField(
        "inbox.Message", related_name="runs", on_delete=fields.CASCADE
    )
    conversation_id: int
    message_id: int
    keywords: list[str] = fields.JSONField()
    actions: list[dict[str, Any]] = fields.JSONField()
    # the automation's revision that fired; NULL for runs stored before revisions were kept
    revision = fields.IntField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "automation_runs"
        indexes = (("conversation_id", "id"),)  # a conversation's runs, in order (its page reads them)


class OutboxJob(Model):
    """Durable external work (channel replies, CRM sync): claimed, run, retried, failed."""

    id = fields.BigIntField(primary_key=True)
    kind = fields.CharField(max_length=32)
    payload: dict[str, Any] = fields.JSONField()
    conversation_id = fields.BigIntField(null=True, db_index=True)
    # Jobs with the same ordering key run one at a time, in id order (e.g. one CRM case per conversation).
    ordering_key = fields.CharField(max_length=100, null=True, db_index=True)
    status = fields.CharField(max_length=16, default="pending")  # pending|running|done|failed
    attempts = fields.IntField(default=0)
    run_after = fields.DatetimeField()
    locked_until = fields.DatetimeField(null=True)
    last_error = fields.TextField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "outbox_jobs"
        indexes = (("status", "run_after"),)


class KeyValue(Model):
    """Small key/value state: the automations revision, poll cursors."""

    key = fields.CharField(max_length=100, primary_key=True)
    value = fields.TextField()
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "key_values"


class Team(Model):
    """A group of agents that topics route conversations to. Names compare case-insensitively."""

    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=100)
    key = fields.CharField(max_length=100, unique=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "teams"


class User(Model):
    """A person who signs in to the web inbox: an admin or an agent."""

    id = fields.IntField(primary_key=True)
    email = fields.CharField(max_length=254)
    email_key = fields.CharField(max_length=254, unique=True)
    name = fields.CharField(max_length=100)
    role = fields.CharField(max_length=8)  # admin | agent
    active = fields.BooleanField(default=True)
    language = fields.CharField(max_length=8, null=True)
    password_hash = fields.CharField(max_length=255)
    # Bumped when the user's sessions must end (deactivation, new password): a session remembers
    # the epoch it was opened in.
    session_epoch = fields.IntField(default=0)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "users"


class UserTeam(Model):
    id = fields.IntField(primary_key=True)
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "inbox.User", related_name="team_links", on_delete=fields.CASCADE
    )
    team: fields.ForeignKeyRelation[Team] = fields.ForeignKeyField(
        "inbox.Team", related_name="user_links", on_delete=fields.CASCADE
    )

    class Meta:
        table = "user_teams"
        unique_together = (("user", "team"),)


class SignInLock(Model):
    """Failed sign-ins per email (not per IP, so it holds behind a proxy) and the lock they set."""

    email_key = fields.CharField(max_length=254, primary_key=True)
    failures = fields.IntField(default=0)
    window_start = fields.DatetimeField()
    locked_until = fields.DatetimeField(null=True)

    class Meta:
        table = "sign_in_locks"
