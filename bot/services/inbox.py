"""Ingest and conversation changes: the transactions behind every inbound message.

One inbound message = the store takes it in (dedupe, find-or-open its conversation, store it),
the engine plans its effects (pure: tags, topics, runs, resolve, CRM link, outbox work), the store
applies them — all committed together before the platform is answered. Requests that arrive
together share one transaction (group commit), a few statements per round rather than per
message; each is acknowledged only after that commit.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from bot import outbox_kinds
from bot.domain import Direction, InboundMessage, NewJob, Status
from bot.engine import RuleSet
from bot.engine.effects import crm_sync_job, plan
from bot.errors import ConversationConflict, ConversationNotFound
from bot.metrics import Metrics
from bot.store import StoreBusy, StoreConflict, ingest, repo

log = logging.getLogger("inbox.ingest")
# A burst of first messages on one thread across workers can conflict several times in a row:
# retry with exponential backoff and jitter (about 2 s in all) before giving up.
ALONE_ATTEMPTS = 12


@dataclass(frozen=True, slots=True)
class IngestResult:
    conversation_id: int
    message_id: int
    duplicate: bool


_Item = tuple[InboundMessage, "asyncio.Future[IngestResult]", float]


class Inbox:
    """Stores inbound messages with their automation effects; resolves, reopens and replies."""

    def __init__(
        self,
        *,
        rules: Callable[[], RuleSet],
        metrics: Metrics,
        batch_max: int = 64,
        writers: int = 1,
    ) -> None:
        self._rules = rules
        self._metrics = metrics
        self._batch_max = batch_max
        self._writers_n = writers
        self._queue: asyncio.Queue[_Item | None] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._contacts = ingest.ContactCache()
        self.wake_outbox: Callable[[], None] = lambda: None
        # Why a reply cannot be accepted on a channel (it is no longer configured), or None.
        self.reply_problem: Callable[[str], str | None] = lambda channel: None
        # Whether a channel sends replies out (a webhook channel without reply_url only stores them).
        self.delivers_replies: Callable[[str], bool] = lambda channel: True

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        if not self._tasks:
            self._tasks = [
                asyncio.create_task(self._writer(), name=f"ingest-writer-{i}") for i in range(self._writers_n)
            ]

    async def stop(self) -> None:
        """Finish what is queued, then stop the writers (never cancelled mid-transaction)."""
        for _ in self._tasks:
            self._queue.put_nowait(None)
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=30)
        self._tasks = []

    # --- ingest ------------------------------------------------------------------------------
    async def ingest(self, msg: InboundMessage) -> IngestResult:
        """Store `msg` and apply automations; returns once committed."""
        if not self._tasks:
            return await self._ingest_alone(msg)
        fut: asyncio.Future[IngestResult] = asyncio.get_running_loop().create_future()
        await self._queue.put((msg, fut, time.perf_counter()))
        return await asyncio.shield(fut)

    async def _writer(self) -> None:
        stopping = False
        while not stopping:
            first = await self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self._batch_max:
                try:
                    item = self._queue.get_nowait()
                except asyncio.QueueEmpty:
                    break
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            await self._run_batch(batch)

    async def _run_batch(self, batch: list[_Item]) -> None:
        self._metrics.batch_size.observe(len(batch))
        try:
            async with repo.transaction():
                results, enqueued = await self._process([msg for msg, _, _ in batch], self._rules())
        except Exception as exc:  # one bad message must not fail its neighbours: retry one by one
            self._contacts = ingest.ContactCache()  # it may hold contacts of the rolled-back transaction
            if len(batch) > 1:
                log.info("group commit of %d failed (%s); retrying one by one", len(batch), type(exc).__name__)
            for msg, fut, started in batch:
                try:
                    result = await self._ingest_alone(msg)
                except Exception as one_exc:
                    self._metrics.ingest_errors.inc()
                    log.exception("ingest failed channel=%s message=%s", msg.channel, msg.platform_message_id)
                    if not fut.done():
                        fut.set_exception(one_exc)
                else:
                    self._settle(msg, fut, started, result)
            return
        for (msg, fut, started), result in zip(batch, results, strict=True):
            self._settle(msg, fut, started, result)
        if enqueued:
            self.wake_outbox()  # committed work for it (CRM sync); otherwise it has nothing new

    def _settle(
        self, msg: InboundMessage, fut: asyncio.Future[IngestResult], started: float, result: IngestResult
    ) -> None:
        self._metrics.ingest_seconds.observe(time.perf_counter() - started)
        self._metrics.messages.labels(msg.channel, "duplicate" if result.duplicate else "stored").inc()
        if not fut.done():
            fut.set_result(result)

    async def _ingest_alone(self, msg: InboundMessage) -> IngestResult:
        for attempt in range(ALONE_ATTEMPTS):
            try:
                async with repo.transaction():
                    (result,), enqueued = await self._process([msg], self._rules())
                if enqueued:
                    self.wake_outbox()
                return result
            except StoreConflict:
                # Another worker committed the same message or opened the conversation first.
                self._contacts = ingest.ContactCache()  # (or a cached contact was rolled back)
                await asyncio.sleep(random.uniform(0.0025, 0.005) * 2 ** min(attempt, 7))
            except StoreBusy:  # a deadlock or lock timeout: the other transaction goes first
                await asyncio.sleep(random.uniform(0.005, 0.01) * 2 ** min(attempt, 7))
        raise RuntimeError(f"could not store message {msg.platform_message_id} after {ALONE_ATTEMPTS} attempts")

    async def _process(self, msgs: list[InboundMessage], rules: RuleSet) -> tuple[list[IngestResult], bool]:
        """Store `msgs` in the current transaction, set-based: a handful of statements per round
        rather than per message. A round holds at most one message per thread, so a message that
        auto-resolves its conversation makes the next one of that thread (next round) open a new one.
        Returns the results and whether outbox work was enqueued."""
        enqueued = False
        results: list[IngestResult | None] = [None] * len(msgs)
        pending = list(range(len(msgs)))
        while pending:
            round_: list[int] = []
            later: list[int] = []
            threads: set[tuple[str, str]] = set()
            for i in pending:
                key = (msgs[i].channel, msgs[i].thread_key)
                (later if key in threads else round_).append(i)
                threads.add(key)
            round_results, round_enqueued = await self._process_round([msgs[i] for i in round_], rules)
            for i, result in zip(round_, round_results, strict=True):
                results[i] = result
            enqueued |= round_enqueued
            pending = later
        return [r for r in results if r is not None], enqueued

    async def _process_round(self, msgs: list[InboundMessage], rules: RuleSet) -> tuple[list[IngestResult], bool]:
        """Take the round in, let the engine plan each new message's effects, apply them all."""
        received = await ingest.receive(msgs, contacts=self._contacts)
        effects = [plan(r, rules) for r in received if not r.duplicate]
        self._metrics.fired(run.automation_id for e in effects for run in e.runs)
        enqueued = await ingest.apply(effects) if effects else False
        return [IngestResult(r.conversation_id, r.message_id, r.duplicate) for r in received], enqueued

    # --- agent actions -----------------------------------------------------------------------
    async def resolve(self, conversation_id: int, *, actor: str, reason: str | None) -> None:
        async with repo.transaction():
            conv = await repo.get_conversation(conversation_id, for_update=True)
            if conv is None:
                raise ConversationNotFound(conversation_id)
            if conv.status is Status.RESOLVED:
                raise ConversationConflict(f"conversation {conversation_id} is already resolved")
            await repo.set_resolved(conv, actor=actor, reason=reason)

    async def reopen(self, conversation_id: int, *, actor: str) -> None:
        try:
            async with repo.transaction():
                conv = await repo.get_conversation(conversation_id, for_update=True)
                if conv is None:
                    raise ConversationNotFound(conversation_id)
                if conv.status is Status.OPEN:
                    raise ConversationConflict(f"conversation {conversation_id} is already open")
                await repo.set_reopened(conv, actor=actor)
        except StoreConflict:
            raise ConversationConflict(
                "a newer conversation is open on this thread — reply there, or resolve it first"
            ) from None

    async def reply(self, conversation_id: int, *, text: str, author: str, crm_comment_id: str | None = None) -> int:
        """Store an outbound message and enqueue its delivery through the conversation's channel.

        `crm_comment_id`: the CRM comment the reply comes from, stored with the message; a comment
        already stored raises StoreConflict and nothing is kept."""
        async with repo.transaction():
            conv = await repo.get_conversation(conversation_id)
            if conv is None:
                raise ConversationNotFound(conversation_id)
            problem = self.reply_problem(conv.channel)
            if problem is not None:
                raise ConversationConflict(problem)
            stored = await repo.add_message(
                conversation_id=conv.id,
                channel=conv.channel,
                direction=Direction.OUTBOUND,
                text=text,
                author=author,
                crm_comment_id=crm_comment_id,
            )
            jobs: list[NewJob] = []
            if self.delivers_replies(conv.channel):
                payload = {"message_id": stored.id, "conversation_id": conv.id, "channel": conv.channel}
                jobs.append(
                    NewJob(outbox_kinds.REPLY, payload, conversation_id=conv.id, ordering_key=f"reply:{conv.id}")
                )
            if conv.crm_target is not None and author != "salesforce":
                jobs.append(crm_sync_job(conv.id))
            await repo.enqueue_jobs(jobs)
        self.wake_outbox()
        return stored.id


__all__ = ["ConversationConflict", "ConversationNotFound", "Inbox", "IngestResult"]
