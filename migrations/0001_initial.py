from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index


class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name="Automation",
            fields=[
                ("id", fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ("name", fields.CharField(max_length=100)),
                ("key", fields.CharField(unique=True, max_length=100)),
                ("keywords", fields.JSONField(encoder=functools.partial(dumps, separators=(",", ":")), decoder=loads)),
                ("match", fields.CharField(default="any", max_length=8)),
                ("actions", fields.JSONField(encoder=functools.partial(dumps, separators=(",", ":")), decoder=loads)),
                (
                    "channels",
                    fields.JSONField(
                        default=list, encoder=functools.partial(dumps, separators=(",", ":")), decoder=loads
                    ),
                ),
                (
                    "types",
                    fields.JSONField(
                        default=list, encoder=functools.partial(dumps, separators=(",", ":")), decoder=loads
                    ),
                ),
                ("enabled", fields.BooleanField(default=True)),
                ("created_by", fields.CharField(null=True, max_length=100)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ("updated_at", fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={"table": "automations", "app": "inbox", "pk_attr": "id"},
            bases=["Model"],
        ),
        ops.CreateModel(
            name="Contact",
            fields=[
                ("id", fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ("channel", fields.CharField(max_length=64)),
                ("platform_id", fields.CharField(max_length=255)),
                ("name", fields.CharField(null=True, max_length=255)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={
                "table": "contacts",
                "app": "inbox",
                "unique_together": (("channel", "platform_id"),),
                "pk_attr": "id",
                "table_description": "The outside person writing in, per channel.",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="Conversation",
            fields=[
                ("id", fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ("channel", fields.CharField(max_length=64)),
                ("thread_key", fields.CharField(max_length=255)),
                ("open_key", fields.CharField(null=True, unique=True, max_length=330)),
                ("type", fields.CharField(max_length=16)),
                ("status", fields.CharField(default="open", db_index=True, max_length=16)),
                (
                    "contact",
                    fields.ForeignKeyField(
                        "inbox.Contact",
                        source_field="contact_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="conversations",
                        on_delete=OnDelete.RESTRICT,
                    ),
                ),
                ("previous_id", fields.BigIntField(null=True)),
                ("resolution_reason", fields.CharField(null=True, max_length=100)),
                ("resolved_by", fields.CharField(null=True, max_length=100)),
                ("resolved_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                (
                    "keyword_progress",
                    fields.JSONField(
                        default=list, encoder=functools.partial(dumps, separators=(",", ":")), decoder=loads
                    ),
                ),
                (
                    "reply_to",
                    fields.JSONField(
                        default=dict, encoder=functools.partial(dumps, separators=(",", ":")), decoder=loads
                    ),
                ),
                ("crm_target", fields.CharField(null=True, max_length=32)),
                ("crm_case_id", fields.CharField(null=True, max_length=64)),
                ("crm_case_number", fields.CharField(null=True, max_length=64)),
                ("crm_status", fields.CharField(null=True, max_length=64)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ("updated_at", fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={
                "table": "conversations",
                "app": "inbox",
                "indexes": [Index(fields=["channel", "thread_key"])],
                "pk_attr": "id",
                "table_description": "Messages between one contact (or thread) and the team on one channel.",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="ConversationEvent",
            fields=[
                ("id", fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                (
                    "conversation",
                    fields.ForeignKeyField(
                        "inbox.Conversation",
                        source_field="conversation_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="events",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                ("action", fields.CharField(max_length=16)),
                ("actor", fields.CharField(max_length=100)),
                ("reason", fields.CharField(null=True, max_length=100)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={
                "table": "conversation_events",
                "app": "inbox",
                "pk_attr": "id",
                "table_description": "Who changed a conversation's status, and when (resolve, reopen).",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="ConversationTopic",
            fields=[
                ("id", fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                (
                    "conversation",
                    fields.ForeignKeyField(
                        "inbox.Conversation",
                        source_field="conversation_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="topics",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                ("name", fields.CharField(max_length=100)),
                ("key", fields.CharField(db_index=True, max_length=100)),
            ],
            options={
                "table": "conversation_topics",
                "app": "inbox",
                "unique_together": (("conversation", "key"),),
                "pk_attr": "id",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="KeyValue",
            fields=[
                ("key", fields.CharField(primary_key=True, unique=True, db_index=True, max_length=100)),
                ("value", fields.TextField(unique=False)),
                ("updated_at", fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={
                "table": "key_values",
                "app": "inbox",
                "pk_attr": "key",
                "table_description": "Small key/value state: the automations revision, poll cursors.",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="Label",
            fields=[
                ("id", fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ("kind", fields.CharField(max_length=8)),
                ("name", fields.CharField(max_length=100)),
                ("key", fields.CharField(max_length=100)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={
                "table": "labels",
                "app": "inbox",
                "unique_together": (("kind", "key"),),
                "pk_attr": "id",
                "table_description": "An admin-managed name: a tag, a topic or a resolution reason.",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="Message",
            fields=[
                ("id", fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                (
                    "conversation",
                    fields.ForeignKeyField(
                        "inbox.Conversation",
                        source_field="conversation_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="messages",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                ("channel", fields.CharField(max_length=64)),
                ("platform_id", fields.CharField(null=True, max_length=255)),
                ("external_id", fields.CharField(null=True, max_length=255)),
                ("direction", fields.CharField(max_length=8)),
                ("text", fields.TextField(unique=False)),
                ("author", fields.CharField(null=True, max_length=100)),
                ("sent_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={
                "table": "messages",
                "app": "inbox",
                "unique_together": (("channel", "platform_id"),),
                "pk_attr": "id",
                "table_description": "One inbound (from the contact) or outbound (from the team) message.",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="AutomationRun",
            fields=[
                ("id", fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ("automation_id", fields.IntField(db_index=True)),
                ("automation_name", fields.CharField(max_length=100)),
                (
                    "conversation",
                    fields.ForeignKeyField(
                        "inbox.Conversation",
                        source_field="conversation_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="runs",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                (
                    "message",
                    fields.ForeignKeyField(
                        "inbox.Message",
                        source_field="message_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="runs",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                ("keywords", fields.JSONField(encoder=functools.partial(dumps, separators=(",", ":")), decoder=loads)),
                ("actions", fields.JSONField(encoder=functools.partial(dumps, separators=(",", ":")), decoder=loads)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={
                "table": "automation_runs",
                "app": "inbox",
                "pk_attr": "id",
                "table_description": "One automation fired on one message. Survives the automation's deletion.",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="MessageTag",
            fields=[
                ("id", fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                (
                    "message",
                    fields.ForeignKeyField(
                        "inbox.Message",
                        source_field="message_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="tags",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                (
                    "conversation",
                    fields.ForeignKeyField(
                        "inbox.Conversation",
                        source_field="conversation_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="message_tags",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                ("name", fields.CharField(max_length=100)),
                ("key", fields.CharField(db_index=True, max_length=100)),
            ],
            options={
                "table": "message_tags",
                "app": "inbox",
                "unique_together": (("message", "key"),),
                "pk_attr": "id",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="OutboxJob",
            fields=[
                ("id", fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ("kind", fields.CharField(max_length=32)),
                ("payload", fields.JSONField(encoder=functools.partial(dumps, separators=(",", ":")), decoder=loads)),
                ("conversation_id", fields.BigIntField(null=True, db_index=True)),
                ("ordering_key", fields.CharField(null=True, db_index=True, max_length=100)),
                ("status", fields.CharField(default="pending", max_length=16)),
                ("attempts", fields.IntField(default=0)),
                ("run_after", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ("locked_until", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ("last_error", fields.TextField(null=True, unique=False)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ("updated_at", fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={
                "table": "outbox_jobs",
                "app": "inbox",
                "indexes": [Index(fields=["status", "run_after"])],
                "pk_attr": "id",
                "table_description": "Durable external work (channel replies, CRM sync): claimed, run, retried, failed.",
            },
            bases=["Model"],
        ),
    ]
