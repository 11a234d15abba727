"""Users, teams, passwords and the sign-in lockout (bot.services.people) on real stores."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from bot.domain import Role
from bot.errors import Conflict, Invalid, NotFound, SignInLocked
from bot.services import people as people_mod
from bot.services.people import People
from bot.store import db
from bot.store import people as store
from tests.conftest import STORES

pytestmark = pytest.mark.parametrize("db_url", STORES, indirect=True)


@pytest.fixture
async def people(db_url: str) -> AsyncIterator[People]:
    async with db.open_store(db_url):
        yield People()


async def test_a_user_gets_a_generated_password_once_stored_only_as_an_argon2id_hash(people: People) -> None:
    await people.add_team("Billing", actor="cli")
    created = await people.add_user(email="Ana@Example.com", role="agent", teams=["billing"], actor="cli")
    assert created.password is not None and len(created.password) >= 10
    user = created.user
    assert (user.email, user.name, user.role, user.teams, user.active) == (
        "Ana@Example.com",
        "Ana",
        Role.AGENT,
        ("Billing",),
        True,
    )
    hashed = await store.password_hash(user.id)
    assert hashed is not None and hashed.startswith("$argon2id$") and created.password not in hashed
    assert (await people.sign_in("ana@example.com", created.password)).id == user.id


async def test_bad_input_names_the_field_and_writes_nothing(people: People) -> None:
    with pytest.raises(Invalid) as short:
        await people.add_user(email="a@example.com", role="agent", password="123456789", actor="cli")
    assert short.value.field == "password"
    with pytest.raises(Invalid) as team:
        await people.add_user(email="a@example.com", role="agent", teams=["Nowhere"], actor="cli")
    assert (team.value.field, str(team.value)) == ("teams", 'unknown team "Nowhere"')
    with pytest.raises(Invalid) as role:
        await people.add_user(email="a@example.com", role="boss", actor="cli")
    assert role.value.field == "role"
    with pytest.raises(Invalid) as email:
        await people.add_user(email="not an email", role="agent", actor="cli")
    assert email.value.field == "email"
    assert await people.list_users() == []


async def test_email_and_team_names_are_unique_case_insensitively(people: People) -> None:
    await people.add_user(email="ana@example.com", role="agent", password="correct horse", actor="cli")
    with pytest.raises(Conflict):
        await people.add_user(email="ANA@example.COM", role="admin", password="correct horse", actor="cli")
    await people.add_team("Billing", actor="cli")
    with pytest.raises(Conflict):
        await people.add_team("billing", actor="cli")
    assert [t.name for t in await people.list_teams()] == ["Billing"]


async def test_five_failures_lock_the_email_for_15_minutes_even_with_the_right_password(
    people: People, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [datetime(2026, 12, 1, 9, 0, tzinfo=UTC)]
    monkeypatch.setattr(people_mod, "_now", lambda: clock[0])
    await people.add_user(email="ana@example.com", role="agent", password="correct horse", actor="cli")
    await people.add_user(email="bob@example.com", role="agent", password="battery staple", actor="cli")
    for _ in range(4):
        with pytest.raises(Invalid):
            await people.sign_in("ana@example.com", "wrong password")
        clock[0] += timedelta(minutes=1)
    with pytest.raises(SignInLocked) as locked:
        await people.sign_in("ANA@example.com", "wrong password")
    assert locked.value.until == clock[0] + timedelta(minutes=15)
    with pytest.raises(SignInLocked):
        await people.sign_in("ana@example.com", "correct horse")
    # per email: another person signs in meanwhile
    assert (await people.sign_in("bob@example.com", "battery staple")).email == "bob@example.com"
    clock[0] += timedelta(minutes=15, seconds=1)
    assert (await people.sign_in("ana@example.com", "correct horse")).email == "ana@example.com"


async def test_failures_spread_over_more_than_15_minutes_do_not_lock(
    people: People, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [datetime(2026, 12, 1, 9, 0, tzinfo=UTC)]
    monkeypatch.setattr(people_mod, "_now", lambda: clock[0])
    await people.add_user(email="ana@example.com", role="agent", password="correct horse", actor="cli")
    for _ in range(8):
        with pytest.raises(Invalid):
            await people.sign_in("ana@example.com", "wrong password")
        clock[0] += timedelta(minutes=4)
    assert (await people.sign_in("ana@example.com", "correct horse")).email == "ana@example.com"


async def test_deactivating_ends_sessions_and_sign_in(people: People) -> None:
    created = await people.add_user(email="ana@example.com", role="agent", password="correct horse", actor="cli")
    user = await people.deactivate("ana@example.com", actor="cli")
    assert user.active is False and user.session_epoch == created.user.session_epoch + 1
    with pytest.raises(Invalid):
        await people.sign_in("ana@example.com", "correct horse")
    with pytest.raises(NotFound):
        await people.deactivate("nobody@example.com", actor="cli")


async def test_set_password_replaces_the_old_one(people: People) -> None:
    await people.add_user(email="ana@example.com", role="agent", password="correct horse", actor="cli")
    changed = await people.set_password("ana@example.com", "new password 1", actor="cli")
    assert changed.password is None
    with pytest.raises(Invalid):
        await people.sign_in("ana@example.com", "correct horse")
    assert (await people.sign_in("ana@example.com", "new password 1")).email == "ana@example.com"


async def test_the_demo_admin_is_created_on_an_empty_store_only(people: People) -> None:
    password = await people.ensure_demo_admin()
    assert password is not None
    assert (await people.sign_in("admin@example.com", password)).role is Role.ADMIN
    assert await people.ensure_demo_admin() is None
