"""Retrying a write that lost a lock race: the database chose it as a deadlock's victim, or a lock
wait timed out. The whole transaction ran back, so running the call again is safe."""

from __future__ import annotations

import asyncio
import functools
import random
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

from bot.store import StoreBusy

P = ParamSpec("P")
T = TypeVar("T")

ATTEMPTS = 8  # about 1.3 s of backoff in all before the caller hears "try again"


def when_busy(fn: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, Coroutine[Any, Any, T]]:
    """Run `fn` again, with exponential backoff and jitter, when its transaction was busy.

    `fn` must do all its writes in transactions it opens itself (a retry must not repeat a
    write already committed)."""

    @functools.wraps(fn)
    async def call(*args: P.args, **kwargs: P.kwargs) -> T:
        for attempt in range(ATTEMPTS - 1):
            try:
                return await fn(*args, **kwargs)
            except StoreBusy:
                await asyncio.sleep(random.uniform(0.005, 0.01) * 2**attempt)
        return await fn(*args, **kwargs)

    return call
