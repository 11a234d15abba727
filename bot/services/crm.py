"""Keeping a CRM in step with the inbox: a Case per linked conversation, its messages as comments,
agents' work back into the inbox. The CRM itself (`connectors.base.Crm`) only does the IO.

Out (outbox job `crm_sync`, one conversation at a time): make sure the conversation's Case exists —
upsert it by our conversation id when the CRM can, else create it, looking for the Case of an
earlier attempt first (a create that timed out after the CRM saved it) — then add every message not
yet on the Case as a private comment, in order, recording each comment's id on its message.

Back (every `poll_seconds`): public comments written by agents on linked Cases are sent to the
contact through the conversation's channel (stored as outbound messages carrying the comment id, so
a comment is sent once); a Case closed in the CRM resolves the conversation, reopened reopens it.
The poll cursors live in the store, so a restart neither loses nor repeats anything.

Only reads what the store returns (never changes a returned object): every change goes through a
store function or the inbox service.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.domain import Contact, Conversation, Direction, Message, Status
from bot.errors import ConversationConflict, ConversationNotFound
from bot.metrics import Metrics
from bot.outbox import PermanentFailure
from bot.services import live as changes
from bot.services.inbox import Inbox
from bot.store import StoreConflict, conversations, kv
from connectors.base import CaseDraft, Crm, CrmCase

log = logging.getLogger("inbox.crm")

# The CRM's commits are not visible the instant their timestamps say: read again a little way back
# and rely on the stored comment ids to skip what was seen.
CURSOR_OVERLAP = timedelta(seconds=60)
COMMENT_MARKER = "[inbox-bot message {id}]"
COMMENT_MARKER_RE = re.compile(r"\[inbox-bot message (\d+)\]")


def case_marker(conversation_id: int) -> str:
    """The tag in a Case's Subject that finds it again when the CRM cannot upsert."""
    return f"[inbox #{conversation_id}]"


def comments_cursor(target: str) -> str:
    """The store key of the time up to which agents' comments were read."""
    return f"{target}:comments_cursor"


def cases_cursor(target: str) -> str:
    """The store key of the time up to which Case changes were read."""
    return f"{target}:cases_cursor"


# --- wording and clipping (no IO) ------------------------------------------------------------------


def clip(text: str, limit: int, suffix: str = "") -> str:
    """`text` + `suffix` in at most `limit` characters; a cut is shown with "…"."""
    room = limit - len(suffix)
    if len(text) > room:
        text = text[: max(0, room - 1)] + "…"
    return text + suffix


def _who(m: Message, contact_name: str | None) -> str:
    if m.direction == Direction.INBOUND:
        return contact_name or (m.author or "contact").removeprefix("contact:")
    return f"Team ({m.author})" if m.author else "Team"


def _stamp(m: Message) -> str:
    when = m.sent_at or m.created_at
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if when else ""


def case_draft(
    conv: Conversation,
    contact: Contact | None,
    messages: Sequence[Message],
    *,
    crm: Crm,
) -> CaseDraft:
    """Subject (the first inbound message + our marker), Description (the transcript), Origin (the
    channel) and SuppliedName of a new Case, clipped to the CRM's limits."""
    name = contact.name if contact else None
    first = next((m for m in messages if m.direction == Direction.INBOUND), None)
    headline = " ".join(first.text.split()) if first else f"Conversation on {conv.channel}"
    lines = [f"[{_stamp(m)}] {_who(m, name)}: {m.text}" for m in messages]
    return CaseDraft(
        subject=clip(headline, crm.subject_max, " " + case_marker(conv.id)),
        description=clip("\n".join(lines), crm.description_max),
        origin=conv.channel,
        supplied_name=clip(name or (contact.platform_id if contact else ""), crm.name_max),
    )


def comment_body(m: Message, contact_name: str | None, *, limit: int) -> str:
    """A message as a comment, ending with the marker that finds it again after a timeout."""
    how = "from the contact" if m.direction == Direction.INBOUND else "sent"
    head = f"{_who(m, contact_name)} ({how}, {_stamp(m)}):\n"
    return clip(head + m.text, limit, "\n\n" + COMMENT_MARKER.format(id=m.id))


# --- the sync --------------------------------------------------------------------------------------


