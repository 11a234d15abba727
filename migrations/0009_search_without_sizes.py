"""The SQLite full-text index without its per-message column sizes (FTS5 `columnsize=0`).

Nothing ranks search results by relevance (a search lists conversations in queue order), and the
sizes cost a second insert into the index for every message stored. A contentless index cannot
be altered or copied: it is built again from the messages, as 0004 first built it.
PostgreSQL's index has no such sizes: nothing to do there."""

from tortoise import migrations
from tortoise.migrations import operations as ops


async def rebuild(apps, schema_editor) -> None:
    from bot.store.search import create_index, index_stored

    conn = schema_editor.client
    if conn.capabilities.dialect != "sqlite":
        return
    [row] = await conn.execute_query_dict("SELECT sql FROM sqlite_master WHERE name = 'message_search'")
    if "columnsize=0" in row["sql"]:
        return  # created by 0004 of this release already
    await conn.execute_script("DROP TABLE message_search")
    await create_index(conn)
    await index_stored(conn)


class Migration(migrations.Migration):
    dependencies = [("inbox", "0008_sqlite_lost_indexes")]

    initial = False

    operations = [ops.RunPython(rebuild)]
