"""What every store module shares: the clock, transactions, and the error boundary."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import UTC, datetime
from typing import Any, ParamSpec, TypeVar

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


@contextlib.asynccontextmanager
async def transaction() -> AsyncIterator[None]:
    """One database transaction; store calls made by this task inside it join it.

    Raises the store's exceptions, including for a commit the database refuses."""
    try:
        async with in_transaction("default") as conn:
            if conn.capabilities.dialect == "sqlite":
                # take the write lock up front (busy_timeout waits for it): a transaction that
                # read first and wrote later would get BUSY on its stale snapshot instead
                await conn.execute_query("UPDATE key_values SET value = value WHERE 0")
            yield
    except _ORM_ERRORS as exc:
        raise translate(exc) from exc


@boundary
async def ping() -> bool:
    """Whether the store answers a query (raises when it does not)."""
    await KeyValue.filter(key="__ping__").exists()
    return True
