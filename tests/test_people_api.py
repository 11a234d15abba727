"""Users and teams over the JSON API (/api/users, /api/teams), on both stores, as an integrator
uses them: every refusal names the field and the way out, and writes nothing."""

from __future__ import annotations

from typing import Any

import pytest

from bot.store import models
from tests.conftest import STORES, TOKEN, Bot

pytestmark = pytest.mark.parametrize("db_url", STORES, indirect=True)

USER_KEYS = {"id", "email", "name", "role", "teams", "active", "language", "created_at"}


async def raw(bot: Bot, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
    resp = await bot.client.request(method, path, headers={"Authorization": f"Bearer {TOKEN}"}, **kwargs)
    return resp.status, await resp.json()


async def add_user(bot: Bot, **fields: Any) -> dict[str, Any]:
    body = {"email": "ana@example.com", "role": "agent", "password": "correct horse", **fields}
    return await bot.api("POST", "/api/users", json=body, expect=201)  # type: ignore[no-any-return]


async def users(bot: Bot) -> list[dict[str, Any]]:
    return (await bot.api("GET", "/api/users"))["items"]  # type: ignore[no-any-return]


async def signs_in(bot: Bot, email: str, password: str) -> bool:
    return await bot.state.people.password_matches(email, password)


async def route_topic_to(topic: str, team: str | None) -> None:
    """Route a topic's conversations to a team (straight in the store: only the topics' own API
    sets it, and these tests are about teams)."""
    team_id = None if team is None else (await models.Team.get(key=team.casefold())).id
    await models.Label.filter(kind="topic", key=topic.casefold()).update(team_id=team_id)


# --- users --------------------------------------------------------------------------------------------


async def test_a_user_without_a_password_gets_one_generated_and_shown_once(bot: Bot) -> None:
    created = await bot.api("POST", "/api/users", json={"email": "Ana@Example.com", "role": "admin"}, expect=201)
    assert set(created) == USER_KEYS | {"password"}
    password = created.pop("password")
    assert isinstance(password, str) and len(password) >= 10
    assert created == {
        "id": created["id"],
        "email": "Ana@Example.com",
        "name": "Ana",
        "role": "admin",
        "teams": [],
        "active": True,
        "language": None,
        "created_at": created["created_at"],
    }
    assert created["created_at"].endswith("Z")
    assert await signs_in(bot, "ana@example.com", password)
    # never read back: not in the single view, not in the list
    one = await bot.api("GET", f"/api/users/{created['id']}")
    assert one == created
    assert await users(bot) == [created]


async def test_a_given_password_is_used_and_never_answered(bot: Bot) -> None:
    created = await add_user(bot, name="Ana Lima", password="correct horse battery")
    assert set(created) == USER_KEYS
    assert created["name"] == "Ana Lima"
    assert await signs_in(bot, "ana@example.com", "correct horse battery")
    hashed = await models.User.get(id=created["id"]).values_list("password_hash", flat=True)
    assert str(hashed).startswith("$argon2id$")


async def test_users_are_listed_oldest_first_a_page_at_a_time(bot: Bot) -> None:
    ids = [(await add_user(bot, email=f"u{i}@example.com"))["id"] for i in range(3)]
    first = await bot.api("GET", "/api/users?limit=2")
    assert [u["id"] for u in first["items"]] == ids[:2]
    assert first["next_cursor"]
    second = await bot.api("GET", f"/api/users?limit=2&cursor={first['next_cursor']}")
    assert ([u["id"] for u in second["items"]], second["next_cursor"]) == (ids[2:], None)
    assert await raw(bot, "GET", "/api/users?role=admin") == (
        400,
        {"error": 'unknown parameter "role"', "field": "role"},
    )


async def test_a_duplicate_email_is_a_409_whatever_its_case(bot: Bot) -> None:
    await add_user(bot)
    status, err = await raw(bot, "POST", "/api/users", json={"email": "ANA@example.COM", "role": "admin"})
    assert (status, err) == (409, {"error": 'a user with email "ANA@example.COM" exists already', "field": "email"})
    assert [u["email"] for u in await users(bot)] == ["ana@example.com"]


@pytest.mark.parametrize(
    ("body", "field", "error"),
    [
        ({"password": "123456789"}, "password", "a password needs at least 10 characters"),
        ({"role": "boss"}, "role", 'unknown role "boss" — use admin or agent'),
        ({"role": 1}, "role", "role must be admin or agent"),
        ({"email": "not an email"}, "email", '"not an email" is not an email address'),
        ({"email": None}, "email", "email must be an email address"),
        ({"name": " "}, "name", "a name has 1–100 characters"),
        ({"teams": "Billing"}, "teams", "teams must be a list of team names"),
        ({"teams": ["Nowhere"]}, "teams", 'unknown team "Nowhere" — create it with POST /api/teams'),
        ({"colour": "red"}, "colour", 'unknown field "colour"'),
        ({"language": "fr"}, "language", 'unknown field "language"'),
    ],
)
async def test_bad_input_to_post_users_is_a_400_naming_the_field_and_adds_nobody(
    bot: Bot, body: dict[str, Any], field: str, error: str
) -> None:
    await bot.api("POST", "/api/teams", json={"name": "Billing"}, expect=201)
    status, err = await raw(
        bot, "POST", "/api/users", json={"email": "ana@example.com", "role": "agent", "teams": ["Billing"], **body}
    )
    assert (status, err) == (400, {"error": error, "field": field})
    assert await users(bot) == []


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"role": "agent"}, 'give the user\'s email, e.g. "email": "ana@example.com"'),
        ({"email": "ana@example.com"}, 'give the user\'s role, e.g. "role": "agent" (or "admin")'),
    ],
)
async def test_a_missing_email_or_role_says_what_to_give(bot: Bot, body: dict[str, Any], error: str) -> None:
    status, err = await raw(bot, "POST", "/api/users", json=body)
    assert (status, err["error"]) == (400, error)
    assert await users(bot) == []