class CrmSync:
    """One CRM kept in step with the inbox: the `crm_sync` outbox handler and the poll loop."""

    def __init__(self, crm: Crm, *, inbox: Inbox, metrics: Metrics) -> None:
        self.crm = crm
        self.inbox = inbox
        self.metrics = metrics
        self._poll_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    @property
    def target(self) -> str:
        return self.crm.target

    # --- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        """Log in (a failure is only logged) and start polling."""
        await self.crm.start()
        if self._task is None:
            self._task = asyncio.create_task(self._poll_loop(), name=f"{self.target}-poll")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.crm.stop()

    # --- out: the Case and its comments ----------------------------------------------------------
    async def sync_conversation(self, payload: dict[str, Any]) -> None:
        """Outbox handler for `crm_sync`: idempotent, safe to run again after any failure."""
        conversation_id = int(payload["conversation_id"])
        conv = await conversations.get_conversation(conversation_id)
        if conv is None:
            return
        if conv.crm_target != self.target:
            raise PermanentFailure(f"conversation {conversation_id} is not linked to {self.crm.title}")
        contact = await conversations.get_contact(conv.contact_id)
        case_id, upto = conv.crm_case_id, conv.crm_transcript_upto
        if not case_id:
            case_id, upto = await self._ensure_case(conv, contact, upto=upto)
        await self._sync_comments(
            conv.id,
            contact.name if contact else None,
            case_id=case_id,
            after_id=upto or 0,
            pending=conv.crm_pending_message_id,
        )

    async def _ensure_case(self, conv: Conversation, contact: Contact | None, *, upto: int | None) -> tuple[str, int]:
        """The conversation's Case, created (or found) and recorded: (Case id, last message in its
        Description)."""
        earlier_attempt = upto is not None
        if upto is None:
            # Fix what the Description holds before the first try: a retry sends the same Case, and
            # the messages after it become comments.
            upto = await conversations.crm_last_message_id(conv.id)
            await conversations.set_crm_fields(conv.id, crm_transcript_upto=upto)
        messages, _ = await conversations.conversation_messages(conv.id)
        draft = case_draft(conv, contact, [m for m in messages if m.id <= upto], crm=self.crm)
        case: CrmCase | None = None
        if self.crm.upserts:
            case = await self.crm.upsert_case(str(conv.id), draft)
        else:
            if earlier_attempt:
                case = await self.crm.find_case(case_marker(conv.id))
            if case is None:
                case = await self.crm.create_case(draft)
        await conversations.set_crm_fields(
            conv.id,
            crm_case_id=case.id,
            crm_case_number=case.number,
            crm_status=case.status,
            crm_closed=case.closed,
        )
        self.inbox.live.publish(conv.id, changes.CRM)
        log.info("conversation %s linked to %s Case %s", conv.id, self.crm.title, case.number)
        return case.id, upto

    async def _sync_comments(
        self,
        conversation_id: int,
        contact_name: str | None,
        *,
        case_id: str,
        after_id: int,
        pending: int | None,
    ) -> None:
        messages = await conversations.crm_unsynced_messages(conversation_id, after_id=after_id)
        for m in messages:
            if pending == m.id:
                # The last create of this comment got no answer: it may exist; look before sending.
                existing = await self._existing_comments(case_id)
                if m.id in existing:
                    await conversations.crm_comment_done(m.id, existing[m.id], conversation_id)
                    pending = None
                    continue
            if pending != m.id:
                await conversations.set_crm_fields(conversation_id, crm_pending_message_id=m.id)
                pending = m.id
            body = comment_body(m, contact_name, limit=self.crm.comment_max)
            comment_id = await self.crm.add_comment(case_id, body)
            await conversations.crm_comment_done(m.id, comment_id, conversation_id)
            pending = None

    async def _existing_comments(self, case_id: str) -> dict[int, str]:
        """Our comments on the Case, by the message id in their marker."""
        found: dict[int, str] = {}
        for c in await self.crm.comments(case_id):
            match = COMMENT_MARKER_RE.search(c.body)
            if match:
                found.setdefault(int(match.group(1)), c.id)
        return found

    # --- back: agents' comments and Case status --------------------------------------------------
    async def _poll_loop(self) -> None:
        while True:
            try:
                await self.poll_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.metrics.connector_errors.labels(self.target).inc()
                log.warning("%s poll failed (%s); trying again in %ss", self.crm.title, exc, self.crm.poll_seconds)
            await asyncio.sleep(self.crm.poll_seconds)

    async def poll_once(self) -> None:
        """Bring new agent comments and Case status changes into the inbox (one pass)."""
        async with self._poll_lock:
            linked = await conversations.crm_linked_conversations(self.target)
            if not linked:
                return
            by_case: dict[str, Conversation] = {str(c.crm_case_id): c for c in linked}
            await self._poll_comments(by_case)
            await self._poll_cases(by_case)

    async def _since(self, key: str) -> datetime | None:
        raw = await kv.kv_get(key)
        return datetime.fromisoformat(raw) - CURSOR_OVERLAP if raw else None

    async def _advance(self, key: str, newest: datetime | None) -> None:
        """Move a poll cursor on to the newest time seen."""
        if newest is None:
            return
        try:
            await kv.kv_set(key, newest.isoformat())
        except StoreConflict:
            # Another worker polling at the same moment wrote the cursor's first value: it saw the
            # same changes, and the next poll reads back CURSOR_OVERLAP anyway.
            log.info("%s cursor %s was set by another worker", self.crm.title, key)

    async def _poll_comments(self, by_case: dict[str, Conversation]) -> None:
        key = comments_cursor(self.target)
        comments = await self.crm.published_comments(list(by_case), since=await self._since(key))
        if not comments:
            return
        known = await conversations.known_crm_comments([c.id for c in comments])
        for c in comments:
            body = c.body.strip()
            conv = by_case.get(c.case_id)
            if c.id in known or conv is None or not body or COMMENT_MARKER_RE.search(body):
                continue  # sent already, ours, or empty
            await self._send_agent_comment(conv.id, c.id, body)
        await self._advance(key, max((c.created_at for c in comments if c.created_at is not None), default=None))

    async def _send_agent_comment(self, conversation_id: int, comment_id: str, body: str) -> None:
        try:
            # The outbound message and the comment id it came from commit together: a comment is
            # sent once, also across restarts and with several workers polling.
            await self.inbox.reply(conversation_id, text=body, author=self.target, crm_comment_id=comment_id)
        except StoreConflict:
            log.info("%s comment %s was already sent by another worker", self.crm.title, comment_id)
            return
        except ConversationNotFound:
            return
        except ConversationConflict as exc:
            # Skipped, not retried: one comment that cannot be sent must not block every later one.
            self.metrics.connector_errors.labels(self.target).inc()
            log.warning(
                "%s comment %s not sent to conversation %s and skipped: %s",
                self.crm.title,
                comment_id,
                conversation_id,
                exc,
            )
            return
        log.info("agent comment %s sent to conversation %s", comment_id, conversation_id)

    async def _poll_cases(self, by_case: dict[str, Conversation]) -> None:
        key = cases_cursor(self.target)
        cases = await self.crm.changed_cases(list(by_case), since=await self._since(key))
        for case in cases:
            conv = by_case.get(case.id)
            if conv is not None:
                await self._apply_case_state(conv, case)
        await self._advance(key, max((c.modified_at for c in cases if c.modified_at is not None), default=None))

    async def _apply_case_state(self, conv: Conversation, case: CrmCase) -> None:
        was_closed = bool(conv.crm_closed)
        try:
            if case.closed and not was_closed and conv.status == Status.OPEN:
                await self.inbox.resolve(conv.id, actor=self.target, reason=None)
                log.info("conversation %s resolved: Case %s closed", conv.id, conv.crm_case_number)
            elif not case.closed and was_closed and conv.status == Status.RESOLVED:
                await self.inbox.reopen(conv.id, actor=self.target)
                log.info("conversation %s reopened: Case %s reopened", conv.id, conv.crm_case_number)
        except ConversationConflict as exc:
            log.info("Case %s changed; conversation %s left as is: %s", conv.crm_case_number, conv.id, exc)
        if case.closed != was_closed or case.status != conv.crm_status:
            await conversations.set_crm_fields(conv.id, crm_closed=case.closed, crm_status=case.status)
            self.inbox.live.publish(conv.id, changes.CRM)


__all__ = ["CrmSync", "case_draft", "case_marker", "clip", "comment_body", "comments_cursor"]
