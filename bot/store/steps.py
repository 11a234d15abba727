"""Statements as values: a store operation written once, as a generator that yields each SQL
statement and receives its rows, run on either database.

- `run` drives it through Tortoise's current connection (PostgreSQL, or SQLite inside a
  transaction someone else opened): one await per statement.
- `run_transaction` runs a whole transaction. On SQLite it hands the generator to the
  connection's own thread in **one** call — BEGIN IMMEDIATE, every statement, COMMIT — instead of
  a thread hand-off per statement: under load each hand-off waits for a turn of a busy event loop,
  and a dozen of them per ingest round were most of ingest's latency. On PostgreSQL it is
  `transaction()` around `run`.
- `run_stream` runs transactions one after another for as long as work keeps coming. On SQLite
  the connection's thread takes the next one as soon as it commits the last, without waiting for
  a turn of the event loop in between (ingest's group commits: the thread commits batch k while
  the loop answers batch k-1 and reads batch k+1).

Statements use `?` placeholders; `run` numbers them (`$1`, `$2` …) for PostgreSQL. SQL text
never holds a literal `?` of its own: values always travel as parameters.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time
from collections.abc import Callable, Generator, Sequence
from typing import Any, Literal, TypeVar

import aiosqlite
from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient, TransactionalDBClient

from bot.store import StoreBusy, StoreConflict, StoreUnavailable
from bot.store.base import boundary, transaction

T = TypeVar("T")
K = TypeVar("K")
Statement = tuple[str, Sequence[Any]]
Row = Sequence[Any]
# yields statements, receives each one's rows, returns the operation's result
Steps = Generator[Statement, list[Row], T]

_MARK = re.compile(r"\?")


def marks(n: int) -> str:
    """`?, ?, …` for an IN list or a row of `n` values."""
    return ", ".join("?" * n)


def rows_of(n_columns: int, n_rows: int) -> str:
    """`(?, ?), (?, ?)` for a multi-row VALUES."""
    row = f"({marks(n_columns)})"
    return ", ".join([row] * n_rows)


def is_sqlite(conn: BaseDBAsyncClient | None = None) -> bool:
    return (conn or connections.get("default")).capabilities.dialect == "sqlite"


def _numbered(sql: str) -> str:
    counter = iter(range(1, 1_000_000))
    return _MARK.sub(lambda _: f"${next(counter)}", sql)


@boundary
async def run(steps: Steps[T], *, conn: BaseDBAsyncClient | None = None) -> T:
    """Drive `steps` through Tortoise (the current transaction's connection inside one)."""
    conn = conn or connections.get("default")
    sqlite = is_sqlite(conn)
    try:
        statement = next(steps)
        while True:
            sql, values = statement
            # execute_query_dict: PostgreSQL's execute_query drops the rows of an INSERT … RETURNING
            got = await conn.execute_query_dict(sql if sqlite else _numbered(sql), list(values))
            statement = steps.send([tuple(row.values()) for row in got])
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


def _run_sync(con: sqlite3.Connection, make: Callable[[], Steps[T]]) -> T:
    """On SQLite's thread: one whole transaction."""
    con.execute("BEGIN IMMEDIATE")  # the write lock up front (busy_timeout waits for it)
    try:
        steps = make()
        try:
            statement = next(steps)
            while True:
                statement = steps.send(con.execute(*statement).fetchall())
        except StopIteration as done:
            result: T = done.value
        con.execute("COMMIT")
    except BaseException:
        if con.in_transaction:
            con.execute("ROLLBACK")
        raise
    return result


def one_hand_off(conn: BaseDBAsyncClient) -> bool:
    """Whether `run_transaction` runs on `conn` as one call on SQLite's thread: SQLite, not inside
    someone's transaction, and aiosqlite offers `_execute` (its "run this on the connection's
    thread": aiosqlite has no public one) and `_conn` (the sqlite3 connection)."""
    return (
        is_sqlite(conn)
        and not isinstance(conn, TransactionalDBClient)
        and hasattr(aiosqlite.Connection, "_execute")
        and hasattr(aiosqlite.Connection, "_conn")
    )


async def run_transaction(make: Callable[[], Steps[T]], *, topics: Literal["route", "change"] | None = None) -> T:
    """`make()`'s statements as one transaction, committed when this returns (see the module).
    `topics` as for `transaction`."""
    conn = connections.get("default")
    if not one_hand_off(conn):
        async with transaction(topics=topics):
            return await run(make())
    try:
        # the client's lock: no other statement or transaction of this process runs meanwhile
        async with conn.acquire_connection() as held:
            return await held._execute(_run_sync, held._conn, make)  # type: ignore[no-any-return]
    except (sqlite3.IntegrityError, sqlite3.OperationalError) as exc:
        raise _store_error(exc) from exc


def _store_error(exc: Exception) -> Exception:
    """The store's own error for a conflict or an unavailable database; anything else as it is."""
    ours: Exception
    if isinstance(exc, sqlite3.IntegrityError):
        ours = StoreConflict(str(exc))
    elif isinstance(exc, sqlite3.OperationalError):
        text = str(exc).lower()
        ours = (StoreBusy if "locked" in text or "busy" in text else StoreUnavailable)(str(exc))
    else:
        return exc
    ours.__cause__ = exc
    return ours


# What a stream takes next: a key for `done` and the transaction's statements, or None when idle.
Take = Callable[[], "tuple[K, Callable[[], Steps[T]]] | None"]
Done = Callable[[K, "T | Exception"], None]


async def run_stream(
    take: Take[K, T],
    done: Done[K, T],
    *,
    topics: Literal["route", "change"] | None = None,
    budget: float = 0.005,
    linger: Callable[[float], bool] | None = None,
) -> None:
    """Transactions one after another while `take()` gives work; after each commit (or failure)
    `done(key, result or error)` runs on the event loop, in order. Stops at the first failure, so
    the caller can take that work apart. `take` runs on SQLite's thread: it must only read what
    other threads append (a deque's popleft). On SQLite the thread keeps the connection for at most
    `budget` seconds at a time (a batch or two), so a page's reads still get their turn every few
    milliseconds under a steady stream. `linger(seconds)`, when given, is called on SQLite's
    thread when `take` has nothing: it waits at most that long for more (True if some came), so
    work that arrives a moment later is taken without going back through the event loop."""
    conn = connections.get("default")
    if not one_hand_off(conn):
        while (work := take()) is not None:
            key, make = work
            try:
                result = await run_transaction(make, topics=topics)
            except Exception as exc:
                done(key, exc)
                return
            done(key, result)
        return
    loop = asyncio.get_running_loop()
    more = True
    while more:
        async with conn.acquire_connection() as held:
            more = await held._execute(_stream_sync, held._conn, take, done, loop, budget, linger)


LINGER_SECONDS = 0.001  # how long the thread waits for more work before handing the connection back


def _stream_sync(
    con: sqlite3.Connection,
    take: Take[K, T],
    done: Done[K, T],
    loop: asyncio.AbstractEventLoop,
    budget: float,
    linger: Callable[[float], bool] | None,
) -> bool:
    """On SQLite's thread: transactions until `take` has none (False), one fails (False) or the
    budget is spent (True: there may be more)."""
    deadline = time.monotonic() + budget
    while (left := deadline - time.monotonic()) > 0:
        work = take()
        if work is None and linger is not None and linger(min(LINGER_SECONDS, left)):
            work = take()
        if work is None:
            return False
        key, make = work
        try:
            result = _run_sync(con, make)
        except Exception as exc:
            loop.call_soon_threadsafe(done, key, _store_error(exc))
            return False
        loop.call_soon_threadsafe(done, key, result)
    return True