async def test_an_unknown_user_is_a_404(bot: Bot) -> None:
    for method, path in (("GET", "/api/users/999"), ("PATCH", "/api/users/999"), ("GET", "/api/users/abc")):
        status, err = await raw(bot, method, path, json={"name": "Bob"})
        assert status == 404, (method, path)
    assert err == {"error": 'no user "abc" — see GET /api/users'}
    status, err = await raw(bot, "PATCH", "/api/users/999", json={"name": "Bob"})
    assert err == {"error": "no user #999 — see GET /api/users"}


async def test_patch_changes_only_what_is_given(bot: Bot) -> None:
    for team in ("Billing", "Sales"):
        await bot.api("POST", "/api/teams", json={"name": team}, expect=201)
    user = await add_user(bot, teams=["billing"])
    assert user["teams"] == ["Billing"]
    uid = user["id"]
    changed = await bot.api(
        "PATCH",
        f"/api/users/{uid}",
        json={"name": "Ana Lima", "role": "admin", "teams": ["SALES", "billing"], "language": "fr"},
    )
    assert changed == {**user, "name": "Ana Lima", "role": "admin", "teams": ["Billing", "Sales"], "language": "fr"}
    # null language: the organization's again; an empty team list: no team; the rest stays
    changed = await bot.api("PATCH", f"/api/users/{uid}", json={"language": None, "teams": []})
    assert changed == {**user, "name": "Ana Lima", "role": "admin", "teams": [], "language": None}
    assert await bot.api("PATCH", f"/api/users/{uid}", json={}) == changed
    assert await bot.api("GET", f"/api/users/{uid}") == changed
    # a new password replaces the old one, and is not answered
    changed = await bot.api("PATCH", f"/api/users/{uid}", json={"password": "a new password"})
    assert "password" not in changed
    assert await signs_in(bot, "ana@example.com", "a new password")
    assert not await signs_in(bot, "ana@example.com", "correct horse")


