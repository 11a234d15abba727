"""Outbox jobs: enqueue (in the caller's transaction), claim with a lease, finish, retry, list."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from tortoise.expressions import Q, Subquery
from tortoise.fields.data import JSON_DUMPS
from tortoise.functions import Min

from bot import domain, outbox_kinds
from bot.domain import Delivery, NewJob
from bot.store import models, records, steps
from bot.store.base import boundary, now, transaction
from bot.store.steps import Steps, marks, rows_of


@boundary
async def enqueue(
    kind: str,
    payload: dict[str, Any],
    *,
    conversation_id: int | None = None,
    ordering_key: str | None = None,
    delay: float = 0.0,
) -> domain.OutboxJob:
    """One job, due after `delay` seconds."""
    row = await models.OutboxJob.create(
        kind=kind,
        payload=payload,
        conversation_id=conversation_id,
        ordering_key=ordering_key,
        status="pending",
        run_after=now() + timedelta(seconds=delay),
    )
    return records.job(row)


def enqueue_steps(jobs: Sequence[NewJob]) -> Steps[None]:
    """Enqueue several jobs in one statement (plus one look-up per kind that merges into a waiting
    job: see `NewJob.unless_pending`)."""
    waiting: dict[str, set[int]] = {}
    for kind in sorted({j.kind for j in jobs if j.unless_pending}):
        ids = [j.conversation_id for j in jobs if j.kind == kind and j.unless_pending and j.conversation_id is not None]
        if ids:
            found = yield (
                "SELECT conversation_id FROM outbox_jobs WHERE kind = ? AND status = 'pending' "
                f"AND conversation_id IN ({marks(len(ids))})",
                [kind, *ids],
            )
            waiting[kind] = {int(cid) for (cid,) in found}
    t = now()
    rows = [
        (j.kind, JSON_DUMPS(dict(j.payload)), j.conversation_id, j.ordering_key, "pending", 0, t, t, t)
        for j in jobs
        if not (j.unless_pending and j.conversation_id in waiting.get(j.kind, ()))
    ]
    if rows:
        yield (
            "INSERT INTO outbox_jobs (kind, payload, conversation_id, ordering_key, status, attempts, run_after, "
            f"created_at, updated_at) VALUES {rows_of(9, len(rows))}",
            [v for row in rows for v in row],
        )


async def enqueue_jobs(jobs: Sequence[NewJob]) -> None:
    """Enqueue several jobs in the caller's transaction (see `enqueue_steps`)."""
    if jobs:
        await steps.run(enqueue_steps(jobs))


@boundary
async def claim_jobs(*, limit: int, lease_seconds: float, skip_locked: bool) -> list[domain.OutboxJob]:
    """Take up to `limit` due jobs for this worker, each leased until `job.locked_until` (the
    worker's claim token: renew, finish and retry only succeed while it still matches).

    On PostgreSQL rows locked by another worker are skipped (FOR UPDATE SKIP LOCKED); a job whose
    lease ran out (a crashed worker) is due again. Jobs sharing an ordering key run one at a time,
    oldest first: only the oldest unfinished job of a key is a candidate, so jobs waiting behind a
    backed-off one never fill the claim window and starve other keys."""
    t = now()
    async with transaction():
        heads = (
            models.OutboxJob.filter(status__in=["pending", "running"], ordering_key__isnull=False)
            .group_by("ordering_key")
            .annotate(first=Min("id"))
            .values("first")
        )
        due = Q(status="pending", run_after__lte=t) | Q(status="running", locked_until__lt=t)
        qs = models.OutboxJob.filter(due).filter(Q(ordering_key__isnull=True) | Q(id__in=Subquery(heads)))
        qs = qs.order_by("id").limit(limit)
        rows = await (qs.select_for_update(skip_locked=True) if skip_locked else qs)
        if not rows:
            return []
        token = t + timedelta(seconds=lease_seconds)
        await models.OutboxJob.filter(id__in=[j.id for j in rows]).update(
            status="running", locked_until=token, updated_at=t
        )
        return [dataclasses.replace(records.job(j), status="running", locked_until=token, updated_at=t) for j in rows]


@boundary
async def renew_job(job: domain.OutboxJob, *, lease_seconds: float) -> domain.OutboxJob | None:
    """Extend this worker's lease on a running job: the job with its new claim token, or None when
    the lease was lost to another worker."""
    token = now() + timedelta(seconds=lease_seconds)
    renewed = await models.OutboxJob.filter(id=job.id, status="running", locked_until=job.locked_until).update(
        locked_until=token
    )
    return dataclasses.replace(job, locked_until=token) if renewed else None


@boundary
async def finish_job(job: domain.OutboxJob) -> bool:
    """Mark done, if this worker still holds the job's lease."""
    return bool(
        await models.OutboxJob.filter(id=job.id, status="running", locked_until=job.locked_until).update(
            status="done", locked_until=None, last_error=None, updated_at=now()
        )
    )


@boundary
async def retry_job(job: domain.OutboxJob, *, attempts: int, delay: float, error: str, failed: bool) -> bool:
    """Back off (or fail for good), if this worker still holds the job's lease. A reply that fails
    for good says so on its message (`delivery`), in the same transaction."""
    async with transaction():
        held = await models.OutboxJob.filter(id=job.id, status="running", locked_until=job.locked_until).update(
            status="failed" if failed else "pending",
            attempts=attempts,
            run_after=now() + timedelta(seconds=delay),
            locked_until=None,
            last_error=error[:2000],
            updated_at=now(),
        )
        if held and failed:
            await _reply_delivery(job, Delivery.FAILED)
    return bool(held)


async def _reply_delivery(job: domain.OutboxJob, delivery: Delivery) -> None:
    message_id = job.payload.get("message_id") if job.kind == outbox_kinds.REPLY else None
    if isinstance(message_id, int):
        await models.Message.filter(id=message_id, direction="outbound").update(delivery=delivery.value)


@boundary
async def list_jobs(
    *, status: str | None = None, conversation_id: int | None = None, before_id: int | None = None, limit: int = 50
) -> list[domain.OutboxJob]:
    """Newest first; `before_id` is the page cursor."""
    qs = models.OutboxJob.all()
    if status:
        qs = qs.filter(status=status)
    if conversation_id is not None:
        qs = qs.filter(conversation_id=conversation_id)
    if before_id is not None:
        qs = qs.filter(id__lt=before_id)
    return [records.job(j) for j in await qs.order_by("-id").limit(limit)]


@boundary
async def count_jobs(status: str) -> int:
    return await models.OutboxJob.filter(status=status).count()


@boundary
async def get_job(job_id: int) -> domain.OutboxJob | None:
    row = await models.OutboxJob.filter(id=job_id).first()
    return records.job(row) if row else None


@boundary
async def requeue_job(job_id: int) -> bool:
    """Give a failed job a fresh set of attempts (its reply is pending again); False when it is
    not failed."""
    async with transaction():
        requeued = await models.OutboxJob.filter(id=job_id, status="failed").update(
            status="pending", attempts=0, run_after=now(), updated_at=now()
        )
        row = await models.OutboxJob.filter(id=job_id).first() if requeued else None
        if row is not None:
            await _reply_delivery(records.job(row), Delivery.PENDING)
    return bool(requeued)
