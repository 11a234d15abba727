"""Upgrading a store that already holds conversations: every migration applies over real data."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

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


@pytest.fixture
async def old_store(kind: str, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database of the test's `kind` (a PostgreSQL one is dropped afterwards)."""
    if kind == "sqlite":
        yield f"sqlite://{tmp_path}/old.sqlite3"
        return
    server, why_not = await asyncio.to_thread(conftest.pg_url)
    if server is None:
        pytest.skip(why_not)
    name = f"inbox_upgrade_{uuid.uuid4().hex[:10]}"
    await conftest._pg_execute(f'CREATE DATABASE "{name}"')
    try:
        yield conftest._pg_url(name)
    finally:
        await conftest._pg_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def upgrade(url: str, *, seed: Sequence[str], since: str = "inbox.0002_crm") -> None:
    """A store as the release of migration `since` left it, holding `seed`, then migrated to now."""
    await migrate(config=db.tortoise_config(url), target=since)
    conn = Tortoise.get_connection("default")
    for sql in seed:
        await conn.execute_script(sql)
    await Tortoise.close_connections()
    await db.migrate(url)


@pytest.mark.parametrize("kind", conftest.STORES)
async def test_upgrade_from_the_first_release_keeps_and_indexes_stored_messages(old_store: str) -> None:
    url = old_store
    await upgrade(url, seed=SEED)
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


QUEUE_SEED = [
    "INSERT INTO contacts (channel, platform_id, name, created_at) VALUES ('shop', 'c1', 'Große Straße', "
    "CURRENT_TIMESTAMP)",
    *[
        "INSERT INTO conversations (channel, thread_key, type, status, contact_id, keyword_progress, reply_to,"
        f" created_at, updated_at) VALUES ('shop', 't{i}', 'direct', '{status}', 1, '[]', '{{}}', CURRENT_TIMESTAMP,"
        " CURRENT_TIMESTAMP)"
        for i, status in enumerate(["open", "open", "resolved"], start=1)
    ],
    # 1: waits since its first message; 2: answered, its reply delivered; 3: resolved
    *[
        "INSERT INTO messages (conversation_id, channel, platform_id, direction, text, sent_at, external_id,"
        f" created_at) VALUES ({cid}, 'shop', {pid}, '{direction}', 'x', '2026-11-24 10:0{minute}:00+00:00',"
        f" {external}, CURRENT_TIMESTAMP)"
        for cid, pid, direction, minute, external in [
            (1, "'m1'", "inbound", 1, "NULL"),
            (1, "'m2'", "inbound", 2, "NULL"),
            (2, "'m3'", "inbound", 3, "NULL"),
            (2, "NULL", "outbound", 4, "'ext-1'"),
            (2, "NULL", "outbound", 5, "NULL"),
            (3, "'m4'", "inbound", 6, "NULL"),
        ]
    ],
    "INSERT INTO outbox_jobs (kind, payload, status, attempts, run_after, created_at, updated_at) VALUES"
    " ('reply', '{\"message_id\": 5}', 'failed', 8, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
]


@pytest.mark.parametrize("kind", conftest.STORES)
async def test_upgrade_fills_the_queue_columns_of_what_was_stored_before(old_store: str) -> None:
    url = old_store
    await upgrade(url, seed=QUEUE_SEED)
    async with db.open_store(url):
        conn = Tortoise.get_connection("default")
        [contact] = await conn.execute_query_dict("SELECT name_key FROM contacts")
        assert contact["name_key"] == "große straße".casefold() == "grosse strasse"
        rows = await conn.execute_query_dict("SELECT direction, delivery FROM messages ORDER BY id")
        assert [r["delivery"] for r in rows] == [None, None, None, "sent", "failed", None]
        from bot.store.models import Conversation

        waits = dict(await Conversation.all().order_by("id").values_list("id", "waiting_since"))
        assert waits[1] is not None and (waits[1].hour, waits[1].minute) == (10, 1)
        assert waits[2] is None and waits[3] is None


REVISIONS_SEED = [
    *SEED,
    "INSERT INTO automations (name, key, keywords, match, actions, channels, types, enabled, created_by, created_at,"
    " updated_at) VALUES ('Au revoir', 'au revoir', '[\"au revoir\",\"bye\"]', 'any',"
    ' \'[{"type":"tag","tag":"closing"}]\', \'["shop"]\', \'[]\', false, \'slack:U1\','
    " '2026-11-20 09:00:00+00:00', '2026-11-21 10:00:00+00:00')",
    "INSERT INTO automations (name, key, keywords, match, actions, channels, types, enabled, created_at,"
    " updated_at) VALUES ('Merci', 'merci', '[\"merci\"]', 'all', '[{\"type\":\"resolve\",\"reason\":null}]',"
    " '[]', '[\"group\"]', true, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
    "INSERT INTO automation_runs (automation_id, automation_name, conversation_id, message_id, keywords, actions,"
    ' created_at) VALUES (1, \'Au revoir\', 1, 1, \'["bye"]\', \'[{"type":"tag","tag":"closing"}]\','
    " CURRENT_TIMESTAMP)",
]


