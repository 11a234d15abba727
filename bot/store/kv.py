"""Small key/value state: poll cursors and the like (one row per key)."""

from __future__ import annotations

from bot.store import models
from bot.store.base import boundary


@boundary
async def kv_get(key: str) -> str | None:
    row = await models.KeyValue.filter(key=key).first()
    return row.value if row else None


@boundary
async def kv_set(key: str, value: str) -> None:
    if not await models.KeyValue.filter(key=key).update(value=value):
        await models.KeyValue.create(key=key, value=value)
