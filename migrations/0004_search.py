"""The full-text index of message text (bot/store/search.py), filled for the messages already stored."""

from tortoise import migrations
from tortoise.migrations import operations as ops


async def create_and_fill(apps, schema_editor) -> None:
    from bot.store.search import create_index, index_stored

    conn = schema_editor.client
    await create_index(conn)
    await index_stored(conn)


class Migration(migrations.Migration):
    dependencies = [("inbox", "0003_people")]

    initial = False

    operations = [ops.RunPython(create_and_fill)]
