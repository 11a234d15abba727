"""Put back, on SQLite, the conversation indexes an earlier migration lost.

On SQLite, adding a foreign-key column (0003) rebuilds the table, and the rebuild kept none of
the table's indexes: conversations lost (channel, thread_key) — each new conversation's look-up of
its thread's previous one scanned the whole table — (crm_case_id), the Salesforce sync's look-up,
and (status). PostgreSQL altered the table in place and kept them: nothing to do there."""

from tortoise import migrations
from tortoise.migrations import operations as ops

# the names 0001 gave them, as PostgreSQL still has them
INDEXES = {
    "idx_conversatio_channel_673ae8": ("channel", "thread_key"),
    "idx_conversatio_crm_cas_79a4c5": ("crm_case_id",),
    "idx_conversatio_status_1268af": ("status",),
}


async def restore(apps, schema_editor) -> None:
    conn = schema_editor.client
    if conn.capabilities.dialect != "sqlite":
        return
    for name, columns in INDEXES.items():
        quoted = ", ".join(f'"{c}"' for c in columns)
        await conn.execute_script(f'CREATE INDEX IF NOT EXISTS "{name}" ON "conversations" ({quoted})')


class Migration(migrations.Migration):
    dependencies = [("inbox", "0007_runs_by_conversation")]

    initial = False

    operations = [ops.RunPython(restore)]
