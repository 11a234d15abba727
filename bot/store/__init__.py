"""The store: the only code that talks to the database (through Tortoise ORM).

It hands out the frozen records of `bot.domain` and takes them (or plain values) back; no ORM row
ever leaves this package. One module per concept: `conversations`, `automations`, `labels`,
`outbox`, `kv` and `ingest` (the set-based writes of a group commit); `db` opens and migrates,
`models` holds the tables, `repo` re-exports every query under one name.

The database's errors are translated here, at the one boundary, into the classes below, so the
rest of the bot never imports the ORM to catch them.
"""

from __future__ import annotations


class StoreError(Exception):
    """Something the store could not do; the message is the database's own wording."""


class StoreConflict(StoreError):
    """A uniqueness rule refused the change: the same thing exists already (or was just made by
    another worker). The transaction is rolled back."""


class StoreUnavailable(StoreError):
    """The database did not answer or refused the query (down, missing table, locked)."""


class StoreBusy(StoreUnavailable):
    """A lock wait or deadlock made the database give up; trying again shortly usually works."""


class StoreInvalid(StoreError):
    """A value the store cannot hold (too long, wrong type): the caller's input."""


__all__ = ["StoreBusy", "StoreConflict", "StoreError", "StoreInvalid", "StoreUnavailable"]