@pytest.mark.parametrize(
    ("body", "field", "error"),
    [
        ({"password": "short"}, "password", "a password needs at least 10 characters"),
        ({"teams": ["Billing", "Nowhere"]}, "teams", 'unknown team "Nowhere" — create it with POST /api/teams'),
        ({"role": "owner"}, "role", 'unknown role "owner" — use admin or agent'),
        ({"language": "de"}, "language", 'unknown language "de" — use en or fr'),
        ({"language": 1}, "language", 'language must be "en", "fr" or null'),
        ({"active": "no"}, "active", "active must be true or false"),
        ({"name": ""}, "name", "a name has 1–100 characters"),
        ({"superuser": True}, "superuser", 'unknown field "superuser"'),
        (
            {"email": "new@example.com"},
            "email",
            "an email cannot be changed — add a user with the new email and deactivate this one",
        ),
    ],
)
async def test_bad_input_to_patch_a_user_is_a_400_and_changes_nothing(
    bot: Bot, body: dict[str, Any], field: str, error: str
) -> None:
    await bot.api("POST", "/api/teams", json={"name": "Billing"}, expect=201)
    user = await add_user(bot)
    before = await bot.state.people.get_user(user["id"])
    # the other fields of the same request are not written either
    status, err = await raw(
        bot, "PATCH", f"/api/users/{user['id']}", json={"name": "Changed", "teams": ["Billing"], **body}
    )
    assert (status, err) == (400, {"error": error, "field": field})
    assert await bot.api("GET", f"/api/users/{user['id']}") == user
    assert await bot.state.people.get_user(user["id"]) == before
    assert await signs_in(bot, "ana@example.com", "correct horse")


async def test_deactivating_or_a_new_password_ends_the_sessions_at_once(bot: Bot) -> None:
    uid = (await add_user(bot))["id"]
    people = bot.state.people
    epoch = (await people.get_user(uid)).session_epoch
    await bot.api("PATCH", f"/api/users/{uid}", json={"name": "Ana Lima", "role": "admin", "language": "en"})
    assert (await people.get_user(uid)).session_epoch == epoch  # other changes keep the sessions
    await bot.api("PATCH", f"/api/users/{uid}", json={"password": "another password"})
    assert (await people.get_user(uid)).session_epoch == epoch + 1
    deactivated = await bot.api("PATCH", f"/api/users/{uid}", json={"active": False})
    assert deactivated["active"] is False
    assert (await people.get_user(uid)).session_epoch == epoch + 2
    assert not await signs_in(bot, "ana@example.com", "another password")
    # back on: the person signs in again (a new session)
    assert (await bot.api("PATCH", f"/api/users/{uid}", json={"active": True}))["active"] is True
    assert await signs_in(bot, "ana@example.com", "another password")


# --- teams ---------------------------------------------------------------------------------------


async def test_teams_are_created_listed_by_name_and_unique_whatever_the_case(bot: Bot) -> None:
    assert await bot.api("GET", "/api/teams") == {"items": [], "next_cursor": None}
    assert await bot.api("POST", "/api/teams", json={"name": "  Billing   EU "}, expect=201) == {"name": "Billing EU"}
    await bot.api("POST", "/api/teams", json={"name": "Accounts"}, expect=201)
    status, err = await raw(bot, "POST", "/api/teams", json={"name": "BILLING eu"})
    assert (status, err) == (409, {"error": 'team "Billing EU" already exists', "field": "name"})
    assert await bot.api("GET", "/api/teams") == {
        "items": [{"name": "Accounts"}, {"name": "Billing EU"}],
        "next_cursor": None,
    }


