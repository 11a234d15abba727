"""The full-text index of message text (bot/store/search.py), filled for the messages already stored."""

from tortoise import migrations
from tortoise.migrations import operations as ops

BATCH = 5000


async def create_and_fill(apps, schema_editor) -> None:
    from bot.engine.search import document
    from bot.store.search import create_index, index_messages

    conn = schema_editor.client
    await create_index(conn)
    last = 0
    sqlite = conn.capabilities.dialect == "sqlite"
    while True:
        sql = (
            "SELECT id, conversation_id, text FROM messages WHERE id > ? ORDER BY id LIMIT ?"
            if sqlite
            else "SELECT id, conversation_id, text FROM messages WHERE id > $1 ORDER BY id LIMIT $2"
        )
        rows = await conn.execute_query_dict(sql, [last, BATCH])
        if not rows:
            return
        await index_messages([(r["id"], r["conversation_id"], document(r["text"])) for r in rows], conn=conn)
        last = rows[-1]["id"]


class Migration(migrations.Migration):
    dependencies = [("inbox", "0003_people")]

    initial = False

    operations = [ops.RunPython(create_and_fill)]
