"""Ingest and conversation changes: the transactions behind every inbound message.

One inbound message = dedupe, find-or-open its conversation, store it, evaluate the automations
(pure), apply their local effects, record the runs and enqueue external work — all committed
together before the platform is answered. Requests that arrive together share one transaction
(group commit); each is acknowledged only after that commit.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from bot import outbox_kinds
from bot.engine import Evaluation, RuleSet
from bot.metrics import Metrics
from bot.model import ActionType, ConversationType, Direction, InboundMessage, Status
from bot.store import repo

log = logging.getLogger("inbox.ingest")


@dataclass(frozen=True, slots=True)
class IngestResult:
    conversation_id: int
    message_id: int
    duplicate: bool


class ConversationNotFound(Exception):
    pass


class ConversationConflict(Exception):
    """The change cannot be made in the conversation's current state."""


class _Retry(Exception):
    """A concurrent writer won a race (duplicate message, open conversation); run the message again."""


class Inbox:
    """Stores inbound messages with their automation effects; resolves, reopens and replies."""

    def __init__(
        self,
        *,
        rules: Callable[[], RuleSet],
        metrics: Metrics,
        batch_max: int = 64,
        writers: int = 1,
        crm_enabled: Callable[[], bool] = lambda: False,
    ) -> None:
        self._rules = rules
        self._metrics = metrics
        self._batch_max = batch_max
        self._writers_n = writers
        self._queue: asyncio.Queue[tuple[InboundMessage, asyncio.Future[IngestResult], float]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._contacts = repo.ContactCache()
        self._crm_enabled = crm_enabled
        self.wake_outbox: Callable[[], None] = lambda: None

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        if not self._tasks:
            self._tasks = [asyncio.create_task(self._writer(), name=f"ingest-writer-{i}") for i in range(self._writers_n)]

    async def stop(self) -> None:
        """Finish what is queued, then stop the writers."""
        while not self._queue.empty():
            await asyncio.sleep(0.01)
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            try:
                await t
            except asyncio.CancelledError:
                pass
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
        while True:
            first = await self._queue.get()
            batch = [first]
            while len(batch) < self._batch_max:
                try:
                    batch.append(self._queue.get_nowait())
                except asyncio.QueueEmpty:
                    break
            await self._run_batch(batch)

    async def _run_batch(
        self, batch: list[tuple[InboundMessage, asyncio.Future[IngestResult], float]]
    ) -> None:
        self._metrics.batch_size.observe(len(batch))
        rules = self._rules()
        try:
            async with repo.transaction():
                results = [await self._process(msg, rules) for msg, _, _ in batch]
        except Exception as exc:  # one bad message must not fail its neighbours: retry one by one
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

    def _settle(
        self, msg: InboundMessage, fut: asyncio.Future[IngestResult], started: float, result: IngestResult
    ) -> None:
        self._metrics.ingest_seconds.observe(time.perf_counter() - started)
        self._metrics.messages.labels(msg.channel, "duplicate" if result.duplicate else "stored").inc()
        if not fut.done():
            fut.set_result(result)
        self.wake_outbox()

    async def _ingest_alone(self, msg: InboundMessage) -> IngestResult:
        for attempt in range(5):
            try:
                async with repo.transaction():
                    return await self._process(msg, self._rules())
            except (_Retry, repo.IntegrityError):
                # Another worker committed the same message or opened the conversation first.
                self._contacts.forget((msg.channel, msg.contact_id))
                await asyncio.sleep(0.005 * (attempt + 1))
            except repo.OperationalError as exc:
                if "deadlock" not in str(exc).lower() and "locked" not in str(exc).lower():
                    raise
                await asyncio.sleep(0.01 * (attempt + 1))
        raise RuntimeError(f"could not store message {msg.platform_message_id} after 5 attempts")

    async def _process(self, msg: InboundMessage, rules: RuleSet) -> IngestResult:
        existing = await repo.find_inbound(msg.channel, msg.platform_message_id)
        if existing is not None:
            return IngestResult(existing.conversation_id, existing.id, True)  # type: ignore[attr-defined]
        contact_id = await self._contacts.contact_id(msg.channel, msg.contact_id, msg.contact_name)
        conv = await repo.open_conversation_for_update(msg.channel, msg.thread_key)
        first = conv is None
        if conv is None:
            conv = await repo.start_conversation(msg, contact_id)
        stored = await repo.add_message(
            conversation_id=conv.id,
            channel=msg.channel,
            direction=Direction.INBOUND,
            text=msg.text,
            platform_id=msg.platform_message_id,
            author=f"contact:{msg.contact_id}",
            sent_at=msg.sent_at,
        )
        seen = frozenset(conv.keyword_progress or ())
        ev = rules.evaluate(
            text=msg.text,
            channel=msg.channel,
            type=ConversationType(conv.type),
            first_message=first,
            seen=seen,
        )
        changed: list[str] = []
        if ev.seen != seen:
            conv.keyword_progress = sorted(ev.seen)
            changed.append("keyword_progress")
        if msg.reply_to and conv.reply_to != dict(msg.reply_to) and not first:
            conv.reply_to = dict(msg.reply_to)
            changed.append("reply_to")
        await self._apply(conv, stored.id, ev)
        if ev.crm_targets and conv.crm_target is None:
            conv.crm_target = ev.crm_targets[0]
            changed.append("crm_target")
        await repo.save_conversation(conv, changed)
        if conv.crm_target is not None:
            await enqueue_crm_sync(conv.id)
        return IngestResult(conv.id, stored.id, False)

    async def _apply(self, conv: repo.Conversation, message_id: int, ev: Evaluation) -> None:
        if not ev.firings:
            return
        await repo.add_message_tags(message_id, conv.id, ev.tags)
        await repo.add_topics(conv.id, ev.topics)
        await repo.add_runs(
            repo.new_run(
                automation_id=f.rule.id,
                automation_name=f.rule.name,
                conversation_id=conv.id,
                message_id=message_id,
                keywords=list(f.keywords),
                actions=[a.to_json() for a in f.actions],
            )
            for f in ev.firings
        )
        self._metrics.firings.inc(len(ev.firings))
        if ev.resolve and conv.status == Status.OPEN.value:
            await repo.set_resolved(conv, actor=f"automation:{ev.resolved_by_rule}", reason=ev.resolve_reason)

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

    async def reply(self, conversation_id: int, *, text: str, author: str) -> int:
        """Store an outbound message and enqueue its delivery through the conversation's channel."""
        async with repo.transaction():
            conv = await repo.get_conversation(conversation_id)
            if conv is None:
                raise ConversationNotFound(conversation_id)
            stored = await repo.add_message(
                conversation_id=conv.id, channel=conv.channel, direction=Direction.OUTBOUND, text=text, author=author
            )
            await repo.enqueue(
                outbox_kinds.REPLY,
                {"message_id": stored.id, "conversation_id": conv.id, "channel": conv.channel},
                conversation_id=conv.id,
                ordering_key=f"reply:{conv.id}",
            )
            if conv.crm_target is not None and author != "salesforce":
                await enqueue_crm_sync(conv.id)
        self.wake_outbox()
        return stored.id


async def enqueue_crm_sync(conversation_id: int) -> None:
    await repo.enqueue(
        outbox_kinds.CRM_SYNC,
        {"conversation_id": conversation_id},
        conversation_id=conversation_id,
        ordering_key=f"crm:{conversation_id}",
    )


__all__ = ["ActionType", "ConversationConflict", "ConversationNotFound", "Inbox", "IngestResult"]