@pytest.mark.parametrize("kind", conftest.STORES)
async def test_upgrade_gives_each_stored_automation_its_first_revision(old_store: str) -> None:
    url = old_store
    await upgrade(url, seed=REVISIONS_SEED, since="inbox.0005_queue_backfill")
    async with db.open_store(url):
        from bot.store import repo

        first = await repo.get_automation(1)
        assert first is not None and first.revision == 1
        [r] = await repo.list_revisions(1)
        assert (r.revision, r.change.value, r.by) == (1, "created", "slack:U1")
        assert r.automation == {
            "id": 1,
            "name": "Au revoir",
            "keywords": ["au revoir", "bye"],
            "match": "any",
            "actions": [{"type": "tag", "tag": "closing"}],
            "channels": ["shop"],
            "types": [],
            "enabled": False,
            "created_at": "2026-11-20T09:00:00Z",
            "updated_at": "2026-11-21T10:00:00Z",
        }
        assert (r.at.day, r.at.hour) == (20, 9)  # when it was created
        [other] = await repo.list_revisions(2)
        assert (other.by, other.automation["match"], other.automation["types"]) == ("api", "all", ["group"])
        # a run stored before revisions were kept does not claim one
        [run] = await repo.list_runs(automation_id=1)
        assert run.revision is None
        # the next change is revision 2
        saved = await repo.set_automation_enabled(1, True)
        assert saved is not None and saved.revision == 2


async def _index_columns(conn: Any) -> set[tuple[str, tuple[str, ...]]]:
    """(table, columns) of every index the database holds, unique constraints included."""
    if conn.capabilities.dialect == "sqlite":
        found = set()
        tables = await conn.execute_query_dict("SELECT name FROM sqlite_master WHERE type = 'table'")
        for t in tables:
            for ix in await conn.execute_query_dict(f'PRAGMA index_list("{t["name"]}")'):
                cols = await conn.execute_query_dict(f'PRAGMA index_info("{ix["name"]}")')
                found.add((t["name"], tuple(c["name"] for c in cols)))
        return found
    rows = await conn.execute_query_dict(
        "SELECT t.relname AS tbl, array_agg(a.attname ORDER BY k.n) AS cols FROM pg_index i"
        " JOIN pg_class t ON t.oid = i.indrelid JOIN pg_namespace s ON s.oid = t.relnamespace"
        " CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n)"
        " JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum"
        " WHERE s.nspname = 'public' GROUP BY i.indexrelid, t.relname"
    )
    return {(r["tbl"], tuple(r["cols"])) for r in rows}


@pytest.mark.parametrize("db_url", conftest.STORES, indirect=True)
async def test_every_index_the_models_declare_exists_after_migrating(db_url: str) -> None:
    """An index the models declare is in the migrated database — on SQLite too, where a migration
    that adds a foreign key rebuilds the table and once dropped the conversations' indexes (each
    new conversation then scanned them all for its thread's previous one)."""
    from tortoise import Tortoise

    from bot.store import models

    async with db.open_store(db_url):
        found = await _index_columns(Tortoise.get_connection("default"))
    wanted = set()
    for model in vars(models).values():
        if not (isinstance(model, type) and issubclass(model, models.Model) and model is not models.Model):
            continue
        meta = model._meta
        if meta.abstract:
            continue
        column = {name: f.source_field or name for name, f in meta.fields_map.items()}
        for cols in (*meta.indexes, *meta.unique_together):
            wanted.add((meta.db_table, tuple(column.get(c, f"{c}_id" if f"{c}_id" in column else c) for c in cols)))
        for name, f in meta.fields_map.items():
            if getattr(f, "index", False) and not f.pk:
                wanted.add((meta.db_table, (column[name],)))
    assert len(wanted) > 10
    assert wanted - found == set(), "declared by the models, missing from the database"


async def test_upgrade_rebuilds_the_sqlite_search_index_without_sizes_and_keeps_finding(tmp_path: Path) -> None:
    """A store whose SQLite full-text index still keeps column sizes (built before 0009) gets it
    built again from its messages: a search finds what it found before."""
    from tortoise import connections

    from bot.engine.search import document, terms
    from bot.store.search import matching_conversations

    url = f"sqlite://{tmp_path}/old.sqlite3"
    old = "CREATE VIRTUAL TABLE message_search USING fts5(body, content='', tokenize = \"unicode61\")"
    indexed = f"INSERT INTO message_search (rowid, body) VALUES (1, '{document('Demande de Remboursement')}')"
    await upgrade(url, seed=[*SEED, "DROP TABLE message_search", old, indexed], since="inbox.0008_sqlite_lost_indexes")
    async with db.open_store(url):
        conn = connections.get("default")
        [row] = await conn.execute_query_dict("SELECT sql FROM sqlite_master WHERE name = 'message_search'")
        assert "columnsize=0" in row["sql"]
        sub = matching_conversations(terms("remboursement"), dialect="sqlite")
        found = await conn.execute_query_dict(f"SELECT conversation_id FROM {sub.sql} AS found")
        assert [r["conversation_id"] for r in found] == [1]
