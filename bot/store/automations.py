"""Automations, their revisions, their runs, and the counter every worker watches to reload them.

Each change to an automation bumps its `revision` column in the same statement that changes it;
the caller records the revision (`record_revision`) in the same transaction."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from tortoise import connections
from tortoise.exceptions import IntegrityError
from tortoise.expressions import F
from tortoise.fields.data import JSON_LOADS
from tortoise.transactions import in_transaction

from bot import domain
from bot.domain import Action, ActionType, RevisionChange
from bot.store import models, records
from bot.store.base import boundary, now, timestamp

AUTOMATIONS_REVISION = "automations_revision"
# The largest automation id and revision the columns hold (32-bit): a larger one names nothing,
# and PostgreSQL would refuse it as a query parameter.
MAX_INT = 2**31 - 1


def _actions_json(actions: Sequence[Action | Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The stored form of actions, one shape for all (`{"type": "tag", "tag": "closing"}`)."""
    return [(a if isinstance(a, Action) else Action.from_json(a)).to_json() for a in actions]


def _columns(
    *,
    name: str,
    keywords: Sequence[str],
    match: str,
    actions: Sequence[Action | Mapping[str, Any]],
    channels: Sequence[str],
    types: Sequence[str],
    enabled: bool,
    key: str | None,
) -> dict[str, Any]:
    return {
        "name": name,
        "key": key or name.casefold(),
        "keywords": list(keywords),
        "match": str(match),
        "actions": _actions_json(actions),
        "channels": list(channels),
        "types": [str(t) for t in types],
        "enabled": enabled,
    }


@boundary
async def list_automations(*, after_id: int | None = None, limit: int | None = None) -> list[domain.Automation]:
    """Oldest first; `after_id` is the page cursor."""
    qs = models.Automation.all().order_by("id")
    if after_id is not None:
        qs = qs.filter(id__gt=after_id)
    if limit is not None:
        qs = qs.limit(limit)
    return [records.automation(a) for a in await qs]


_COLUMNS = "id, name, keywords, match, actions, channels, types, enabled, created_by, created_at, updated_at, revision"


def _json(value: Any) -> Any:
    return JSON_LOADS(value) if isinstance(value, str | bytes) else value


