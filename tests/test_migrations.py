"""Upgrading a store that already holds conversations: every migration applies over real data."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from tortoise import Tortoise
from tortoise.migrations.api import migrate

from bot.store import db
from tests import conftest

SEED = [
    "INSERT INTO contacts (channel, platform_id, created_at) VALUES ('shop', 'c1', CURRENT_TIMESTAMP)",
    "INSERT INTO conversations (channel, thread_key, type, status, contact_id, keyword_progress, reply_to,"
    " created_at, updated_at) VALUES ('shop', 't', 'direct', 'open', 1, '[]', '{}', CURRENT_TIMESTAMP,"
    " CURRENT_TIMESTAMP)",
    "INSERT INTO messages (conversation_id, channel, platform_id, direction, text, created_at)"
    " VALUES (1, 'shop', 'm1', 'inbound', 'Demande de Remboursement', CURRENT_TIMESTAMP)",
]


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_upgrade_from_the_first_release_keeps_and_indexes_stored_messages(kind: str, tmp_path: Path) -> None:
    if kind == "postgres":
        server, why_not = await asyncio.to_thread(conftest.pg_url)
        if server is None:
            pytest.skip(why_not)
        name = f"inbox_upgrade_{uuid.uuid4().hex[:10]}"
        await conftest._pg_execute(f'CREATE DATABASE "{name}"')
        url = conftest._pg_url(name)
    else:
        url = f"sqlite://{tmp_path}/old.sqlite3"
    try:
        await migrate(config=db.tortoise_config(url), target="inbox.0002_crm")
        conn = Tortoise.get_connection("default")
        for sql in SEED:
            await conn.execute_script(sql)
        await Tortoise.close_connections()

        await db.migrate(url)
        async with db.open_store(url):
            conn = Tortoise.get_connection("default")
            [row] = await conn.execute_query_dict("SELECT priority, waiting_since, assignee_id FROM conversations")
            assert row == {"priority": 2, "waiting_since": None, "assignee_id": None}
            from bot.engine.search import terms
            from bot.store.models import Conversation
            from bot.store.search import matching_conversations

            dialect = conn.capabilities.dialect
            found = await Conversation.filter(
                id__in=matching_conversations(terms("remboursement"), dialect=dialect)
            ).values_list("id", flat=True)
            assert list(found) == [1]
    finally:
        if kind == "postgres":
            await conftest._pg_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
