"""The full-text index of message text: SQLite FTS5 or PostgreSQL tsvector + GIN.

The index holds `bot.engine.search.document(text)` for every message (the matcher's normal form),
so both databases see the same words; a search asks the database's own index, never scans text.
The tables are created by migrations/0004_search.py.
"""

from __future__ import annotations

from collections.abc import Sequence

from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.expressions import RawSQL

from bot.store import steps
from bot.store.steps import Statement, Steps, is_sqlite, rows_of

# contentless (the text is in messages) and without column sizes (no ranking by relevance: a
# search lists conversations in queue order), so each message stored writes only its terms
SQLITE_TABLE = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS message_search USING fts5("
    "body, content='', columnsize=0, tokenize = \"unicode61 remove_diacritics 0 categories 'L* N* Co M*'\")"
)
POSTGRES_TABLE = (
    "CREATE TABLE IF NOT EXISTS message_search ("
    "message_id BIGINT PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE, "
    "conversation_id BIGINT NOT NULL, body TSVECTOR NOT NULL)",
    "CREATE INDEX IF NOT EXISTS message_search_body ON message_search USING GIN (body)",
)


def _conn() -> BaseDBAsyncClient:
    conn: BaseDBAsyncClient = connections.get("default")
    return conn


async def create_index(conn: BaseDBAsyncClient) -> None:
    """The index table for this database (a migration calls it)."""
    for sql in (SQLITE_TABLE,) if is_sqlite(conn) else POSTGRES_TABLE:
        await conn.execute_script(sql)


def index_statement(rows: Sequence[tuple[int, int, str]], *, sqlite: bool) -> Statement:
    """The statement indexing (message id, conversation id, document) rows (at least one)."""
    if sqlite:
        return (
            f"INSERT INTO message_search (rowid, body) VALUES {rows_of(2, len(rows))}",
            [v for mid, _, body in rows for v in (mid, body)],
        )
    values = ", ".join(["(?, ?, to_tsvector('simple', ?))"] * len(rows))
    return (
        f"INSERT INTO message_search (message_id, conversation_id, body) VALUES {values} ON CONFLICT DO NOTHING",
        [v for row in rows for v in row],
    )


async def index_stored(conn: BaseDBAsyncClient, *, batch: int = 5000) -> None:
    """Index every message already stored (a migration that (re)builds the index calls it)."""
    from bot.engine.search import document

    sqlite = is_sqlite(conn)
    sql = "SELECT id, conversation_id, text FROM messages WHERE id > ? ORDER BY id LIMIT ?"
    last = 0
    while True:
        rows = await conn.execute_query_dict(
            sql if sqlite else sql.replace("?", "$1", 1).replace("?", "$2"), [last, batch]
        )
        if not rows:
            return
        await index_messages([(r["id"], r["conversation_id"], document(r["text"])) for r in rows], conn=conn)
        last = rows[-1]["id"]


async def index_messages(rows: Sequence[tuple[int, int, str]], *, conn: BaseDBAsyncClient | None = None) -> None:
    """Index (message id, conversation id, document) rows, in the caller's transaction."""
    if not rows:
        return
    conn = conn or _conn()
    sqlite = is_sqlite(conn)

    def chunks() -> Steps[None]:  # within both databases' limit on parameters per statement
        for start in range(0, len(rows), 2000):
            yield index_statement(rows[start : start + 2000], sqlite=sqlite)

    await steps.run(chunks(), conn=conn)


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def matching_conversations(terms: Sequence[str], *, dialect: str) -> RawSQL:
    """A sub-query of the ids of conversations holding every term (each somewhere in their
    messages), for `Conversation.filter(id__in=…)`. Terms come from `bot.engine.search.terms`."""
    parts = []
    for term in terms:
        if dialect == "sqlite":
            phrase = '"' + term.replace('"', '""') + '"'
            parts.append(
                "SELECT m.conversation_id FROM message_search JOIN messages m ON m.id = message_search.rowid "
                f"WHERE message_search MATCH {_literal(phrase)}"
            )
        else:
            parts.append(
                f"SELECT conversation_id FROM message_search WHERE body @@ phraseto_tsquery('simple', {_literal(term)})"
            )
    return RawSQL("(" + (" INTERSECT ".join(parts) if parts else "SELECT NULL WHERE 1 = 0") + ")")
