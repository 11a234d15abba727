"""PostgreSQL NOTIFY/LISTEN: the relay that carries live updates between workers.

One dedicated asyncpg connection per worker (not one of the ORM's pool: it is held for the
worker's life) LISTENs on one channel and sends this worker's messages with NOTIFY. Sending is a
bounded in-memory queue drained by the relay's task, so a publisher never waits on the database;
when the connection drops, the relay reconnects with capped exponential backoff and jitter, and
asks the hub to resync its streams (notifications sent meanwhile were missed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import deque
from collections.abc import Callable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

log = logging.getLogger("inbox.live.relay")

CHANNEL = "inbox_changes"
OUTGOING_MAX = 1000  # messages waiting for the connection; the oldest go first when it is down
BATCH = 100  # messages per round trip
HEALTH_EVERY = 10.0  # seconds without traffic before the connection is checked with a query
CONNECT_TIMEOUT = 5.0
# Connection options of the store URL that asyncpg also understands; the others are Tortoise's.
_KEEP = {"sslmode", "ssl", "application_name", "connect_timeout"}


def asyncpg_dsn(url: str) -> str:
    """The store URL (`postgres://…?minsize=1`, Tortoise's form) as asyncpg takes it."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k in _KEEP]
    return urlunsplit(parts._replace(scheme="postgresql", query=urlencode(query)))


class PgRelay:
    """The `Relay` of the live-update hub on PostgreSQL."""

    def __init__(
        self,
        url: str,
        *,
        channel: str = CHANNEL,
        on_error: Callable[[], None] = lambda: None,
        backoff_max: float = 5.0,
    ) -> None:
        self._dsn = asyncpg_dsn(url)
        self._channel = channel
        self._on_error = on_error
        self._backoff_max = backoff_max
        self._outgoing: deque[str] = deque(maxlen=OUTGOING_MAX)
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._deliver: Callable[[str], None] = lambda payload: None
        self._resync: Callable[[], None] = lambda: None
        self.connected = asyncio.Event()  # set while LISTENing (tests wait on it)
        self.server_pid: int | None = None  # the backend LISTENing (tests terminate it)

    def start(self, deliver: Callable[[str], None], resync: Callable[[], None]) -> None:
        self._deliver, self._resync = deliver, resync
        if self._task is None:
            self._stopping = False
            self._task = asyncio.create_task(self._run(), name="live-relay")

    def send(self, payload: str) -> None:
        if len(self._outgoing) == self._outgoing.maxlen:
            self._on_error()  # the oldest is dropped: the database has been away a while
        self._outgoing.append(payload)
        self._wake.set()

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        task, self._task = self._task, None
        if task is None:
            return
        try:
            await asyncio.wait_for(task, timeout=CONNECT_TIMEOUT + 1)
        except TimeoutError:  # wait_for cancelled it (a connect that hangs)
            log.warning("the live-update relay did not stop in time; cancelled")

    # --- inside ------------------------------------------------------------------------------
    async def _run(self) -> None:
        attempt = 0
        first = True
        while not self._stopping:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(self._dsn, timeout=CONNECT_TIMEOUT)
                conn.add_termination_listener(lambda _c: self._wake.set())
                await conn.add_listener(self._channel, self._heard)
                self.server_pid = conn.get_server_pid()
                self.connected.set()
                if not first:
                    log.info("live-update relay listening again on %s", self._channel)
                    self._resync()
                first, attempt = False, 0
                await self._serve(conn)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._on_error()
                log.warning("live-update relay: %s: %s", type(exc).__name__, exc)
            finally:
                self.connected.clear()
                if conn is not None:
                    await self._close(conn)
            if self._stopping:
                break
            delay = min(self._backoff_max, 0.1 * 2**attempt) * random.uniform(0.5, 1.0)
            attempt += 1
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wait_stop(), timeout=delay)

    async def _wait_stop(self) -> None:
        while not self._stopping:
            self._wake.clear()
            await self._wake.wait()

    async def _serve(self, conn: asyncpg.Connection) -> None:
        """Send what is queued; between sends, wait (checking the connection now and then)."""
        while not self._stopping:
            if conn.is_closed():
                raise ConnectionError("the LISTEN connection was closed")
            if self._outgoing:
                batch = [self._outgoing.popleft() for _ in range(min(BATCH, len(self._outgoing)))]
                try:
                    await conn.execute("SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p", self._channel, batch)
                except Exception:
                    self._outgoing.extendleft(reversed(batch))  # sent again after reconnecting
                    raise
                continue
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=HEALTH_EVERY)
            except TimeoutError:
                await conn.execute("SELECT 1")  # a half-open connection shows up here

    def _heard(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        try:
            self._deliver(payload)
        except Exception:
            self._on_error()
            log.exception("live-update relay: delivering a message failed")

    @staticmethod
    async def _close(conn: asyncpg.Connection) -> None:
        try:
            await asyncio.wait_for(conn.close(), timeout=2)
        except Exception:
            conn.terminate()


__all__ = ["CHANNEL", "PgRelay", "asyncpg_dsn"]
