"""A throw-away store for a benchmark: a SQLite file in the run's directory, or a fresh
PostgreSQL database dropped when the benchmark is done with it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit


@asynccontextmanager
async def bench_store(kind: str, *, name: str, tmp: Path, postgres: str) -> AsyncIterator[str]:
    """The URL of an empty store of `kind` ("sqlite" or "postgres"; `postgres` is the server's URL)."""
    if kind == "sqlite":
        yield f"sqlite://{tmp}/{name}.sqlite3"
        return
    import asyncpg

    database = f"{name.replace('-', '_')}_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(postgres)
    try:
        await admin.execute(f'CREATE DATABASE "{database}"')
    finally:
        await admin.close()
    try:
        yield urlunsplit(urlsplit(postgres)._replace(path=f"/{database}"))
    finally:
        conn = await asyncpg.connect(postgres)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        finally:
            await conn.close()