def _stamp(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def _from_row(row: Any) -> domain.Automation:
    """A record from a row of `_COLUMNS`, as both databases return it (JSON as text on both,
    timestamps as text on SQLite): thousands at start-up without building an ORM object each."""
    return domain.Automation(
        id=int(row[0]),
        name=row[1],
        keywords=tuple(_json(row[2])),
        match=domain.MatchMode(row[3]),
        actions=records.actions(_json(row[4])),
        channels=tuple(_json(row[5]) or ()),
        types=tuple(domain.ConversationType(t) for t in _json(row[6]) or ()),
        enabled=bool(row[7]),
        created_by=row[8],
        created_at=_stamp(row[9]),
        updated_at=_stamp(row[10]),
        revision=int(row[11]),
    )


@boundary
async def enabled_automations() -> list[domain.Automation]:
    """Every enabled automation, oldest first."""
    _, rows = await connections.get("default").execute_query(
        f"SELECT {_COLUMNS} FROM automations WHERE enabled ORDER BY id"
    )
    return [_from_row(row) for row in rows]


@boundary
async def enabled_stamps() -> dict[int, object]:
    """Enabled automation id → when it last changed (as the database returns it: compare, do not
    read). One light query that tells a worker which automations to reload after a change."""
    conn = connections.get("default")
    _, rows = await conn.execute_query("SELECT id, updated_at FROM automations WHERE enabled")
    return {int(row[0]): row[1] for row in rows}


@boundary
async def automations_by_ids(ids: Sequence[int]) -> list[domain.Automation]:
    """These automations (the ones that still exist), oldest first."""
    if not ids:
        return []
    return [records.automation(a) for a in await models.Automation.filter(id__in=list(ids)).order_by("id")]


@boundary
async def get_automation(automation_id: int) -> domain.Automation | None:
    if automation_id > MAX_INT:
        return None
    row = await models.Automation.filter(id=automation_id).first()
    return records.automation(row) if row else None


@boundary
async def find_automation(name: str) -> domain.Automation | None:
    """By name, case-insensitively."""
    row = await models.Automation.filter(key=name.casefold()).first()
    return records.automation(row) if row else None


@boundary
async def create_automation(
    *,
    name: str,
    keywords: Sequence[str],
    match: str,
    actions: Sequence[Action | Mapping[str, Any]],
    channels: Sequence[str] = (),
    types: Sequence[str] = (),
    enabled: bool = True,
    created_by: str | None = None,
    key: str | None = None,
) -> domain.Automation:
    """Store a validated automation; raises StoreConflict when the name is taken (case-insensitively).

    `actions` are records or their JSON form; `key` defaults to the case-folded name."""
    columns = _columns(
        name=name,
        keywords=keywords,
        match=match,
        actions=actions,
        channels=channels,
        types=types,
        enabled=enabled,
        key=key,
    )
    return records.automation(await models.Automation.create(**columns, created_by=created_by))


@boundary
async def update_automation(
    automation_id: int,
    *,
    name: str,
    keywords: Sequence[str],
    match: str,
    actions: Sequence[Action | Mapping[str, Any]],
    channels: Sequence[str],
    types: Sequence[str],
    enabled: bool,
    key: str | None = None,
) -> domain.Automation | None:
    """Replace an automation's editable fields as its next revision; None when it no longer exists.
    Locks the row (on PostgreSQL) so two changes at once number their revisions one after the other."""
    row = await models.Automation.filter(id=automation_id).select_for_update().first()
    if row is None:
        return None
    columns = _columns(
        name=name,
        keywords=keywords,
        match=match,
        actions=actions,
        channels=channels,
        types=types,
        enabled=enabled,
        key=key,
    )
    for column, value in columns.items():
        setattr(row, column, value)
    row.revision += 1
    await row.save(update_fields=[*columns, "revision", "updated_at"])
    return records.automation(row)


@boundary
async def save_automation(a: domain.Automation) -> domain.Automation | None:
    """Store the record's editable fields; None when the automation no longer exists."""
    return await update_automation(
        a.id,
        name=a.name,
        keywords=a.keywords,
        match=a.match,
        actions=a.actions,
        channels=a.channels,
        types=a.types,
        enabled=a.enabled,
    )


@boundary
async def set_automation_enabled(automation_id: int, enabled: bool) -> domain.Automation | None:
    """Enable or disable, as the automation's next revision; None when it no longer exists."""
    qs = models.Automation.filter(id=automation_id)
    if not await qs.update(enabled=enabled, revision=F("revision") + 1, updated_at=now()):
        return None
    return await get_automation(automation_id)


@boundary
async def delete_automation(automation_id: int) -> domain.Automation | None:
    """Delete the automation; its runs and revisions stay. Returns it as of its deletion (its
    next revision), or None when it no longer existed."""
    row = await models.Automation.filter(id=automation_id).select_for_update().first()
    if row is None:
        return None
    await models.Automation.filter(id=automation_id).delete()
    row.revision += 1
    return records.automation(row)


def snapshot(a: domain.Automation) -> dict[str, Any]:
    """The automation's JSON form (as the API shows it), kept in a revision."""
    return {
        "id": a.id,
        "name": a.name,
        "keywords": list(a.keywords),
        "match": a.match.value,
        "actions": [action.to_json() for action in a.actions],
        "channels": list(a.channels),
        "types": [t.value for t in a.types],
        "enabled": a.enabled,
        "created_at": _iso(a.created_at),
        "updated_at": _iso(a.updated_at),
    }


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


@boundary
async def record_revision(a: domain.Automation, change: RevisionChange, actor: str) -> domain.AutomationRevision:
    """Keep `a` (as returned by the change) as its revision `a.revision`; call it in the change's
    transaction. Raises StoreConflict when that revision exists (a concurrent change won)."""
    row = await models.AutomationRevision.create(
        automation_id=a.id, revision=a.revision, change=change.value, actor=actor, automation=snapshot(a)
    )
    return records.revision(row)


@boundary
async def list_revisions(
    automation_id: int, *, before: int | None = None, limit: int = 50
) -> list[domain.AutomationRevision]:
    """Newest first; `before` (a revision number) is the page cursor. Kept after deletion."""
    if automation_id > MAX_INT:
        return []
    qs = models.AutomationRevision.filter(automation_id=automation_id)
    if before is not None:
        qs = qs.filter(revision__lt=min(before, MAX_INT))
    return [records.revision(r) for r in await qs.order_by("-revision").limit(limit)]


@boundary
async def has_revisions() -> bool:
    """Whether any automation was ever stored (each one has at least one revision, kept after it
    is deleted; those stored before revisions were kept got one when the store was upgraded)."""
    _, rows = await connections.get("default").execute_query("SELECT 1 FROM automation_revisions LIMIT 1")
    return bool(rows)


@boundary
async def revisions_until(at: datetime) -> list[domain.AutomationRevision]:
    """Every revision of every automation made at or before `at`, by automation then revision."""
    # One plain SELECT (each conversation page asks, to explain its messages): ORM rows cost
    # several times the query. Few revisions come after a conversation: filtered here.
    _, rows = await connections.get("default").execute_query(
        "SELECT automation_id, revision, change, actor, automation, created_at FROM automation_revisions"
        " ORDER BY automation_id, revision"
    )
    out: list[domain.AutomationRevision] = []
    for row in rows:
        made = timestamp(row[5])
        if made is not None and made <= at:
            out.append(
                domain.AutomationRevision(
                    automation_id=int(row[0]),
                    revision=int(row[1]),
                    change=domain.RevisionChange(row[2]),
                    by=row[3],
                    at=made,
                    automation=dict(_json(row[4])),
                )
            )
    return out


def automation_of(r: domain.AutomationRevision) -> domain.Automation:
    """The automation as the revision `r` kept it (its JSON form back into a record)."""
    a = r.automation
    return domain.Automation(
        id=r.automation_id,
        name=str(a["name"]),
        keywords=tuple(a.get("keywords", ())),
        match=domain.MatchMode(a.get("match", "any")),
        actions=records.actions(a.get("actions", ())),
        channels=tuple(a.get("channels", ())),
        types=tuple(domain.ConversationType(t) for t in a.get("types", ())),
        enabled=bool(a.get("enabled", True)),
        created_by=None,
        created_at=datetime.fromisoformat(str(a["created_at"]).replace("Z", "+00:00")),
        updated_at=datetime.fromisoformat(str(a["updated_at"]).replace("Z", "+00:00")),
        revision=r.revision,
    )


@boundary
async def get_revision(automation_id: int, revision: int) -> domain.AutomationRevision | None:
    if automation_id > MAX_INT or revision > MAX_INT:
        return None
    row = await models.AutomationRevision.filter(automation_id=automation_id, revision=revision).first()
    return records.revision(row) if row else None


@boundary
async def automations_using(kind: str, name: str) -> list[domain.Automation]:
    """Automations whose actions name this tag/topic/reason (case-insensitively)."""
    action_type = {"tag": ActionType.TAG, "topic": ActionType.TOPIC, "reason": ActionType.RESOLVE}[kind]
    folded = name.casefold()
    return [
        a
        for a in await list_automations()
        if any(
            act.type == action_type and act.value is not None and act.value.casefold() == folded for act in a.actions
        )
    ]


@boundary
async def list_runs(
    *, automation_id: int | None = None, before_id: int | None = None, limit: int = 50
) -> list[domain.AutomationRun]:
    """Newest first; `before_id` is the page cursor. A deleted automation's runs stay listed."""
    if automation_id is not None and automation_id > MAX_INT:
        return []
    qs = models.AutomationRun.all()
    if automation_id is not None:
        qs = qs.filter(automation_id=automation_id)
    if before_id is not None:
        qs = qs.filter(id__lt=before_id)
    return [records.run(r) for r in await qs.order_by("-id").limit(limit)]


@boundary
async def bump_automations_revision() -> int:
    """Count a change to the automations; every worker reloads when it sees a new revision."""
    for _ in range(3):
        try:
            async with in_transaction("default"):
                row = await models.KeyValue.filter(key=AUTOMATIONS_REVISION).select_for_update().first()
                if row is None:
                    await models.KeyValue.create(key=AUTOMATIONS_REVISION, value="1")
                    return 1
                value = int(row.value) + 1
                await models.KeyValue.filter(key=AUTOMATIONS_REVISION).update(value=str(value))
                return value
        except IntegrityError:  # two first changes at once: the other one created the row
            continue
    raise RuntimeError("could not record the automations revision")


@boundary
async def automations_revision() -> int:
    row = await models.KeyValue.filter(key=AUTOMATIONS_REVISION).first()
    return int(row.value) if row else 0
