"""Labels: the tags, topics and resolution reasons an admin manages (`kind`: tag, topic, reason)."""

from __future__ import annotations

from collections.abc import Iterable

from bot import domain
from bot.store import models, records
from bot.store.base import boundary


@boundary
async def list_labels(kind: str) -> list[domain.Label]:
    """Labels of one kind, in name order (case-insensitive)."""
    return [records.label(r) for r in await models.Label.filter(kind=kind).order_by("key")]


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
