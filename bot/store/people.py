"""Users, teams and the sign-in lockout counter: the store side of people."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from bot.domain import Role, Team, User
from bot.store import StoreConflict, models
from bot.store.base import boundary, inline_ids, select, stored_at


def _team(row: models.Team) -> Team:
    return Team(id=row.id, name=row.name, created_at=row.created_at)


async def _users(rows: Sequence[models.User]) -> list[User]:
    ids = [r.id for r in rows]
    teams: dict[int, list[str]] = {i: [] for i in ids}
    if ids:
        links = await models.UserTeam.filter(user_id__in=ids).order_by("team__key").values_list("user_id", "team__name")
        for uid, name in links:
            teams[uid].append(name)
    return [
        User(
            id=r.id,
            email=r.email,
            name=r.name,
            role=Role(r.role),
            teams=tuple(teams[r.id]),
            active=r.active,
            language=r.language,
            session_epoch=r.session_epoch,
            created_at=r.created_at,
        )
        for r in rows
    ]


# --- teams ---------------------------------------------------------------------------------------


@boundary
async def list_teams() -> list[Team]:
    rows = await select("SELECT id, name, created_at FROM teams ORDER BY key")
    return [Team(id=int(r[0]), name=r[1], created_at=stored_at(r[2])) for r in rows]


@boundary
async def find_teams(names: Sequence[str]) -> dict[str, Team]:
    """Teams by case-folded name; names not found are absent."""
    keys = [n.casefold() for n in names]
    return {r.key: _team(r) for r in await models.Team.filter(key__in=keys)}


@boundary
async def create_team(name: str) -> Team:
    try:
        return _team(await models.Team.create(name=name, key=name.casefold()))
    except IntegrityError:
        raise StoreConflict(f"team {name!r} exists") from None


@boundary
async def topics_routed_to(team_id: int) -> list[str]:
    """Names of the topics that route conversations to the team, by name."""
    rows = await models.Label.filter(kind="topic", team_id=team_id).order_by("key").values_list("name", flat=True)
    return [str(name) for name in rows]


@boundary
async def delete_team(team_id: int) -> None:
    """Delete the team; its members leave it, conversations routed to it keep no team. Raises
    StoreConflict while a topic routes to it."""
    await models.Team.filter(id=team_id).delete()


# --- users ---------------------------------------------------------------------------------------


@boundary
async def create_user(*, email: str, name: str, role: Role, password_hash: str, team_ids: Sequence[int]) -> User:
    try:
        async with in_transaction("default"):
            row = await models.User.create(
                email=email, email_key=email.casefold(), name=name, role=role.value, password_hash=password_hash
            )
            await models.UserTeam.bulk_create([models.UserTeam(user_id=row.id, team_id=t) for t in team_ids])
    except IntegrityError:
        raise StoreConflict(f"user {email!r} exists") from None
    (user,) = await _users([row])
    return user


# Users with their teams' names: one row per (user, team), one for a user in no team.
_USERS_WITH_TEAMS = (
    "SELECT u.id, u.email, u.name, u.role, u.active, u.language, u.session_epoch, u.created_at, t.name"
    " FROM users u LEFT JOIN user_teams ut ON ut.user_id = u.id LEFT JOIN teams t ON t.id = ut.team_id"
)


@boundary
async def list_users(*, after_id: int | None = None, limit: int | None = None) -> list[User]:
    page = "SELECT id FROM users"
    if after_id is not None:
        page += f" WHERE id > {int(after_id)}"
    if limit is not None:
        page += f" ORDER BY id LIMIT {max(int(limit), 0)}"
    return _user_records(await select(f"{_USERS_WITH_TEAMS} WHERE u.id IN ({page}) ORDER BY u.id, t.key"))


@boundary
async def get_user(user_id: int) -> User | None:
    """The user, or None. Asked on every page a user opens (who is signed in): one plain SELECT."""
    found = await users_by_id([user_id])
    return found.get(int(user_id))


@boundary
async def users_by_id(user_ids: Sequence[int]) -> dict[int, User]:
    """The users of these ids that exist (one plain SELECT for any number of them)."""
    ids = inline_ids(sorted({int(i) for i in user_ids}))
    if not ids:
        return {}
    rows = await select(f"{_USERS_WITH_TEAMS} WHERE u.id IN ({ids}) ORDER BY u.id, t.key")
    return {u.id: u for u in _user_records(rows)}


def _user_records(rows: Sequence[Any]) -> list[User]:
    """From rows of `_USERS_WITH_TEAMS` ordered by user (then team key)."""
    out: list[User] = []
    for _, group in itertools.groupby(rows, key=lambda r: int(r[0])):
        members = list(group)
        r = members[0]
        out.append(
            User(
                id=int(r[0]),
                email=r[1],
                name=r[2],
                role=Role(r[3]),
                teams=tuple(m[8] for m in members if m[8] is not None),
                active=bool(r[4]),
                language=r[5],
                session_epoch=int(r[6]),
                created_at=stored_at(r[7]),
            )
        )
    return out


@boundary
async def find_user(email: str) -> User | None:
    row = await models.User.filter(email_key=email.casefold()).first()
    return (await _users([row]))[0] if row else None


@boundary
async def password_hash(user_id: int) -> str | None:
    row = await models.User.filter(id=user_id).only("id", "password_hash").first()
    return row.password_hash if row else None


@boundary
async def count_users() -> int:
    return await models.User.all().count()


@boundary
async def update_user(
    user_id: int,
    *,
    name: str | None = None,
    role: Role | None = None,
    active: bool | None = None,
    language: str | None = None,
    clear_language: bool = False,
    password_hash: str | None = None,
    team_ids: Sequence[int] | None = None,
    end_sessions: bool = False,
) -> User | None:
    """Change what is given (None: unchanged); all of it in one transaction."""
    values: dict[str, object] = {}
    if name is not None:
        values["name"] = name
    if role is not None:
        values["role"] = role.value
    if active is not None:
        values["active"] = active
    if language is not None or clear_language:
        values["language"] = language
    if password_hash is not None:
        values["password_hash"] = password_hash
    async with in_transaction("default"):
        row = await models.User.filter(id=user_id).select_for_update().first()
        if row is None:
            return None
        if end_sessions:
            values["session_epoch"] = row.session_epoch + 1
        if values:
            await models.User.filter(id=user_id).update(**values)
        if team_ids is not None:
            await models.UserTeam.filter(user_id=user_id).delete()
            await models.UserTeam.bulk_create([models.UserTeam(user_id=user_id, team_id=t) for t in team_ids])
    return await get_user(user_id)


# --- the sign-in lockout counter -------------------------------------------------------------------


@boundary
async def sign_in_locked_until(email: str, *, now: datetime) -> datetime | None:
    """Until when sign-in for this email is locked, or None."""
    row = await models.SignInLock.filter(email_key=email.casefold()).first()
    if row is None or row.locked_until is None or row.locked_until <= now:
        return None
    return row.locked_until


@boundary
async def record_sign_in_failure(
    email: str, *, now: datetime, window: timedelta, limit: int, lock_for: timedelta
) -> datetime | None:
    """Count one failed sign-in; `limit` failures within `window` lock sign-in for `lock_for`.
    Returns the lock's end when this failure set it (or one was set already), else None."""
    key = email.casefold()
    for _ in range(3):
        try:
            async with in_transaction("default"):
                row = await models.SignInLock.filter(email_key=key).select_for_update().first()
                if row is None:
                    await models.SignInLock.create(email_key=key, failures=1, window_start=now)
                    return None
                if row.locked_until is not None and row.locked_until > now:
                    return row.locked_until
                if now - row.window_start > window:
                    failures, start = 1, now
                else:
                    failures, start = row.failures + 1, row.window_start
                locked = now + lock_for if failures >= limit else None
                await models.SignInLock.filter(email_key=key).update(
                    failures=0 if locked else failures, window_start=now if locked else start, locked_until=locked
                )
                return locked
        except IntegrityError:  # two first failures at once: the other one created the row
            continue
    return None


@boundary
async def clear_sign_in_failures(email: str) -> None:
    await models.SignInLock.filter(email_key=email.casefold()).delete()
