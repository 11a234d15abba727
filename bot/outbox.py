"""Durable external work: claim due jobs, run them, retry with backoff and jitter, fail for good.

Jobs are rows written in the same transaction as the change that needs them, so an acknowledged
message's replies and CRM sync survive a crash. Several workers may run this loop against one
PostgreSQL: claims use FOR UPDATE SKIP LOCKED and a lease, so a job is taken by one worker at a time
and a crashed worker's job is taken again when its lease runs out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from bot.domain import OutboxJob
from bot.metrics import Metrics
from bot.store import repo

log = logging.getLogger("inbox.outbox")

Handler = Callable[[dict[str, Any]], Coroutine[Any, Any, None]]


class RetryLater(Exception):
    """Try the job again later; `retry_after` (seconds) when the remote said how long to wait."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentFailure(Exception):
    """The job can never succeed (bad request, unknown channel); fail it without retrying."""


class LeaseLost(Exception):
    """Another worker took the job over (this worker stalled past its lease)."""


@dataclass(slots=True)
class _Lease:
    """The job as this worker holds it: renewing the lease gives it a new claim token."""

    job: OutboxJob


class Outbox:
    """Claims due jobs and runs each through the handler registered for its kind."""

    def __init__(
        self,
        *,
        metrics: Metrics,
        skip_locked: bool,
        max_attempts: int = 8,
        base_delay: float = 1.0,
        max_delay: float = 300.0,
        poll_interval: float = 0.5,
        lease_seconds: float = 60.0,
        job_timeout: float = 900.0,
        batch: int = 16,
    ) -> None:
        self._handlers: dict[str, Handler] = {}
        self._metrics = metrics
        self._skip_locked = skip_locked
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.poll_interval = poll_interval
        self.lease_seconds = lease_seconds
        self.job_timeout = job_timeout
        self.batch = batch
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()
        # told of each job that failed for good, after the commit (a failed reply shows on its page)
        self.failed_for_good: Callable[[OutboxJob], None] = lambda job: None

    def register(self, kind: str, handler: Handler) -> None:
        self._handlers[kind] = handler

    def wake(self) -> None:
        """New work was committed: look now instead of at the next poll."""
        self._wake.set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="outbox")

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop claiming; let running jobs finish (up to `timeout`); unfinished ones are retried later.

        The loop is asked to stop at a safe point rather than cancelled mid-claim: a claim cancelled
        inside its transaction would keep a pooled connection checked out and stall the pool's close."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            _, pending = await asyncio.wait({self._task}, timeout=timeout)
            for t in pending:
                t.cancel()
            self._task = None

    async def _loop(self) -> None:
        while not self._stopping:
            try:
                worked = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox claim failed; trying again shortly")
                worked = 0
            if worked or self._stopping:
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.poll_interval)

    async def run_once(self) -> int:
        """Claim and run one batch of due jobs; returns how many were run."""
        jobs = await repo.claim_jobs(limit=self.batch, lease_seconds=self.lease_seconds, skip_locked=self._skip_locked)
        if not jobs:
            return 0
        tasks = [asyncio.create_task(self._run(job)) for job in jobs]
        self._running.update(tasks)
        try:
            await asyncio.gather(*tasks)
        finally:
            self._running.difference_update(tasks)
        return len(jobs)

    async def drain(self, *, timeout: float = 10.0) -> None:
        """Run due jobs until none is left (tests, shutdown)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline and await self.run_once():
            pass

    def _delay(self, attempts: int) -> float:
        # exponential backoff with full jitter
        cap = min(self.max_delay, self.base_delay * (2 ** (attempts - 1)))
        return random.uniform(cap / 2, cap)

    async def _run_leased(self, lease: _Lease, handler: Handler) -> None:
        """Run the handler, renewing the job's lease while it runs, within `job_timeout`."""
        task: asyncio.Task[None] = asyncio.create_task(handler(dict(lease.job.payload)))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.job_timeout
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=min(self.lease_seconds / 3, deadline - loop.time()))
                if done:
                    return task.result()
                if loop.time() >= deadline:
                    raise RetryLater(f"took longer than {self.job_timeout:.0f} s")
                renewed = await repo.renew_job(lease.job, lease_seconds=self.lease_seconds)
                if renewed is None:
                    raise LeaseLost(f"job {lease.job.id} was taken over by another worker")
                lease.job = renewed
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task

    async def _run(self, job: OutboxJob) -> None:
        handler = self._handlers.get(job.kind)
        attempts = job.attempts + 1
        lease = _Lease(job)
        try:
            if handler is None:
                raise RetryLater(f"no handler for job kind {job.kind!r} in this worker")
            await self._run_leased(lease, handler)
        except LeaseLost as exc:
            log.warning("outbox job %s (%s): %s", job.id, job.kind, exc)
        except PermanentFailure as exc:
            if await repo.retry_job(lease.job, attempts=attempts, delay=0, error=str(exc), failed=True):
                self._metrics.outbox_jobs.labels(job.kind, "failed").inc()
                log.warning("outbox job %s (%s) failed for good: %s", job.id, job.kind, exc)
                self.failed_for_good(job)
        except Exception as exc:
            failed = attempts >= self.max_attempts
            delay = self._delay(attempts)
            if isinstance(exc, RetryLater) and exc.retry_after is not None:
                delay = max(delay, exc.retry_after)
            error = f"{type(exc).__name__}: {exc}"
            if not await repo.retry_job(lease.job, attempts=attempts, delay=delay, error=error, failed=failed):
                log.warning("outbox job %s (%s): lease lost before recording: %s", job.id, job.kind, error)
                return
            self._metrics.outbox_jobs.labels(job.kind, "failed" if failed else "retry").inc()
            if failed:
                log.warning("outbox job %s (%s) failed after %d attempts: %s", job.id, job.kind, attempts, error)
                self.failed_for_good(job)
            else:
                log.info(
                    "outbox job %s (%s) attempt %d failed, retry in %.1fs: %s", job.id, job.kind, attempts, delay, error
                )
        else:
            if await repo.finish_job(lease.job):
                self._metrics.outbox_jobs.labels(job.kind, "done").inc()
            else:
                log.warning("outbox job %s (%s) finished after its lease was lost", job.id, job.kind)
