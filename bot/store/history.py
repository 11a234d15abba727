"""Stored inbound messages read back for explaining and replaying automations ("why", preview,
lint): streamed in chunks by id (keyset), never loaded whole.

Plain SQL on the store's own connection: a preview reads up to millions of rows, and a tuple per
row is what keeps that fast and small.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

from tortoise import connections
from tortoise.exceptions import OperationalError
from tortoise.functions import Max

from bot.store import models
from bot.store.base import boundary, select, stored_at
from bot.store.steps import is_sqlite


class InboundRow(NamedTuple):
    """An inbound message with what the rules need of its conversation."""

    id: int
    conversation_id: int
    channel: str
    type: str  # the conversation's type
    text: str
    first: bool  # the conversation's first inbound message


def _conn() -> Any:
    return connections.get("default")


def _sqlite() -> bool:
    return is_sqlite()


def _param(i: int) -> str:
    return "?" if _sqlite() else f"${i}"


def _among(column: str, i: int) -> str:
    """`column` is one of a list of ids bound as one parameter (`_ints`)."""
    return f"{column} IN (SELECT value FROM json_each(?))" if _sqlite() else f"{column} = ANY(${i}::bigint[])"


def _ints(values: list[Any]) -> Any:
    """A list (of ints, or of lists of ints) as one parameter: JSON text for SQLite, an array for
    asyncpg."""
    return json.dumps(values) if _sqlite() else values


def _stamp(at: datetime) -> Any:
    """A time as the store holds it: the text Tortoise writes on SQLite, a datetime for asyncpg."""
    at = at.astimezone(UTC)
    return str(at) if _sqlite() else at


@boundary
async def inbound_since(since: datetime, *, after_id: int = 0, limit: int = 5000) -> list[Any]:
    """The next chunk of inbound messages sent at or after `since`, by id after `after_id`: rows
    (id, conversation_id, channel, text) as the driver gives them (indexable like tuples).

    Only the messages' own columns: what the rules need of a conversation is asked for the few
    messages that may fire (`conversation_facts`), not joined to every row."""
    p = _param
    sql = (
        "SELECT m.id, m.conversation_id, m.channel, m.text FROM messages m "
        f"WHERE m.direction = 'inbound' AND m.sent_at >= {p(1)} AND m.id > {p(2)} ORDER BY m.id LIMIT {p(3)}"
    )
    args = [_stamp(since), after_id, limit]
    if _sqlite():
        return await _tuples(sql, args)
    _, rows = await _conn().execute_query(sql, args)
    return list(rows)


async def _tuples(sql: str, args: list[Any]) -> list[tuple[Any, ...]]:
    """SQLite rows as plain tuples rather than the sqlite3.Row objects the store's connection
    makes: a preview reads millions of rows, and a Row costs a quarter more per row."""
    try:
        async with _conn().acquire_connection() as connection:
            cursor = await connection.execute(sql, args)
            cursor.row_factory = None
            try:
                return list(await cursor.fetchall())
            finally:
                await cursor.close()
    except sqlite3.OperationalError as exc:  # as the ORM's own queries raise it
        raise OperationalError(exc) from exc


@boundary
async def conversation_facts(conversation_ids: Iterable[int]) -> dict[int, tuple[str, int | None]]:
    """Per conversation id: its type and the id of its first inbound message (None without one).
    Conversations not stored are left out. One query, whatever the number of ids."""
    ids = sorted(set(conversation_ids))
    if not ids:
        return {}
    sql = (
        "SELECT c.id, c.type, (SELECT MIN(f.id) FROM messages f WHERE f.conversation_id = c.id "
        f"AND f.direction = 'inbound') FROM conversations c WHERE {_among('c.id', 1)}"
    )
    _, rows = await _conn().execute_query(sql, [_ints(ids)])
    return {int(r[0]): (str(r[1]), None if r[2] is None else int(r[2])) for r in rows}


@boundary
async def recent_first_messages(since: datetime, *, limit: int) -> list[InboundRow]:
    """The first inbound messages of the newest conversations opened at or after `since`, newest
    first, at most `limit` of them (a sample: one query, whatever the store's size)."""
    p = _param
    sql = (
        "SELECT m.id, m.conversation_id, m.channel, c.type, m.text FROM conversations c "
        "JOIN messages m ON m.id = (SELECT MIN(f.id) FROM messages f WHERE f.conversation_id = c.id "
        f"AND f.direction = 'inbound') WHERE c.created_at >= {p(1)} ORDER BY c.id DESC LIMIT {p(2)}"
    )
    _, rows = await _conn().execute_query(sql, [_stamp(since), limit])
    return [InboundRow(int(r[0]), int(r[1]), r[2], r[3], r[4], True) for r in rows]


@boundary
async def count_conversations_since(since: datetime) -> int:
    """How many conversations have an inbound message sent at or after `since`."""
    sql = f"SELECT COUNT(DISTINCT conversation_id) FROM messages WHERE direction = 'inbound' AND sent_at >= {_param(1)}"
    _, rows = await _conn().execute_query(sql, [_stamp(since)])
    return int(rows[0][0]) if rows else 0


@boundary
async def earlier_inbound(before: Mapping[int, int]) -> dict[int, list[tuple[str, bool]]]:
    """Per conversation id, its inbound messages with an id below the one given, as (text, first),
    oldest first. One query, whatever the number of conversations."""
    out: dict[int, list[tuple[str, bool]]] = {cid: [] for cid in before}
    if not before:
        return out
    cids, belows = list(before), list(before.values())
    if _sqlite():
        bounds, cid, below = "json_each(?) AS b", "json_extract(b.value, '$[0]')", "json_extract(b.value, '$[1]')"
        args: list[Any] = [_ints([[c, b] for c, b in zip(cids, belows, strict=True)])]
    else:
        bounds, cid, below = "unnest($1::bigint[], $2::bigint[]) AS b(cid, below)", "b.cid", "b.below"
        args = [cids, belows]
    sql = (
        f"SELECT m.conversation_id, m.id, m.text FROM {bounds} "
        f"JOIN messages m ON m.conversation_id = {cid} AND m.id < {below} AND m.direction = 'inbound'"
    )
    _, rows = await _conn().execute_query(sql, args)
    for cid, _mid, text in sorted(rows, key=lambda r: (r[0], r[1])):
        earlier = out[int(cid)]
        earlier.append((text, not earlier))
    return out


@boundary
async def inbound_messages(conversation_id: int) -> list[tuple[int, str, datetime]]:
    """The conversation's inbound messages, oldest first: (id, text, when it arrived)."""
    # one plain SELECT: the ORM's timestamp parsing cost more than the query for a long conversation
    rows = await select(
        "SELECT id, text, created_at FROM messages"
        f" WHERE conversation_id = {int(conversation_id)} AND direction = 'inbound' ORDER BY id"
    )
    return [(int(i), str(t), stored_at(at)) for i, t, at in rows]


@boundary
async def last_runs(automation_ids: Sequence[int]) -> dict[int, datetime]:
    """Each automation's latest run time (automations that never fired are left out)."""
    if not automation_ids:
        return {}
    rows = (
        await models.AutomationRun.filter(automation_id__in=list(automation_ids))
        .group_by("automation_id")
        .annotate(last=Max("created_at"))
        .values_list("automation_id", "last")
    )
    out: dict[int, datetime] = {}
    for aid, last in rows:
        if last is not None:
            moment = last if isinstance(last, datetime) else datetime.fromisoformat(str(last))
            out[int(aid)] = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return out
