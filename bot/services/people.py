"""People: users, roles, teams, passwords and sign-in — the one write path for every front-end.

Passwords are stored only as Argon2id hashes (argon2-cffi's defaults, RFC 9106 low-memory profile);
hashing runs in a thread so the event loop keeps serving. Five failed sign-ins for one email within
15 minutes lock that email's sign-in for 15 minutes, per email and not per IP (it holds behind a
proxy), on every worker (the counter is in the store).
"""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from bot.domain import Role, Team, User
from bot.errors import Conflict, Invalid, Missing, NotFound, SignInLocked, UnknownTeam
from bot.services import audit
from bot.services.live import Hub
from bot.store import StoreConflict
from bot.store import people as store
from bot.store.base import transaction

MIN_PASSWORD = 10
MAX_PASSWORD = 1024
MAX_NAME = 100
MAX_EMAIL = 254
LANGUAGES = ("en", "fr")
LOCK_AFTER = 5
LOCK_WINDOW = timedelta(minutes=15)
LOCK_FOR = timedelta(minutes=15)
DEMO_ADMIN = "admin@example.com"
# one @, something on each side, a dot in the domain, no blanks: enough to catch typos (the inbox
# never sends mail, so deliverability is not ours to check)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

_hasher = PasswordHasher()


def generate_password() -> str:
    """A strong password to print once (16 URL-safe characters, 96 bits)."""
    return secrets.token_urlsafe(12)


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher.hash, password)


