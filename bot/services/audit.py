"""The audit log: who changed what. The services call `note` inside each change's transaction (one
helper for all of them); `Audit` reads it for the front-ends. Nothing can change or remove an entry.

An entry's summary is written by the service from what changed, never from free text a secret
could hide in: a new password is recorded as "password changed", never its text.
"""

from __future__ import annotations

from bot.domain import AuditEntry
from bot.errors import Invalid
from bot.store import audit as store

KINDS: tuple[str, ...] = (
    *(f"automation.{c}" for c in ("created", "updated", "enabled", "disabled", "deleted", "rolled_back")),
    "tag.created",
    "tag.deleted",
    "topic.created",
    "topic.updated",
    "topic.deleted",
    "reason.created",
    "reason.deleted",
    "team.created",
    "team.deleted",
    "user.created",
    "user.updated",
    "user.deactivated",
    *(f"conversation.{c}" for c in ("resolved", "reopened", "assigned", "topics_changed", "replied")),
)
_KINDS = frozenset(KINDS)
MAX_TARGET = 200
MAX_SUMMARY = 500
# Actors that are not people: an automation (`automation:<id>`) and the CRM writing back.
_MACHINES = ("automation:", "salesforce")


def by_person(actor: str) -> bool:
    """Whether `actor` is a person (or a token acting for one), whose actions the log keeps."""
    return not actor.startswith(_MACHINES)


def _fit(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


async def note(actor: str, kind: str, target: str, summary: str) -> None:
    """Record one change in the current transaction. `kind` is one of KINDS."""
    if kind not in _KINDS:
        raise ValueError(f"unknown audit kind {kind!r}")  # a programming error, not a user's
    await store.record(
        actor=_fit(actor, 100), kind=kind, target=_fit(target, MAX_TARGET), summary=_fit(summary, MAX_SUMMARY)
    )


class Audit:
    """Reads of the audit log."""

    async def entries(
        self, *, actor: str | None = None, kind: str | None = None, before_id: int | None = None, limit: int = 50
    ) -> list[AuditEntry]:
        """Newest first. An unknown `kind` is refused (naming the kinds); an actor is any text."""
        if kind is not None and kind not in _KINDS:
            raise Invalid("kind", f'unknown kind "{kind}" — use one of: {", ".join(KINDS)}')
        return await store.entries(actor=actor, kind=kind, before_id=before_id, limit=limit)
