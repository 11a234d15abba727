"""The queue's columns for what was stored before them: contacts' case-folded names (the `contact=`
filter), the delivery of earlier replies, and since when each open conversation waits."""

from tortoise import migrations
from tortoise.migrations import operations as ops

BATCH = 5000


async def backfill(apps, schema_editor) -> None:
    from bot.store.queue import WAITING_SQL

    conn = schema_editor.client
    sqlite = conn.capabilities.dialect == "sqlite"

    def p(n: int) -> str:
        return "?" if sqlite else f"${n}"

    # names: casefold is Python's (any script); the databases' lower() differ beyond ASCII
    last = 0
    while True:
        rows = await conn.execute_query_dict(
            f"SELECT id, name FROM contacts WHERE id > {p(1)} AND name IS NOT NULL ORDER BY id LIMIT {p(2)}",
            [last, BATCH],
        )
        if not rows:
            break
        await conn.execute_many(
            f"UPDATE contacts SET name_key = {p(1)} WHERE id = {p(2)}",
            [[r["name"].casefold()[:255], r["id"]] for r in rows],
        )
        last = rows[-1]["id"]

    # replies: delivered when the platform gave them an id; failed when their job failed for good;
    # waiting while their job waits; else the channel only stored them
    job_message = "json_extract(j.payload, '$.message_id')" if sqlite else "(j.payload->>'message_id')::bigint"
    await conn.execute_script(
        "UPDATE messages SET delivery = CASE"
        " WHEN external_id IS NOT NULL THEN 'sent'"
        f" WHEN EXISTS (SELECT 1 FROM outbox_jobs j WHERE j.kind = 'reply' AND j.status = 'failed'"
        f" AND {job_message} = messages.id) THEN 'failed'"
        f" WHEN EXISTS (SELECT 1 FROM outbox_jobs j WHERE j.kind = 'reply' AND j.status IN ('pending', 'running')"
        f" AND {job_message} = messages.id) THEN 'pending'"
        " ELSE 'stored' END"
        " WHERE direction = 'outbound' AND delivery IS NULL"
    )

    # waiting: the same rule the store keeps from now on (bot/store/queue.py)
    last = 0
    while True:
        rows = await conn.execute_query_dict(
            f"SELECT id FROM conversations WHERE id > {p(1)} AND status = 'open' ORDER BY id LIMIT {p(2)}",
            [last, BATCH],
        )
        if not rows:
            break
        await conn.execute_script(WAITING_SQL.format(ids=", ".join(str(int(r["id"])) for r in rows)))
        last = rows[-1]["id"]


class Migration(migrations.Migration):
    dependencies = [("inbox", "0004_search")]

    initial = False

    operations = [ops.RunPython(backfill)]
