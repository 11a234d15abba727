"""Opening, migrating and closing the store. The Tortoise config is built here only."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from tortoise import Tortoise
from tortoise.context import TortoiseContext

APP = "inbox"
MODELS = "bot.store.models"


def _db_url(url: str, *, pool_min: int, pool_max: int) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    if parts.scheme == "sqlite":
        query.setdefault("journal_mode", "WAL")
        query.setdefault("busy_timeout", "10000")
    else:
        query.setdefault("minsize", str(pool_min))
        query.setdefault("maxsize", str(pool_max))
    return urlunsplit(parts._replace(query=urlencode(query)))


def tortoise_config(url: str, *, pool_min: int = 1, pool_max: int = 10) -> dict[str, Any]:
    """The Tortoise config dict for our one app, with migrations in the top-level package."""
    return {
        "connections": {"default": _db_url(url, pool_min=pool_min, pool_max=pool_max)},
        "apps": {APP: {"models": [MODELS], "default_connection": "default", "migrations": "migrations"}},
        "use_tz": True,
        "timezone": "UTC",
    }


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL; None for other stores and in-memory SQLite."""
    if url.startswith("sqlite://"):
        path = url[len("sqlite://") :].split("?", 1)[0]
        if path and path != ":memory:":
            return Path(path)
    return None


def _prepare(url: str) -> None:
    """Create the SQLite file's folder (only when the store is really opened)."""
    file = sqlite_file(url)
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)


def _forget_compiled_queries() -> None:
    # Tortoise caches compiled INSERT/UPDATE SQL per (connection alias, table), not per dialect:
    # a process that opens SQLite and later PostgreSQL (the test suite) would send `?` placeholders
    # to PostgreSQL. Dropping the cache on every open costs one recompile per table.
    from tortoise.backends.base.executor import EXECUTOR_CACHE

    EXECUTOR_CACHE.clear()


async def migrate(url: str) -> None:
    """Apply pending migrations from `migrations/`."""
    _prepare(url)
    _forget_compiled_queries()
    from tortoise.migrations.api import migrate as run_migrations

    await run_migrations(config=tortoise_config(url))
    await Tortoise.close_connections()


async def pending_migrations(url: str) -> list[str]:
    """Names of the migrations not applied yet (`inbox-bot check`). Only reads: a SQLite file that
    does not exist is not created (every migration is pending; they are planned against an empty
    in-memory store instead)."""
    import io

    from tortoise.migrations.api import plan

    file = sqlite_file(url)
    if file is not None and not file.exists():
        url = "sqlite://:memory:"
    _forget_compiled_queries()
    with contextlib.redirect_stdout(io.StringIO()):  # plan() prints its lines too
        lines = await plan(config=tortoise_config(url))
    await Tortoise.close_connections()
    return [line[2:] for line in lines if line.startswith("+ ")]


@contextlib.asynccontextmanager
async def open_store(url: str, *, pool_min: int = 1, pool_max: int = 10) -> AsyncIterator[TortoiseContext]:
    """Connect for the lifetime of the block; the ORM context stays active inside it."""
    _prepare(url)
    _forget_compiled_queries()
    ctx = await Tortoise.init(config=tortoise_config(url, pool_min=pool_min, pool_max=pool_max))
    try:
        yield ctx
    finally:
        await ctx.close_connections()


def tortoise_cli_config() -> dict[str, Any]:
    """Config for the `tortoise` CLI (`tortoise -c bot.store.db.TORTOISE_ORM makemigrations`)."""
    import os

    return tortoise_config(os.environ.get("INBOX_DATABASE_URL", "sqlite://data/dev.sqlite3"))


def __getattr__(name: str) -> Any:
    # `tortoise -c bot.store.db.TORTOISE_ORM …` reads this; built on access, not at import.
    if name == "TORTOISE_ORM":
        return tortoise_cli_config()
    raise AttributeError(name)
