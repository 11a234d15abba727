"""Live updates: which conversation changed, handed to every page that is open.

Services publish after each commit ("conversation 12 changed: resolve"). The hub hands the change
to each subscriber (one per open `GET /events` stream) through a small bounded queue: a browser
that reads too slowly loses its oldest changes (and is told to refetch), it never slows ingest.
Publishing is synchronous and does no IO; a failure is logged and counted, never raised.

With several workers a relay carries the same changes to the other workers' hubs (on PostgreSQL:
NOTIFY on commit of each publish, LISTEN on one dedicated connection, see `bot.store.notify`).
Each message names the worker that sent it, so a worker skips its own echo. Ending streams (a
sign-out, a deactivated user) travels the same way, since a user's streams may be on any worker.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from bot.metrics import Metrics

log = logging.getLogger("inbox.live")

# What changed, as the streams name it.
MESSAGE = "message"  # new inbound message(s)
REPLY = "reply"  # an outbound message stored
DELIVERY = "delivery"  # an outbound message's delivery state changed
RESOLVE = "resolve"
REOPEN = "reopen"
ASSIGN = "assign"
TOPICS = "topics"
CRM = "crm"  # the Case was linked, or its status changed
# Not a conversation: "some changes were lost (a slow reader, a relay that reconnected) —
# refetch what you show".
RESYNC = "resync"

QUEUE_SIZE = 64
# PostgreSQL refuses NOTIFY payloads from 8000 bytes: ids of one publish go out in chunks.
IDS_PER_MESSAGE = 500


@dataclass(frozen=True, slots=True)
class Change:
    """Conversation `conversation_id` changed (`kind`); conversation_id 0 with kind RESYNC."""

    conversation_id: int
    kind: str


_RESYNC = Change(0, RESYNC)


class Relay(Protocol):
    """Carries hub messages (JSON text) to the hubs of the other workers, and theirs to us."""

    def start(self, deliver: Callable[[str], None], resync: Callable[[], None]) -> None:
        """Begin relaying: `deliver` gets every message heard (ours included); `resync` is called
        after a reconnection, when messages may have been missed."""

    def send(self, payload: str) -> None:
        """Queue one message for the other workers; never blocks and never raises."""

    async def stop(self) -> None:
        """Stop relaying; no task of the relay is left running."""


class Subscription:
    """The changes of one stream, in a bounded queue; `None` from `next()` means the stream ends."""

    def __init__(self, *, user_id: int, sid: str | None, size: int, on_drop: Callable[[int], None]) -> None:
        self.user_id = user_id
        self.sid = sid
        self._queue: asyncio.Queue[Change | None] = asyncio.Queue(maxsize=size)
        self._on_drop = on_drop
        self.ended = False

    def put(self, change: Change) -> None:
        if self.ended:
            return
        if self._queue.full():
            # a slow reader: forget what it has not read and tell it to refetch instead
            dropped = self._queue.qsize()
            while not self._queue.empty():
                self._queue.get_nowait()
            self._on_drop(dropped)
            self._queue.put_nowait(_RESYNC)
            if change == _RESYNC:
                return
        self._queue.put_nowait(change)

    def end(self) -> None:
        """End the stream: what it has not read is dropped and `next()` returns None."""
        if self.ended:
            return
        self.ended = True
        while not self._queue.empty():
            self._queue.get_nowait()
        self._queue.put_nowait(None)

    async def next(self) -> Change | None:
        """The next change; None when the stream has ended."""
        if self.ended and self._queue.empty():
            return None
        return await self._queue.get()


class Hub:
    """Fans conversation changes out to the open streams of this worker, and through the relay
    to those of the other workers."""

    def __init__(
        self,
        *,
        metrics: Metrics | None = None,
        relay: Relay | None = None,
        queue_size: int = QUEUE_SIZE,
        worker_id: str | None = None,
    ) -> None:
        self.worker_id = worker_id or secrets.token_hex(8)
        self._metrics = metrics
        self.relay = relay
        self._queue_size = queue_size
        self._subs: set[Subscription] = set()
        self._started = False
        self.closed = False

    # --- publishing (services, after their commit) -------------------------------------------
    def publish(self, conversation_id: int, kind: str) -> None:
        """Conversation `conversation_id` changed. Never raises, never waits."""
        self.publish_many((conversation_id,), kind)

    def publish_many(self, conversation_ids: Iterable[int], kind: str) -> None:
        """These conversations changed the same way (an ingest batch). Never raises, never waits."""
        try:
            ids = list(dict.fromkeys(conversation_ids))
            if not ids:
                return
            self._fan_out(ids, kind)
            if self.relay is not None:
                for i in range(0, len(ids), IDS_PER_MESSAGE):
                    chunk = ids[i : i + IDS_PER_MESSAGE]
                    self.relay.send(json.dumps({"w": self.worker_id, "ids": chunk, "kind": kind}))
        except Exception:
            log.exception("could not publish a change of conversations (%s)", kind)
            self._count_error("publish")

    # --- ending streams ----------------------------------------------------------------------
    def end_session(self, sid: str) -> int:
        """End the streams of one signed-in session (sign-out), on every worker. Returns how many
        streams of this worker ended."""
        ended = self._end(lambda s: s.sid is not None and s.sid == sid)
        self._send({"w": self.worker_id, "end_session": sid})
        return ended

    def end_user(self, user_id: int) -> int:
        """End every stream of a user (deactivated, new password), on every worker."""
        ended = self._end(lambda s: s.user_id == user_id)
        self._send({"w": self.worker_id, "end_user": user_id})
        return ended

    def end_all(self) -> int:
        """End every stream of this worker and accept no new one (the server is shutting down)."""
        self.closed = True
        return self._end(lambda s: True)

    # --- subscribers (the /events streams) -----------------------------------------------------
    def subscribe(self, *, user_id: int, sid: str | None) -> Subscription:
        """A new stream's queue; one already ended when the hub is closed."""
        sub = Subscription(user_id=user_id, sid=sid, size=self._queue_size, on_drop=self._dropped)
        if self.closed:
            sub.end()
            return sub
        self._subs.add(sub)
        self._count_streams()
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        sub.end()
        self._subs.discard(sub)
        self._count_streams()

    @property
    def streams(self) -> int:
        return len(self._subs)

    # --- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        """Start the relay (it connects in the background: a worker serves without it)."""
        if self.relay is not None and not self._started:
            self.relay.start(self._heard, self._resync)
        self._started = True

    async def stop(self) -> None:
        """End every stream and stop the relay."""
        self.end_all()
        if self.relay is not None and self._started:
            await self.relay.stop()
        self._started = False

    # --- inside ------------------------------------------------------------------------------
    def _fan_out(self, ids: list[int], kind: str) -> None:
        for sub in list(self._subs):
            for conversation_id in ids:
                sub.put(Change(conversation_id, kind))

    def _end(self, which: Callable[[Subscription], bool]) -> int:
        ended = [s for s in self._subs if which(s)]
        for sub in ended:
            self.unsubscribe(sub)
        return len(ended)

    def _send(self, message: dict[str, Any]) -> None:
        if self.relay is None:
            return
        try:
            self.relay.send(json.dumps(message))
        except Exception:
            log.exception("could not relay %s", message)
            self._count_error("publish")

    def _heard(self, payload: str) -> None:
        """A message from the relay: another worker's change or stream end (our own echo skipped)."""
        try:
            message = json.loads(payload)
            if not isinstance(message, dict) or message.get("w") == self.worker_id:
                return
            if "ids" in message:
                ids = [int(i) for i in message["ids"]]
                self._fan_out(ids, str(message.get("kind", "")))
            elif "end_session" in message:
                sid = str(message["end_session"])
                self._end(lambda s: s.sid is not None and s.sid == sid)
            elif "end_user" in message:
                user_id = int(message["end_user"])
                self._end(lambda s: s.user_id == user_id)
        except Exception:
            log.warning("ignored a malformed live-update message: %.200r", payload)
            self._count_error("relay")

    def _resync(self) -> None:
        for sub in list(self._subs):
            sub.put(_RESYNC)

    def _dropped(self, n: int) -> None:
        if self._metrics is not None:
            self._metrics.live_dropped.inc(n)

    def _count_error(self, where: str) -> None:
        if self._metrics is not None:
            self._metrics.live_errors.labels(where).inc()

    def _count_streams(self) -> None:
        if self._metrics is not None:
            self._metrics.live_streams.set(len(self._subs))


__all__ = ["Change", "Hub", "Relay", "Subscription"]
