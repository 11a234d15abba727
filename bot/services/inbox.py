"""Ingest and conversation changes: the transactions behind every inbound message.

One inbound message = the store takes it in (dedupe, find-or-open its conversation, store it),
the engine plans its effects (pure: tags, topics, runs, resolve, CRM link, outbox work), the store
applies them — all committed together before the platform is answered. Requests that arrive
together share one transaction (group commit), a few statements per round rather than per
message; each is acknowledged only after that commit.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bot import outbox_kinds
from bot.domain import (
    Conversation,
    ConversationFilter,
    Delivery,
    Direction,
    Effects,
    InboundMessage,
    NewJob,
    Priority,
    QueueKey,
    Received,
    Role,
    Status,
    User,
)
from bot.engine import RuleSet, Scan, search
from bot.engine.effects import crm_sync_job, plan
from bot.errors import ConversationConflict, ConversationNotFound, Forbidden, Invalid, Missing, UnknownLabel
from bot.metrics import Metrics
from bot.services import audit
from bot.services import live as changes
from bot.services.live import Hub
from bot.services.retry import when_busy
from bot.store import StoreBusy, StoreConflict, conversation_topics, ingest, people, queue, repo
from bot.store.ingest import Batch, Taken

log = logging.getLogger("inbox.ingest")
MAX_TOPIC = 100  # the longest topic name the store holds: a longer one names none
MAX_DETAIL = 100  # the longest detail an event holds


def topics_detail(added: Sequence[str], removed: Sequence[str]) -> str:
    """What a topics change did, as its event says it: `+Refunds −Sales` (shortened to fit)."""
    detail = " ".join([*(f"+{n}" for n in added), *(f"−{n}" for n in removed)])
    return detail if len(detail) <= MAX_DETAIL else detail[: MAX_DETAIL - 1] + "…"


# A burst of first messages on one thread across workers can conflict several times in a row:
# retry with exponential backoff and jitter (about 2 s in all) before giving up.
ALONE_ATTEMPTS = 12


@dataclass(frozen=True, slots=True)
class IngestResult:
    conversation_id: int
    message_id: int
    duplicate: bool


# the text's share of planning, done as the request arrives: (keyword scan, search document)
_Ahead = tuple[Scan, str]
_Item = tuple[InboundMessage, "asyncio.Future[IngestResult]", float, _Ahead]


@dataclass(frozen=True, slots=True)
class _Batch:
    """A group commit's messages as they were queued, and its rounds (indexes into them)."""

    items: list[_Item]
    rounds: list[list[int]]


