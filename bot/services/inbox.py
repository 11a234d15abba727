"""Ingest and conversation changes: the transactions behind every inbound message.

One inbound message = dedupe, find-or-open its conversation, store it, evaluate the automations
(pure), apply their local effects, record the runs and enqueue external work — all committed
together before the platform is answered. Requests that arrive together share one transaction
(group commit); each is acknowledged only after that commit.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from bot import outbox_kinds
from bot.domain import ConversationType, Direction, InboundMessage, Status
from bot.engine import RuleSet
from bot.errors import ConversationConflict, ConversationNotFound
from bot.metrics import Metrics
from bot.store import repo

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
        self._contacts = repo.ContactCache()
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
            self._contacts = repo.ContactCache()  # it may hold contacts of the rolled-back transaction
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
            except repo.IntegrityError:
                # Another worker committed the same message or opened the conversation first.
                self._contacts = repo.ContactCache()  # (or a cached contact was rolled back)
                await asyncio.sleep(random.uniform(0.0025, 0.005) * 2 ** min(attempt, 7))
            except repo.OperationalError as exc:
                if "deadlock" not in str(exc).lower() and "locked" not in str(exc).lower():
                    raise
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
            enqueued |= await self._process_round(msgs, round_, rules, results)
            pending = later
        return [r for r in results if r is not None], enqueued

    async def _process_round(
        self, msgs: list[InboundMessage], idx: list[int], rules: RuleSet, results: list[IngestResult | None]
    ) -> bool:
        existing = await repo.find_inbound_many([(msgs[i].channel, msgs[i].platform_message_id) for i in idx])
        fresh = []
        for i in idx:
            hit = existing.get((msgs[i].channel, msgs[i].platform_message_id))
            if hit is not None:
                results[i] = IngestResult(hit[0], hit[1], True)
            else:
                fresh.append(i)
        if not fresh:
            return False
        contacts = await self._contacts.ids(
            [(msgs[i].channel, msgs[i].contact_id, msgs[i].contact_name) for i in fresh]
        )
        keys = {i: repo.open_key(msgs[i].channel, msgs[i].thread_key) for i in fresh}
        convs = await repo.open_conversations_for_update(list(keys.values()))
        new = [i for i in fresh if keys[i] not in convs]
        convs.update(
            await repo.start_conversations([(msgs[i], contacts[(msgs[i].channel, msgs[i].contact_id)]) for i in new])
        )
        first = set(new)
        message_ids = await repo.add_inbound_many([(msgs[i], convs[keys[i]].id) for i in fresh])

        tags, topics, runs, events, crm_linked = [], [], [], [], []
        for i in fresh:
            msg, conv = msgs[i], convs[keys[i]]
            mid = message_ids[(msg.channel, msg.platform_message_id)]
            results[i] = IngestResult(conv.id, mid, False)
            seen = frozenset(conv.keyword_progress or ())
            ev = rules.evaluate(
                text=msg.text,
                channel=msg.channel,
                type=ConversationType(conv.type),
                first_message=i in first,
                seen=seen,
            )
            changed: list[str] = []
            if ev.seen != seen:
                conv.keyword_progress = sorted(ev.seen)
                changed.append("keyword_progress")
            if msg.reply_to and i not in first and conv.reply_to != dict(msg.reply_to):
                conv.reply_to = dict(msg.reply_to)
                changed.append("reply_to")
            if ev.firings:
                self._metrics.fired(f.rule.id for f in ev.firings)
                tags += [repo.message_tag(mid, conv.id, name) for name in ev.tags]
                topics += [repo.conversation_topic(conv.id, name) for name in ev.topics]
                runs += [
                    repo.new_run(
                        automation_id=f.rule.id,
                        automation_name=f.rule.name,
                        conversation_id=conv.id,
                        message_id=mid,
                        keywords=list(f.keywords),
                        actions=[a.to_json() for a in f.actions],
                        created_at=repo.now(),
                    )
                    for f in ev.firings
                ]
                if ev.crm_targets and conv.crm_target is None:
                    conv.crm_target = ev.crm_targets[0]
                    changed.append("crm_target")
                if ev.resolve and conv.status == Status.OPEN.value:
                    actor = f"automation:{ev.resolved_by_rule}"
                    changed += repo.mark_resolved(conv, actor=actor, reason=ev.resolve_reason)
                    events.append(repo.conversation_event(conv.id, "resolve", actor, ev.resolve_reason))
            if conv.crm_target is not None:
                crm_linked.append(conv.id)
            await repo.save_conversation(conv, changed)
        await repo.bulk_insert(tags, ignore_conflicts=True)
        await repo.bulk_insert(topics, ignore_conflicts=True)
        await repo.bulk_insert(runs)
        await repo.bulk_insert(events)
        await enqueue_crm_sync(crm_linked)
        return bool(crm_linked)

    # --- agent actions -----------------------------------------------------------------------
    async def resolve(self, conversation_id: int, *, actor: str, reason: str | None) -> None:
        async with repo.transaction():
            conv = await repo.get_conversation(conversation_id, for_update=True)
            if conv is None:
                raise ConversationNotFound(conversation_id)
            if conv.status == Status.RESOLVED.value:
                raise ConversationConflict(f"conversation {conversation_id} is already resolved")
            await repo.set_resolved(conv, actor=actor, reason=reason)

    async def reopen(self, conversation_id: int, *, actor: str) -> None:
        try:
            async with repo.transaction():
                conv = await repo.get_conversation(conversation_id, for_update=True)
                if conv is None:
                    raise ConversationNotFound(conversation_id)
                if conv.status == Status.OPEN.value:
                    raise ConversationConflict(f"conversation {conversation_id} is already open")
                await repo.set_reopened(conv, actor=actor)
        except repo.IntegrityError:
            raise ConversationConflict(
                "a newer conversation is open on this thread — reply there, or resolve it first"
            ) from None

    async def reply(self, conversation_id: int, *, text: str, author: str, crm_comment_id: str | None = None) -> int:
        """Store an outbound message and enqueue its delivery through the conversation's channel.

        `crm_comment_id`: the CRM comment the reply comes from, stored on the message in the same
        transaction; a comment already stored raises repo.IntegrityError and nothing is kept."""
        async with repo.transaction():
            conv = await repo.get_conversation(conversation_id)
            if conv is None:
                raise ConversationNotFound(conversation_id)
            problem = self.reply_problem(conv.channel)
            if problem is not None:
                raise ConversationConflict(problem)
            stored = await repo.add_message(
                conversation_id=conv.id, channel=conv.channel, direction=Direction.OUTBOUND, text=text, author=author
            )
            if crm_comment_id is not None:
                await repo.set_message_crm_comment(stored.id, crm_comment_id)
            if self.delivers_replies(conv.channel):
                await repo.enqueue(
                    outbox_kinds.REPLY,
                    {"message_id": stored.id, "conversation_id": conv.id, "channel": conv.channel},
                    conversation_id=conv.id,
                    ordering_key=f"reply:{conv.id}",
                )
            if conv.crm_target is not None and author != "salesforce":
                await enqueue_crm_sync([conv.id])
        self.wake_outbox()
        return stored.id


def crm_sync_job(conversation_id: int) -> repo.OutboxJob:
    return repo.outbox_job(
        outbox_kinds.CRM_SYNC,
        {"conversation_id": conversation_id},
        conversation_id=conversation_id,
        ordering_key=f"crm:{conversation_id}",
    )


async def enqueue_crm_sync(conversation_ids: list[int]) -> None:
    """One pending sync per conversation is enough: the job syncs everything not yet in the Case,
    so a new one is added only when none is waiting (a running one may have read too early)."""
    if not conversation_ids:
        return
    waiting = await repo.pending_job_conversations(outbox_kinds.CRM_SYNC, conversation_ids)
    await repo.bulk_insert([crm_sync_job(cid) for cid in conversation_ids if cid not in waiting])


__all__ = ["ConversationConflict", "ConversationNotFound", "Inbox", "IngestResult"]
