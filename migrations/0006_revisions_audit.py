"""Automation revisions and the audit log. Every automation already stored gets its revision 1
("created", by whoever created it) holding its current state; runs stored before keep a NULL
revision (which state fired them is not known)."""

from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from datetime import UTC, datetime
from json import dumps, loads
from tortoise import fields
from tortoise.indexes import Index

BATCH = 1000


def _iso(value: datetime | str | None) -> str | None:
    """A timestamp as the API writes it (`…Z`); SQLite hands back text, PostgreSQL datetimes."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _json(value):
    return loads(value) if isinstance(value, str | bytes) else value


async def first_revisions(apps, schema_editor) -> None:
    conn = schema_editor.client
    sqlite = conn.capabilities.dialect == "sqlite"

    def p(n: int) -> str:
        return "?" if sqlite else f"${n}"

    columns = "id, name, keywords, match, actions, channels, types, enabled, created_by, created_at, updated_at"
    last = 0
    while True:
        rows = await conn.execute_query_dict(
            f"SELECT {columns} FROM automations WHERE id > {p(1)} ORDER BY id LIMIT {p(2)}", [last, BATCH]
        )
        if not rows:
            return
        values = []
        for r in rows:
            automation = {
                "id": r["id"],
                "name": r["name"],
                "keywords": _json(r["keywords"]),
                "match": r["match"],
                "actions": _json(r["actions"]),
                "channels": _json(r["channels"]) or [],
                "types": _json(r["types"]) or [],
                "enabled": bool(r["enabled"]),
                "created_at": _iso(r["created_at"]),
                "updated_at": _iso(r["updated_at"]),
            }
            at = r["created_at"]
            values.append([r["id"], "created", r["created_by"] or "api", dumps(automation), at])
        cast = "" if sqlite else "::jsonb"
        await conn.execute_many(
            "INSERT INTO automation_revisions (automation_id, revision, change, actor, automation, created_at)"
            f" VALUES ({p(1)}, 1, {p(2)}, {p(3)}, {p(4)}{cast}, {p(5)})",
            values,
        )
        last = rows[-1]["id"]


class Migration(migrations.Migration):
    dependencies = [('inbox', '0005_queue_backfill')]

    initial = False

    operations = [
        ops.CreateModel(
            name='AuditEntry',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('actor', fields.CharField(max_length=100)),
                ('kind', fields.CharField(max_length=32)),
                ('target', fields.CharField(max_length=200)),
                ('summary', fields.CharField(max_length=500)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'audit_log', 'app': 'inbox', 'indexes': [Index(fields=['actor', 'id']), Index(fields=['kind', 'id'])], 'pk_attr': 'id', 'table_description': "Who changed what: admin changes and actions of people on conversations. Append-only."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='AutomationRevision',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('automation_id', fields.IntField()),
                ('revision', fields.IntField()),
                ('change', fields.CharField(max_length=16)),
                ('actor', fields.CharField(max_length=100)),
                ('automation', fields.JSONField(encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'automation_revisions', 'app': 'inbox', 'unique_together': (('automation_id', 'revision'),), 'pk_attr': 'id', 'table_description': 'One change to an automation and the automation as it stood after it. Append-only, and kept'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='Automation',
            name='revision',
            field=fields.IntField(default=1, db_default=1),
        ),
        ops.AddField(
            model_name='AutomationRun',
            name='revision',
            field=fields.IntField(null=True),
        ),
        ops.RunPython(first_revisions),
    ]