class Inbox:
    """Stores inbound messages with their automation effects; resolves, reopens, replies and
    assigns; lists conversations (the queue)."""

    def __init__(
        self,
        *,
        rules: Callable[[], RuleSet],
        metrics: Metrics,
        batch_max: int = 64,
        writers: int = 1,
        live: Hub | None = None,
    ) -> None:
        self._rules = rules
        # told of each committed change, for the pages open on it (none without a hub)
        self.live = live or Hub()
        self._metrics = metrics
        self._batch_max = batch_max
        self._writers_n = writers
        # messages waiting for a group commit: appended on the event loop, taken by a writer —
        # on SQLite from the database's own thread (a deque's append and popleft are thread-safe)
        self._pending: deque[_Item] = deque()
        self._wake = asyncio.Event()
        self._arrived = threading.Event()  # for the database's thread, waiting a moment for more
        self._stopping = False
        self._failed: deque[tuple[_Batch, Exception]] = deque()
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
            self._stopping = False
            self._tasks = [
                asyncio.create_task(self._writer(), name=f"ingest-writer-{i}") for i in range(self._writers_n)
            ]

    async def stop(self) -> None:
        """Finish what is queued, then stop the writers (never cancelled mid-transaction)."""
        self._stopping = True
        self._wake.set()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=30)
        self._tasks = []

    # --- ingest ------------------------------------------------------------------------------
    async def ingest(self, msg: InboundMessage) -> IngestResult:
        """Store `msg` and apply automations; returns once committed."""
        if not self._tasks:
            return await self._ingest_alone(msg)
        fut: asyncio.Future[IngestResult] = asyncio.get_running_loop().create_future()
        started = time.perf_counter()
        # outside the writer's transaction, while it works on the batch before: the batch's
        # critical path keeps only what depends on the conversation
        ahead = (self._rules().scan(msg.text), search.document(msg.text))
        self._pending.append((msg, fut, started, ahead))
        self._arrived.set()
        self._wake.set()
        # a request cancelled meanwhile cancels only its wait: the batch commits it all the same
        # and `_settle` skips a future already done
        return await fut

    async def _writer(self) -> None:
        while True:
            while not self._pending:
                if self._stopping:
                    return
                self._wake.clear()
                await self._wake.wait()
            # batch after batch while messages keep coming (on SQLite its thread takes the next
            # batch as soon as it commits one); stops at a failed batch, taken apart below
            try:
                await ingest.take_in_stream(self._take_batch, self._taken, contacts=self._contacts, linger=self._linger)
            except Exception as exc:  # the stream could not run at all: never leave a request waiting
                log.exception("ingest stream failed; taking the next batch message by message")
                stranded = self._take_batch()
                if stranded is not None:
                    self._failed.append((stranded[0], exc))
            while self._failed:
                await self._one_by_one(*self._failed.popleft())

    def _linger(self, seconds: float) -> bool:
        """On SQLite's thread, nothing queued: wait at most `seconds` for a message (True if one came)."""
        self._arrived.clear()
        return bool(self._pending) or self._arrived.wait(seconds)

    def _take_batch(self) -> Batch[_Batch] | None:
        """The next group commit: up to `batch_max` queued messages in rounds, with the engine
        for them (runs on SQLite's thread: only pops the deque and reads the current rules)."""
        items: list[_Item] = []
        while len(items) < self._batch_max:
            try:
                items.append(self._pending.popleft())
            except IndexError:
                break
        if not items:
            return None
        msgs = [msg for msg, _, _, _ in items]
        rounds = _rounds(msgs)
        rules = self._rules()
        ahead = {id(msg): done for msg, _, _, done in items}

        def decide(received: Sequence[Received]) -> list[Effects]:  # the engine, pure
            planned = []
            for r in received:
                scan, document = ahead[id(r.message)]
                planned.append(plan(r, rules, scan=scan, search_document=document))
            return planned

        return _Batch(items, rounds), [[msgs[i] for i in r] for r in rounds], decide

    def _taken(self, batch: _Batch, taken: Taken | Exception) -> None:
        """On the event loop, once a batch committed (or failed): answer its messages."""
        self._metrics.batch_size.observe(len(batch.items))
        if isinstance(taken, Exception):
            self._failed.append((batch, taken))
            return
        self._metrics.fired(run.automation_id for e in taken.effects for run in e.runs)
        results = _results(batch.rounds, taken)
        self.live.publish_many((r.conversation_id for r in results if not r.duplicate), changes.MESSAGE)
        for (msg, fut, started, _), result in zip(batch.items, results, strict=True):
            self._settle(msg, fut, started, result)
        if taken.enqueued:
            self.wake_outbox()  # committed work for it (CRM sync); otherwise it has nothing new

    async def _one_by_one(self, batch: _Batch, exc: Exception) -> None:
        """A failed group commit, message by message: one bad message must not fail its neighbours."""
        self._contacts = ingest.ContactCache()  # it may hold contacts of the rolled-back transaction
        if len(batch.items) > 1:
            log.info("group commit of %d failed (%s); retrying one by one", len(batch.items), type(exc).__name__)
        for msg, fut, started, _ in batch.items:
            try:
                result = await self._ingest_alone(msg)
            except Exception as one_exc:
                self._metrics.ingest_errors.inc()
                log.exception("ingest failed channel=%s message=%s", msg.channel, msg.platform_message_id)
                if not fut.done():
                    fut.set_exception(one_exc)
            else:
                self._settle(msg, fut, started, result)

    def _settle(
        self, msg: InboundMessage, fut: asyncio.Future[IngestResult], started: float, result: IngestResult
    ) -> None:
        self._metrics.ingest_seconds.observe(time.perf_counter() - started)
        self._metrics.labelled(self._metrics.messages, msg.channel, "duplicate" if result.duplicate else "stored").inc()
        if not fut.done():
            fut.set_result(result)

    async def _ingest_alone(self, msg: InboundMessage) -> IngestResult:
        for attempt in range(ALONE_ATTEMPTS):
            rules = self._rules()  # the current ones on each attempt
            try:
                taken = await ingest.take_in(
                    [[msg]], functools.partial(_plan_all, rules=rules), contacts=self._contacts
                )
                self._metrics.fired(run.automation_id for e in taken.effects for run in e.runs)
                (result,) = _results([[0]], taken)
                if not result.duplicate:
                    self.live.publish(result.conversation_id, changes.MESSAGE)
                if taken.enqueued:
                    self.wake_outbox()
                return result
            except StoreConflict:
                # Another worker committed the same message or opened the conversation first.
                self._contacts = ingest.ContactCache()  # (or a cached contact was rolled back)
                await asyncio.sleep(random.uniform(0.0025, 0.005) * 2 ** min(attempt, 7))
            except StoreBusy:  # a deadlock or lock timeout: the other transaction goes first
                await asyncio.sleep(random.uniform(0.005, 0.01) * 2 ** min(attempt, 7))
        raise RuntimeError(f"could not store message {msg.platform_message_id} after {ALONE_ATTEMPTS} attempts")

    # --- agent actions -----------------------------------------------------------------------
    @when_busy
    async def resolve(self, conversation_id: int, *, actor: str, reason: str | None) -> None:
        async with repo.transaction():
            conv = await repo.get_conversation(conversation_id, for_update=True)
            if conv is None:
                raise ConversationNotFound(conversation_id)
            if conv.status is Status.RESOLVED:
                raise ConversationConflict(f"conversation {conversation_id} is already resolved")
            await repo.set_resolved(conv, actor=actor, reason=reason)
            await _audit(actor, "resolved", conversation_id, f"resolved (reason {reason})" if reason else "resolved")
        self.live.publish(conversation_id, changes.RESOLVE)

    @when_busy
    async def reopen(self, conversation_id: int, *, actor: str) -> None:
        try:
            async with repo.transaction():
                conv = await repo.get_conversation(conversation_id, for_update=True)
                if conv is None:
                    raise ConversationNotFound(conversation_id)
                if conv.status is Status.OPEN:
                    raise ConversationConflict(f"conversation {conversation_id} is already open")
                await repo.set_reopened(conv, actor=actor)
                await queue.refresh_waiting([conversation_id])
                await _audit(actor, "reopened", conversation_id, "reopened")
        except StoreConflict:
            raise ConversationConflict(
                "a newer conversation is open on this thread — reply there, or resolve it first"
            ) from None
        self.live.publish(conversation_id, changes.REOPEN)

    @when_busy
    async def change_topics(
        self, conversation_id: int, *, add: Sequence[str] = (), remove: Sequence[str] = (), actor: str
    ) -> tuple[list[str], list[str]]:
        """An agent adds and removes topics by hand; the conversation's priority and team follow and
        the change is recorded (`topics_changed` by `actor`), all in one transaction. A topic to add
        must exist; one to remove must exist or be on the conversation (a deleted topic's name
        stays on its conversations). Returns (added, removed): what actually changed."""
        add = [clean for clean in (" ".join(n.split()) for n in add) if clean]
        remove = [clean for clean in (" ".join(n.split()) for n in remove) if clean]
        if not add and not remove:
            raise Missing("add", of="topics")
        both = {n.casefold() for n in add} & {n.casefold() for n in remove}
        if both:
            name = next(n for n in add if n.casefold() in both)
            raise Invalid("remove", f'topic "{name}" is both added and removed — keep it in one list')
        async with repo.transaction(topics="route"):
            # the conversation's row lock first: ingest holds it while its automations add topics,
            # so the two never read each other's half-done topics and priority and team stay right
            conv = await repo.get_conversation(conversation_id, for_update=True)
            if conv is None:
                raise ConversationNotFound(conversation_id)
            known = await repo.find_labels("topic", [n for n in add + remove if len(n) <= MAX_TOPIC])
            for n in add:
                if n.casefold() not in known:
                    raise UnknownLabel("topic", n, field="add")
            on_it = {t.casefold() for t in await conversation_topics.topics_of(conversation_id)}
            for n in remove:
                if n.casefold() not in known and n.casefold() not in on_it:
                    raise UnknownLabel("topic", n, field="remove")
            added, removed = await conversation_topics.change_topics(
                conversation_id, add=[known[n.casefold()].name for n in add], remove=remove
            )
            if added or removed:
                await queue.reroute([conversation_id])
                await repo.record_event(conversation_id, "topics_changed", actor, topics_detail(added, removed))
                await _audit(actor, "topics_changed", conversation_id, f"topics {topics_detail(added, removed)}")
        if added or removed:
            self.live.publish(conversation_id, changes.TOPICS)
        return added, removed

    @when_busy
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
            sends = self.delivers_replies(conv.channel)
            stored = await repo.add_message(
                conversation_id=conv.id,
                channel=conv.channel,
                direction=Direction.OUTBOUND,
                text=text,
                author=author,
                crm_comment_id=crm_comment_id,
                search_document=search.document(text),
                delivery=Delivery.PENDING if sends else Delivery.STORED,
            )
            await queue.refresh_waiting([conv.id])  # answered: the contact waits no more
            jobs: list[NewJob] = []
            if sends:
                payload = {"message_id": stored.id, "conversation_id": conv.id, "channel": conv.channel}
                jobs.append(
                    NewJob(outbox_kinds.REPLY, payload, conversation_id=conv.id, ordering_key=f"reply:{conv.id}")
                )
            if conv.crm_target is not None and author != "salesforce":
                jobs.append(crm_sync_job(conv.id))
            await repo.enqueue_jobs(jobs)
            await _audit(author, "replied", conv.id, f"replied (message {stored.id}, {len(text)} characters)")
        self.live.publish(conversation_id, changes.REPLY)
        self.wake_outbox()
        return stored.id

    @when_busy
    async def assign(self, conversation_id: int, user_id: int | None, *, by: User | None, actor: str) -> Conversation:
        """Give the conversation to `user_id` (None: to nobody), as `by` (None: a bearer token).

        An agent may take a conversation for themselves, or let go of their own; one held by
        someone else is a Conflict naming who holds it — decided in the same statement that
        writes, so of two agents taking it at once exactly one wins. An admin (or a bearer token)
        may assign anyone. The assignee must be an active user. Records an `assign` event."""
        as_agent = by is not None and by.role is Role.AGENT
        if as_agent and user_id is not None and by is not None and user_id != by.id:
            raise Forbidden("an agent may take a conversation only for themselves — ask an admin to assign others")
        async with repo.transaction():
            conv = await repo.get_conversation(conversation_id)
            if conv is None:
                raise ConversationNotFound(conversation_id)
            if user_id is not None:
                assignee = await people.get_user(user_id)
                if assignee is None:
                    raise Invalid("user", f"unknown user {user_id}")
                if not assignee.active:
                    raise Invalid("user", f"user {user_id} ({assignee.email}) is deactivated")
            guard = by.id if as_agent and by is not None else None
            changed, holder = await queue.assign(conversation_id, user_id, unless_held_by_other=guard)
            if not changed:
                raise ConversationConflict(await self._held_by(conversation_id, holder))
            if conv.assignee_id != user_id:
                await repo.record_event(
                    conversation_id, "assign", actor, f"user:{user_id}" if user_id is not None else None
                )
                said = f"assigned to user:{user_id}" if user_id is not None else "unassigned"
                await _audit(actor, "assigned", conversation_id, said)
            done = await repo.get_conversation(conversation_id)
        assert done is not None
        self.live.publish(conversation_id, changes.ASSIGN)
        return done

    async def _held_by(self, conversation_id: int, holder: int | None) -> str:
        user = await people.get_user(holder) if holder is not None else None
        who = f"{user.name} ({user.email})" if user is not None else f"user {holder}"
        return f"conversation {conversation_id} is assigned to {who}"

    async def conversations(
        self,
        *,
        status: str | None = None,
        channel: str | None = None,
        topic: str | None = None,
        tag: str | None = None,
        q: str | None = None,
        team: str | None = None,
        assignee: str | None = None,
        priority: str | None = None,
        contact: str | None = None,
        me: User | None = None,
        queue_order: bool = False,
        after: QueueKey | None = None,
        before_id: int | None = None,
        limit: int = 50,
    ) -> list[Conversation]:
        """Conversations that pass every filter given: newest first, or in the queue's order
        (priority, then the longest wait, then id) with `queue_order`. Values arrive as a person
        typed them; an unknown one is refused naming the field (`team`, `assignee`, `priority`).
        `assignee`: a user id, `none` (nobody holds it) or `me` (`me`: the signed-in user)."""
        f = ConversationFilter(
            status=self._status(status),
            channel=channel or None,
            topic=topic or None,
            tag=tag or None,
            words=tuple(search.terms(q)) if q else None,
            team_id=await self._team_id(team) if team else None,
            priority=self._priority(priority) if priority else None,
            contact=contact or None,
            **(await self._assignee(assignee, me) if assignee else {}),
        )
        return await repo.list_conversations(f, limit=limit, before_id=before_id, queue=queue_order, after=after)

    @staticmethod
    def _status(status: str | None) -> Status | None:
        if not status:
            return None
        if status not in ("open", "resolved"):
            raise Invalid("status", 'status must be "open" or "resolved"')
        return Status(status)

    @staticmethod
    async def _team_id(name: str) -> int:
        team = (await people.find_teams([name])).get(name.casefold())
        if team is None:
            raise Invalid("team", f'unknown team "{name}"')
        return team.id

    @staticmethod
    def _priority(name: str) -> int:
        try:
            return Priority(name.casefold()).rank
        except ValueError:
            raise Invalid("priority", f'unknown priority "{name}" — use urgent, high, normal or low') from None

    @staticmethod
    async def _assignee(value: str, me: User | None) -> dict[str, Any]:
        if value.casefold() == "none":
            return {"unassigned": True}
        if value.casefold() == "me":
            if me is None:
                raise Invalid("assignee", "assignee=me needs a signed-in user — give a user id instead")
            return {"assignee_id": me.id}
        if not value.isascii() or not value.isdigit() or len(value) > 9:
            raise Invalid("assignee", f'unknown assignee "{value}" — give a user id, none or me')
        if await people.get_user(int(value)) is None:
            raise Invalid("assignee", f"unknown user {value}")
        return {"assignee_id": int(value)}


