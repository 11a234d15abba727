"""Labels: the tags, topics and resolution reasons an admin manages (`kind`: tag, topic, reason).
A topic also has a queue priority and may route its conversations to a team."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bot import domain
from bot.domain import Priority
from bot.store import models, records
from bot.store.base import boundary, select, stored_at

KINDS = ("tag", "topic", "reason")  # the only kinds stored (inlined into SQL: never anything else)


@boundary
async def list_labels(kind: str) -> list[domain.Label]:
    """Labels of one kind, in name order (case-insensitive). A plain SELECT: pages list them on
    every view."""
    if kind not in KINDS:
        return []
    rows = await select(f"SELECT id, name, created_at FROM labels WHERE kind = '{kind}' ORDER BY key")
    return [domain.Label(id=int(r[0]), kind=kind, name=r[1], created_at=stored_at(r[2])) for r in rows]


@boundary
async def find_label(kind: str, name: str) -> domain.Label | None:
    """The label of that name, compared case-insensitively, or None."""
    row = await models.Label.filter(kind=kind, key=name.casefold()).first()
    return records.label(row) if row else None


@boundary
async def find_labels(kind: str, names: Iterable[str]) -> dict[str, domain.Label]:
    """Labels by their case-folded name, for the names that exist."""
    keys = [n.casefold() for n in names]
    return {r.key: records.label(r) for r in await models.Label.filter(kind=kind, key__in=keys)}


@boundary
async def create_label(kind: str, name: str) -> domain.Label:
    """Raises StoreConflict when the name exists (case-insensitively)."""
    return records.label(await models.Label.create(kind=kind, name=name, key=name.casefold()))


@boundary
async def delete_label(label: domain.Label) -> None:
    await models.Label.filter(id=label.id).delete()


# --- topics: labels that also say where a conversation stands in the queue --------------------------


@boundary
async def list_topics() -> list[domain.Topic]:
    """Topics with their priority and team, in name order (case-insensitive)."""
    rows = await models.Label.filter(kind="topic").select_related("team").order_by("key")
    return [records.topic(r) for r in rows]


@boundary
async def find_topic(name: str) -> domain.Topic | None:
    """The topic of that name, compared case-insensitively, or None."""
    row = await models.Label.filter(kind="topic", key=name.casefold()).select_related("team").first()
    return records.topic(row) if row else None


@boundary
async def create_topic(name: str, *, priority: Priority, team_id: int | None) -> domain.Topic:
    """Raises StoreConflict when the name exists (case-insensitively)."""
    await models.Label.create(kind="topic", name=name, key=name.casefold(), priority=priority.rank, team_id=team_id)
    created = await find_topic(name)
    assert created is not None  # in the caller's transaction, or just committed
    return created


@boundary
async def update_topic(
    topic_id: int, *, priority: Priority | None = None, team_id: int | None = None, clear_team: bool = False
) -> domain.Topic | None:
    """Change what is given (`clear_team`: route to no team); None when the topic is gone."""
    columns: dict[str, Any] = {}
    if priority is not None:
        columns["priority"] = priority.rank
    if team_id is not None or clear_team:
        columns["team_id"] = team_id
    qs = models.Label.filter(id=topic_id, kind="topic")
    if columns:
        await qs.update(**columns)
    row = await qs.select_related("team").first()
    return records.topic(row) if row else None
