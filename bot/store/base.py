"""What every store module shares: the clock, transactions, and the error boundary."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import UTC, datetime
from typing import Any, Literal, ParamSpec, TypeVar

from tortoise.exceptions import IntegrityError, OperationalError, ValidationError
from tortoise.transactions import in_transaction

from bot.store import StoreBusy, StoreConflict, StoreError, StoreInvalid, StoreUnavailable
from bot.store.models import KeyValue

P = ParamSpec("P")
T = TypeVar("T")

_ORM_ERRORS = (IntegrityError, OperationalError, ValidationError)


def now() -> datetime:
    return datetime.now(UTC)


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
