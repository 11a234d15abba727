"""What every store module shares: the clock, transactions, and the error boundary."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Literal, ParamSpec, TypeVar

from tortoise import connections
from tortoise.exceptions import IntegrityError, OperationalError, ValidationError
from tortoise.transactions import in_transaction

from bot.store import StoreBusy, StoreConflict, StoreError, StoreInvalid, StoreUnavailable
from bot.store.models import KeyValue

P = ParamSpec("P")
T = TypeVar("T")

_ORM_ERRORS = (IntegrityError, OperationalError, ValidationError)


def now() -> datetime:
    return datetime.now(UTC)


# --- plain reads ----------------------------------------------------------------------------------
# Pages read with plain SELECTs where building ORM rows (and parsing their timestamps and JSON
# through the ORM) cost several times the query.


async def select(sql: str) -> Sequence[Any]:
    """The rows of a plain SELECT on the store's connection (the caller's transaction, if any);
    each row indexable by position. Values are inlined by the caller: ints only (`inline_ids`)."""
    _, rows = await connections.get("default").execute_query(sql)
    return rows  # type: ignore[no-any-return]


def inline_ids(ids: Iterable[int]) -> str:
    """Ids for an `IN (…)` list: ints only, so safe to inline."""
    return ", ".join(str(int(i)) for i in ids)


def timestamp(value: object) -> datetime | None:
    """A timestamp as the driver returns it: a datetime (PostgreSQL) or the stored text (SQLite)."""
    if type(value) is str:  # SQLite's text first: a page parses hundreds
        moment = datetime.fromisoformat(value)
    elif value is None:
        return None
    else:
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def stored_at(value: object) -> datetime:
    """A NOT NULL timestamp column (see `timestamp`)."""
    moment = timestamp(value)
    if moment is None:
        raise StoreInvalid("a NOT NULL timestamp column held NULL")
    return moment


def translate(exc: Exception) -> StoreError:
    """The store's exception for one of the ORM's (IntegrityError is an OperationalError there)."""
    if isinstance(exc, IntegrityError):
        return StoreConflict(str(exc))
    if isinstance(exc, ValidationError):
        return StoreInvalid(str(exc))
    text = str(exc).lower()
    if "deadlock" in text or "locked" in text:
        return StoreBusy(str(exc))
    return StoreUnavailable(str(exc))


def boundary(fn: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, Coroutine[Any, Any, T]]:
    """Raise the store's exceptions instead of the ORM's from a public store function."""

    @functools.wraps(fn)
    async def call(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await fn(*args, **kwargs)
        except _ORM_ERRORS as exc:
            raise translate(exc) from exc

    return call


# The PostgreSQL advisory lock that orders topic routing: transactions that route conversations by
# their topics' priority and team hold it shared; one that changes those values holds it alone.
TOPIC_ROUTING_LOCK = 0x1B0C_7091


@contextlib.asynccontextmanager
async def transaction(*, topics: Literal["route", "change"] | None = None) -> AsyncIterator[None]:
    """One database transaction; store calls made by this task inside it join it.

    `topics`: on PostgreSQL, "route" (it may route conversations by their topics: ingest, an
    agent's topic change) waits while a "change" (an admin changing a topic's priority or team,
    which reroutes that topic's open conversations) runs, and the other way round — taken first
    thing, so it never deadlocks, and no conversation is routed by values an admin is replacing.
    Raises the store's exceptions, including for a commit the database refuses."""
    try:
        async with in_transaction("default") as conn:
            dialect = conn.capabilities.dialect
            if dialect == "sqlite":
                # take the write lock up front (busy_timeout waits for it): a transaction that
                # read first and wrote later would get BUSY on its stale snapshot instead
                await conn.execute_query("UPDATE key_values SET value = value WHERE 0")
            elif topics is not None and dialect == "postgres":
                lock = "pg_advisory_xact_lock_shared" if topics == "route" else "pg_advisory_xact_lock"
                await conn.execute_query(f"SELECT {lock}($1)", [TOPIC_ROUTING_LOCK])
            yield
    except _ORM_ERRORS as exc:
        raise translate(exc) from exc


@boundary
async def ping() -> bool:
    """Whether the store answers a query (raises when it does not)."""
    await KeyValue.filter(key="__ping__").exists()
    return True