@pytest.mark.parametrize(
    ("body", "field", "error"),
    [
        ({}, "name", 'give the team\'s name, e.g. {"name": "Billing"}'),
        ({"name": "   "}, "name", 'give the team\'s name, e.g. {"name": "Billing"}'),
        ({"name": 7}, "name", "name must be a string"),
        ({"name": "Billing, EU"}, "name", "team names cannot contain commas or double quotes"),
        ({"name": "x" * 101}, "name", "team names are at most 100 characters"),
        ({"name": "Billing", "colour": "red"}, "colour", 'unknown field "colour"'),
    ],
)
async def test_bad_input_to_post_teams_is_a_400_naming_the_field(
    bot: Bot, body: dict[str, Any], field: str, error: str
) -> None:
    status, err = await raw(bot, "POST", "/api/teams", json=body)
    assert (status, err) == (400, {"error": error, "field": field})
    assert (await bot.api("GET", "/api/teams"))["items"] == []


async def test_deleting_a_team_its_members_leave_it(bot: Bot) -> None:
    await bot.api("POST", "/api/teams", json={"name": "Billing"}, expect=201)
    user = await add_user(bot, teams=["Billing"])
    assert await bot.api("DELETE", "/api/teams/billing") == {"deleted": True, "name": "Billing"}
    assert (await bot.api("GET", "/api/teams"))["items"] == []
    assert (await bot.api("GET", f"/api/users/{user['id']}"))["teams"] == []
    status, err = await raw(bot, "DELETE", "/api/teams/Billing")
    assert (status, err) == (404, {"error": 'unknown team "Billing" — see GET /api/teams'})


async def test_a_team_a_topic_routes_to_cannot_be_deleted(bot: Bot) -> None:
    await bot.api("POST", "/api/teams", json={"name": "Billing"}, expect=201)
    for topic in ("Refunds", "Invoices"):
        await bot.api("POST", "/api/topics", json={"name": topic}, expect=201)
    await route_topic_to("Refunds", "Billing")
    status, err = await raw(bot, "DELETE", "/api/teams/BILLING")
    assert (status, err) == (
        409,
        {"error": 'team "Billing" is used by topic "Refunds" — change the topic\'s team first'},
    )
    await route_topic_to("Invoices", "Billing")
    status, err = await raw(bot, "DELETE", "/api/teams/Billing")
    assert err["error"] == 'team "Billing" is used by topics "Invoices", "Refunds" — change their team first'
    assert (await bot.api("GET", "/api/teams"))["items"] == [{"name": "Billing"}]
    for topic in ("Refunds", "Invoices"):
        await route_topic_to(topic, None)
    assert await bot.api("DELETE", "/api/teams/Billing") == {"deleted": True, "name": "Billing"}


async def test_the_database_refuses_too_when_a_topic_routes_to_the_team(bot: Bot) -> None:
    """The refusal holds when a topic is routed to the team between the check and the delete."""
    from bot.store import StoreConflict
    from bot.store import people as store

    team = await bot.state.people.add_team("Billing", actor="api")
    await bot.api("POST", "/api/topics", json={"name": "Refunds"}, expect=201)
    await route_topic_to("Refunds", "Billing")
    with pytest.raises(StoreConflict):
        await store.delete_team(team.id)
    assert [t.name for t in await bot.state.people.list_teams()] == ["Billing"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/users"),
        ("POST", "/api/users"),
        ("GET", "/api/users/1"),
        ("PATCH", "/api/users/1"),
        ("GET", "/api/teams"),
        ("POST", "/api/teams"),
        ("DELETE", "/api/teams/Billing"),
    ],
)
async def test_people_routes_need_a_bearer_token(bot: Bot, method: str, path: str) -> None:
    resp = await bot.client.request(method, path, json={"email": "x@example.com", "role": "admin", "name": "x"})
    assert resp.status == 401
    assert await users(bot) == []
    assert (await bot.api("GET", "/api/teams"))["items"] == []
