"""Stored inbound messages read back for explaining and replaying automations ("why", preview,
lint): streamed in chunks by id (keyset), never loaded whole.

Plain SQL on the store's own connection: a preview reads up to millions of rows, and a tuple per
row is what keeps that fast and small.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

from tortoise import connections
from tortoise.functions import Max

from bot.store import models
from bot.store.base import boundary, select, stored_at


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
    return bool(_conn().capabilities.dialect == "sqlite")


def _param(i: int) -> str:
    return "?" if _sqlite() else f"${i}"


def _stamp(at: datetime) -> Any:
    """A time as the store holds it: the text Tortoise writes on SQLite, a datetime for asyncpg."""
    at = at.astimezone(UTC)
    return str(at) if _sqlite() else at


# The conversation's first inbound message: the smallest id among its inbound messages (the
# (conversation_id, id) index answers it).
_FIRST = (
    "(m.id = (SELECT MIN(f.id) FROM messages f WHERE f.conversation_id = m.conversation_id "
    "AND f.direction = 'inbound'))"
)


@boundary
async def inbound_since(since: datetime, *, after_id: int = 0, limit: int = 5000) -> list[InboundRow]:
    """The next chunk of inbound messages sent at or after `since`, by id after `after_id`."""
    p = _param
    where = f"m.direction = 'inbound' AND m.sent_at >= {p(1)} AND m.id > {p(2)}"
    sql = (
        f"SELECT m.id, m.conversation_id, m.channel, c.type, m.text, {_FIRST} AS is_first "
        f"FROM messages m JOIN conversations c ON c.id = m.conversation_id "
        f"WHERE {where} ORDER BY m.id LIMIT {p(3)}"
    )
    _, rows = await _conn().execute_query(sql, [_stamp(since), after_id, limit])
    return [InboundRow(int(r[0]), int(r[1]), r[2], r[3], r[4], bool(r[5])) for r in rows]


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
    oldest first."""
    if not before:
        return {}
    rows = (
        await models.Message.filter(conversation_id__in=list(before), direction="inbound", id__lt=max(before.values()))
        .order_by("id")
        .values_list("conversation_id", "id", "text")
    )
    out: dict[int, list[tuple[str, bool]]] = {cid: [] for cid in before}
    for cid, mid, text in rows:
        if mid < before[cid]:
            out[cid].append((text, not out[cid]))
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
