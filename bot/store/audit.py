"""The audit log: one row per change a person (or a token) made. Append-only: this module can add
and read entries, never change or remove one."""

from __future__ import annotations

from bot import domain
from bot.store import models, records
from bot.store.base import boundary


@boundary
async def record(*, actor: str, kind: str, target: str, summary: str) -> None:
    """Add one entry; call it inside the change's transaction so both commit or neither does."""
    await models.AuditEntry.create(actor=actor, kind=kind, target=target, summary=summary)


@boundary
async def entries(
    *, actor: str | None = None, kind: str | None = None, before_id: int | None = None, limit: int = 50
) -> list[domain.AuditEntry]:
    """Newest first, with every filter given; `before_id` is the page cursor."""
    qs = models.AuditEntry.all()
    if actor is not None:
        qs = qs.filter(actor=actor)
    if kind is not None:
        qs = qs.filter(kind=kind)
    if before_id is not None:
        qs = qs.filter(id__lt=before_id)
    return [records.audit_entry(r) for r in await qs.order_by("-id").limit(limit)]
