"""The queue's derived columns: priority and team from topics, waiting_since from messages, and
assignment. Set-based: a handful of statements for any number of conversations, inside the
caller's transaction (ingest's included)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from itertools import groupby

from tortoise import connections
from tortoise.expressions import Q

from bot.domain import PRIORITY_ORDER, Priority, QueueFigure, TopicRouting
from bot.engine.queue import route
from bot.store import steps
from bot.store.base import boundary, inline_ids, select
from bot.store.models import Conversation, ConversationTopic
from bot.store.steps import Statement, Steps, marks

# waiting_since by its rule (also run by migrations/0005 over conversations stored before it)
WAITING_SQL = (
    "UPDATE conversations SET waiting_since = CASE WHEN status = 'open' THEN ("
    " SELECT m.sent_at FROM messages m WHERE m.conversation_id = conversations.id AND m.direction = 'inbound'"
    " AND m.id > COALESCE((SELECT MAX(o.id) FROM messages o WHERE o.conversation_id = conversations.id"
    " AND o.direction = 'outbound'), 0) ORDER BY m.id LIMIT 1) ELSE NULL END WHERE id IN ({ids})"
)


def waiting_statement(conversation_ids: Sequence[int], *, only_unset: bool = False) -> Statement:
    """The statement recomputing `waiting_since` (the oldest inbound message after our last reply;
    NULL when resolved or answered). `only_unset`: touch only conversations not waiting yet (a new
    inbound message never moves an earlier start of waiting)."""
    sql = WAITING_SQL.format(ids=inline_ids(sorted(set(conversation_ids))))
    return (sql + " AND waiting_since IS NULL" if only_unset else sql), ()


async def refresh_waiting(conversation_ids: Sequence[int], *, only_unset: bool = False) -> None:
    """Recompute `waiting_since` of these conversations (see `waiting_statement`)."""
    if conversation_ids:
        await steps.run(_one(waiting_statement(conversation_ids, only_unset=only_unset)))


def _one(statement: Statement) -> Steps[None]:
    yield statement


def reroute_steps(conversation_ids: Sequence[int]) -> Steps[None]:
    """Recompute priority and team of these conversations from their topics (applied order)."""
    ids = sorted(set(conversation_ids))
    if not ids:
        return
    links = yield (
        f"SELECT conversation_id, key FROM conversation_topics WHERE conversation_id IN ({marks(len(ids))}) "
        "ORDER BY conversation_id, id",
        ids,
    )
    keys = sorted({str(key) for _, key in links})
    labels: dict[str, tuple[int, int | None]] = {}
    if keys:
        found = yield (
            f"SELECT key, priority, team_id FROM labels WHERE kind = 'topic' AND key IN ({marks(len(keys))})",
            keys,
        )
        labels = {str(key): (int(rank), team_id) for key, rank, team_id in found}
    team_ids = sorted({t for _, t in labels.values() if t is not None})
    team_names: dict[int, str] = {}
    if team_ids:
        team_names = {
            int(i): str(n)
            for i, n in (yield (f"SELECT id, name FROM teams WHERE id IN ({marks(len(team_ids))})", team_ids))
        }
    by_name = {name: tid for tid, name in team_names.items()}
    routed: dict[int, tuple[int, int | None]] = {cid: (Priority.NORMAL.rank, None) for cid in ids}
    for cid, group in groupby(links, key=lambda link: int(link[0])):
        topics = [
            TopicRouting(PRIORITY_ORDER[labels[key][0]], team_names.get(labels[key][1]))  # type: ignore[arg-type]
            for _, key in group
            if key in labels
        ]
        priority, team = route(topics)
        routed[cid] = (priority.rank, by_name.get(team) if team else None)
    groups: dict[tuple[int, int | None], list[int]] = {}
    for cid, value in routed.items():
        groups.setdefault(value, []).append(cid)
    for (rank, team_id), members in groups.items():
        yield (
            f"UPDATE conversations SET priority = ?, team_id = ? WHERE id IN ({marks(len(members))})",
            [rank, team_id, *members],
        )


async def reroute(conversation_ids: Sequence[int]) -> None:
    """Recompute priority and team of these conversations from their topics (applied order)."""
    await steps.run(reroute_steps(conversation_ids))


@boundary
async def conversations_with_topic(topic: str, *, open_only: bool = True) -> list[int]:
    qs = ConversationTopic.filter(key=topic.casefold())
    if open_only:
        qs = qs.filter(conversation__status="open")
    return [int(i) for i in await qs.values_list("conversation_id", flat=True)]  # type: ignore[call-overload]


@boundary
async def assign(
    conversation_id: int, user_id: int | None, *, unless_held_by_other: int | None = None
) -> tuple[bool, int | None]:
    """Set the assignee. With `unless_held_by_other=U` the change happens only when nobody, or U,
    holds the conversation — checked and written in one statement, so of two agents taking it at
    once exactly one wins. Returns whether the change was made, and the assignee after the call
    (the holder when refused)."""
    qs = Conversation.filter(id=conversation_id)
    if unless_held_by_other is not None:
        qs = qs.filter(Q(assignee_id__isnull=True) | Q(assignee_id=unless_held_by_other))
    changed = await qs.update(assignee_id=user_id)
    row = await Conversation.filter(id=conversation_id).values_list("assignee_id", flat=True)
    return bool(changed), (row[0] if row else None)  # type: ignore[return-value]


@boundary
async def names(
    team_ids: Iterable[int | None], user_ids: Iterable[int | None]
) -> tuple[dict[int, str], dict[int, str]]:
    """(team name by id, user name by id) for a page of conversations: two queries at most."""
    teams = inline_ids(sorted({t for t in team_ids if t is not None}))
    users = inline_ids(sorted({u for u in user_ids if u is not None}))
    team_names = (
        {int(i): n for i, n in await select(f"SELECT id, name FROM teams WHERE id IN ({teams})")} if teams else {}
    )
    user_names = (
        {int(i): n for i, n in await select(f"SELECT id, name FROM users WHERE id IN ({users})")} if users else {}
    )
    return team_names, user_names


@boundary
async def queue_figures() -> list[QueueFigure]:
    """Per priority and team: the open conversations and the oldest `waiting_since`. One grouped
    query (for /metrics, at scrape time)."""
    rows = await connections.get("default").execute_query_dict(
        "SELECT c.priority AS priority, t.name AS team, COUNT(*) AS n, MIN(c.waiting_since) AS oldest "
        "FROM conversations c LEFT JOIN teams t ON t.id = c.team_id WHERE c.status = 'open' "
        "GROUP BY c.priority, t.name"
    )
    return [
        QueueFigure(
            priority=PRIORITY_ORDER[min(max(int(r["priority"]), 0), len(PRIORITY_ORDER) - 1)],
            team=r["team"],
            open=int(r["n"]),
            oldest_wait=_datetime(r["oldest"]),
        )
        for r in rows
    ]


def _datetime(value: object) -> datetime | None:
    """A timestamp as the driver returns it from an aggregate: a datetime (PostgreSQL) or the
    stored text (SQLite)."""
    if value is None:
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