async def _verify(hashed: str, password: str) -> bool:
    def check() -> bool:
        try:
            return _hasher.verify(hashed, password)
        except (VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(check)


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class NewUser:
    """A created user, and the generated password when none was given (shown once)."""

    user: User
    password: str | None


def check_email(email: object) -> str:
    if not isinstance(email, str) or not _EMAIL.match(email.strip()) or len(email.strip()) > MAX_EMAIL:
        raise Invalid("email", f'"{email}" is not an email address')
    return email.strip()


def check_password(password: object) -> str:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD:
        raise Invalid("password", f"a password needs at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD or "\x00" in password:
        raise Invalid("password", f"a password has at most {MAX_PASSWORD} characters and no NUL")
    return password


def check_role(role: object) -> Role:
    try:
        return Role(str(role))
    except ValueError:
        raise Invalid("role", f'unknown role "{role}" — use admin or agent') from None


def check_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip() or len(name.strip()) > MAX_NAME or "\x00" in name:
        raise Invalid("name", f"a name has 1–{MAX_NAME} characters")
    return name.strip()


def check_team_name(name: object) -> str:
    """A team name as tags are named: blanks collapsed, at most 100 characters, no comma or double
    quote (so a name can be written in a list or a chat command)."""
    if not isinstance(name, str):
        raise Invalid("name", "a team name is a string")
    clean = " ".join(name.split())
    if not clean:
        raise Missing("name", of="team")
    if len(clean) > MAX_NAME or "\x00" in clean:
        raise Invalid("name", f"team names are at most {MAX_NAME} characters")
    if '"' in clean or "," in clean:
        raise Invalid("name", "team names cannot contain commas or double quotes")
    return clean


def check_language(language: object) -> str | None:
    if language is None:
        return None
    if language not in LANGUAGES:
        raise Invalid("language", f'unknown language "{language}" — use en or fr')
    return str(language)


class People:
    """Users and teams."""

    def __init__(self, *, live: Hub | None = None) -> None:
        # ends the live-update streams of a user whose sessions end (none without a hub)
        self.live = live or Hub()

    # --- teams -----------------------------------------------------------------------------------
    async def list_teams(self) -> list[Team]:
        return await store.list_teams()

    async def add_team(self, name: object, *, actor: str) -> Team:
        clean = check_team_name(name)
        existing = (await store.find_teams([clean])).get(clean.casefold())
        if existing is not None:
            raise Conflict(f'team "{existing.name}" already exists', field="name")
        try:
            async with transaction():
                team = await store.create_team(clean)
                await audit.note(actor, "team.created", f"team:{team.name}", f'created team "{team.name}"')
            return team
        except StoreConflict:  # created by another request meanwhile
            raise Conflict(f'team "{clean}" already exists', field="name") from None

    async def find_team(self, name: str, *, field: str = "team") -> Team:
        """The team of that name (any case); UnknownLabel naming `field` when there is none."""
        team = (await store.find_teams([name])).get(name.casefold())
        if team is None:
            raise UnknownTeam(name, field=field)
        return team

    async def delete_team(self, name: str, *, actor: str) -> Team:
        """Delete a team no topic routes to (its members simply leave it)."""
        team = (await store.find_teams([name.strip()])).get(name.strip().casefold())
        if team is None:
            raise NotFound("team", name.strip())
        await self._refuse_if_routed_to(team)
        try:
            async with transaction():
                await store.delete_team(team.id)
                await audit.note(actor, "team.deleted", f"team:{team.name}", f'deleted team "{team.name}"')
        except StoreConflict:  # a topic was routed to it meanwhile (the database refuses too)
            await self._refuse_if_routed_to(team)
            raise
        return team

    async def _refuse_if_routed_to(self, team: Team) -> None:
        topics = await store.topics_routed_to(team.id)
        if topics:
            names = ", ".join(f'"{t}"' for t in topics)
            which = "topic" if len(topics) == 1 else "topics"
            their = "the topic's" if len(topics) == 1 else "their"
            raise Conflict(f'team "{team.name}" is used by {which} {names} — change {their} team first')

    async def _team_ids(self, names: object) -> list[int]:
        if names is None:
            return []
        if not isinstance(names, list | tuple) or not all(isinstance(n, str) for n in names):
            raise Invalid("teams", "teams is a list of team names")
        found = await store.find_teams(names)
        for n in names:
            if n.casefold() not in found:
                raise UnknownTeam(n, field="teams")
        return list(dict.fromkeys(found[n.casefold()].id for n in names))

    # --- users -----------------------------------------------------------------------------------
    async def list_users(self, *, after_id: int | None = None, limit: int | None = None) -> list[User]:
        """Users by id (oldest first); `after_id` and `limit` page through them."""
        return await store.list_users(after_id=after_id, limit=limit)

    async def get_user(self, user_id: int) -> User:
        user = await store.get_user(user_id)
        if user is None:
            raise NotFound("user", user_id)
        return user

    async def users_by_id(self, user_ids: Sequence[int]) -> dict[int, User]:
        """The users of these ids that exist (deactivated ones included)."""
        return await store.users_by_id(user_ids)

    async def find_user(self, email: str) -> User:
        user = await store.find_user(email)
        if user is None:
            raise NotFound("user", email)
        return user

    async def add_user(
        self,
        *,
        email: object,
        role: object,
        name: object = None,
        teams: object = None,
        password: object = None,
        actor: str,
    ) -> NewUser:
        """Create a user; without a password one is generated and returned once."""
        clean_email = check_email(email)
        clean_role = check_role(role)
        clean_name = check_name(name) if name is not None else clean_email.split("@", 1)[0]
        generated = generate_password() if password is None else None
        clean_password = generated or check_password(password)
        team_ids = await self._team_ids(teams)
        hashed = await hash_password(clean_password)
        try:
            async with transaction():
                user = await store.create_user(
                    email=clean_email, name=clean_name, role=clean_role, password_hash=hashed, team_ids=team_ids
                )
                teams_said = f" in {', '.join(user.teams)}" if user.teams else ""
                await audit.note(
                    actor, "user.created", f"user:{user.id}", f"created {user.role.value} {user.email}{teams_said}"
                )
        except StoreConflict:
            raise Conflict(f'a user with email "{clean_email}" exists already', field="email") from None
        return NewUser(user, generated)

    async def update_user(
        self,
        user_id: int,
        *,
        name: object = None,
        role: object = None,
        teams: object = None,
        active: object = None,
        language: object = ...,
        password: object = None,
        actor: str,
    ) -> User:
        """Change what is given. Deactivating or changing the password ends the user's sessions.
        The audit entry says which fields changed, never a password ("password changed")."""
        before = await self.get_user(user_id)
        if active is not None and not isinstance(active, bool):
            raise Invalid("active", "active is true or false")
        hashed = await hash_password(check_password(password)) if password is not None else None
        lang = check_language(language) if language is not ... else None
        async with transaction():
            user = await store.update_user(
                user_id,
                name=check_name(name) if name is not None else None,
                role=check_role(role) if role is not None else None,
                active=active,
                language=lang,
                clear_language=language is None,
                password_hash=hashed,
                team_ids=await self._team_ids(teams) if teams is not None else None,
                end_sessions=active is False or hashed is not None,
            )
            if user is None:
                raise NotFound("user", user_id)
            kind = "user.deactivated" if active is False and before.active else "user.updated"
            await audit.note(actor, kind, f"user:{user.id}", f"{user.email}: {_user_changes(before, user, hashed)}")
        if active is False or hashed is not None:
            self.live.end_user(user_id)
        return user

    async def set_password(self, email: str, password: object = None, *, actor: str) -> NewUser:
        """A new password (generated when None, returned once); ends the user's sessions."""
        user = await self.find_user(email)
        generated = generate_password() if password is None else None
        return NewUser(await self.update_user(user.id, password=generated or password, actor=actor), generated)

    async def deactivate(self, email: str, *, actor: str) -> User:
        user = await self.find_user(email)
        return await self.update_user(user.id, active=False, actor=actor)

    async def sign_in(self, email: str, password: str) -> User:
        """The user, when the password is right and sign-in for this email is not locked.

        Raises SignInLocked (even with the right password) or Invalid."""
        now = _now()
        until = await store.sign_in_locked_until(email, now=now)
        if until is not None:
            raise SignInLocked(until)
        user = await store.find_user(email)
        hashed = await store.password_hash(user.id) if user is not None else None
        ok = user is not None and user.active and hashed is not None and await _verify(hashed, password)
        if not ok or user is None:
            until = await store.record_sign_in_failure(
                email, now=now, window=LOCK_WINDOW, limit=LOCK_AFTER, lock_for=LOCK_FOR
            )
            if until is not None:
                raise SignInLocked(until)
            raise Invalid("password", "the email or the password is wrong")
        await store.clear_sign_in_failures(email)
        return user

    async def password_matches(self, email: str, password: str) -> bool:
        """Whether `password` is the active user's password; not a sign-in (counts no failure), for
        the operator's own tools only (the demo banner checks the password it prints still works)."""
        user = await store.find_user(email)
        hashed = await store.password_hash(user.id) if user is not None and user.active else None
        return hashed is not None and await _verify(hashed, password)

    async def ensure_demo_admin(self) -> str | None:
        """On an empty store only: the demo admin; returns its generated password (else None)."""
        if await store.count_users():
            return None
        try:
            created = await self.add_user(email=DEMO_ADMIN, role="admin", name="Demo Admin", actor="cli")
        except Conflict:  # another worker created it first
            return None
        return created.password


def _user_changes(before: User, after: User, password_hash: str | None) -> str:
    """What a change of a user did, in a few words; a new password only as "password changed"."""
    said = []
    if before.name != after.name:
        said.append(f'name "{after.name}"')
    if before.role != after.role:
        said.append(f"role {after.role.value}")
    if before.teams != after.teams:
        said.append("teams " + (", ".join(after.teams) or "none"))
    if before.language != after.language:
        said.append(f"language {after.language or 'default'}")
    if before.active != after.active:
        said.append("deactivated" if not after.active else "reactivated")
    if password_hash is not None:
        said.append("password changed")
    return ", ".join(said) or "nothing changed"


def team_names(teams: Sequence[Team]) -> list[str]:
    return [t.name for t in teams]