async def _audit(actor: str, kind: str, conversation_id: int, summary: str) -> None:
    """A person's action on a conversation, in the audit log (automations' and the CRM's are not)."""
    if audit.by_person(actor):
        await audit.note(actor, f"conversation.{kind}", f"conversation:{conversation_id}", summary)


__all__ = ["ConversationConflict", "ConversationNotFound", "Inbox", "IngestResult"]


def _plan_all(received: Sequence[Received], *, rules: RuleSet) -> list[Effects]:
    return [plan(r, rules) for r in received]


def _rounds(msgs: Sequence[InboundMessage]) -> list[list[int]]:
    """A batch's rounds (indexes into `msgs`): each holds at most one message per thread, so a
    message that auto-resolves its conversation makes the next one of that thread (next round)
    open a new one."""
    rounds: list[list[int]] = []
    pending = list(range(len(msgs)))
    while pending:
        round_: list[int] = []
        later: list[int] = []
        threads: set[tuple[str, str]] = set()
        for i in pending:
            key = (msgs[i].channel, msgs[i].thread_key)
            (later if key in threads else round_).append(i)
            threads.add(key)
        rounds.append(round_)
        pending = later
    return rounds


def _results(rounds: Sequence[Sequence[int]], taken: Taken) -> list[IngestResult]:
    """Each message's result, in the order the batch had them."""
    results: list[IngestResult | None] = [None] * sum(len(r) for r in rounds)
    for round_, received in zip(rounds, taken.rounds, strict=True):
        for i, r in zip(round_, received, strict=True):
            results[i] = IngestResult(r.conversation_id, r.message_id, r.duplicate)
    return [r for r in results if r is not None]
