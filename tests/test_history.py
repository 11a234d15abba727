"""History and audit: every change to an automation is a numbered revision (API, chat, CLI), a
rollback is one more, runs say which revision fired, and the audit log keeps who changed what."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import pytest
from tortoise import Tortoise

from bot.cli import main as cli_main
from bot.config import load_settings
from bot.store import audit as audit_store
from bot.store import db, repo
from tests.conftest import STORES, TOKEN, Bot
from tests.test_cli import env, write_config

__all__ = ["env"]

both_stores = pytest.mark.parametrize("db_url", STORES, indirect=True)

PASSWORD = "first secret 123"


async def call(bot: Bot, method: str, path: str, *, user: int | None = None, **kwargs: Any) -> tuple[int, Any]:
    """One API request with the bearer token, acting as `user` (X-Inbox-User) when given."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    if user is not None:
        headers["X-Inbox-User"] = str(user)
    resp = await bot.client.request(method, path, headers=headers, **kwargs)
    return resp.status, await resp.json()


async def revisions(bot: Bot, automation_id: int) -> list[dict[str, Any]]:
    data = await bot.api("GET", f"/api/automations/{automation_id}/revisions?limit=200")
    assert data["next_cursor"] is None
    return data["items"]  # type: ignore[no-any-return]


async def audit(bot: Bot, query: str = "") -> list[dict[str, Any]]:
    data = await bot.api("GET", f"/api/audit?limit=200{query}")
    assert data["next_cursor"] is None
    return data["items"]  # type: ignore[no-any-return]


async def new_admin(bot: Bot, email: str = "root@example.com") -> int:
    created = await bot.api(
        "POST", "/api/users", json={"email": email, "role": "admin", "password": PASSWORD}, expect=201
    )
    return int(created["id"])


async def labels(bot: Bot, *names: tuple[str, str]) -> None:
    for kind, name in names:
        await bot.api("POST", f"/api/{kind}", json={"name": name}, expect=201)


AU_REVOIR = {"name": "Au revoir", "keywords": ["au revoir", "bye"], "actions": [{"type": "tag", "tag": "closing"}]}


# --- revisions ----------------------------------------------------------------------------------------


@both_stores
async def test_every_change_is_a_numbered_revision_with_who_made_it_and_the_automation_then(bot: Bot) -> None:
    await labels(bot, ("tags", "closing"))
    root = await new_admin(bot)
    status, a = await call(bot, "POST", "/api/automations", user=root, json=AU_REVOIR)
    assert status == 201
    aid = a["id"]
    await bot.api("PATCH", f"/api/automations/{aid}", json={"keywords": ["bye", "ciao"]})
    await bot.api("PATCH", f"/api/automations/{aid}", json={"keywords": ["bye", "ciao"]})  # changes nothing
    await bot.api("POST", f"/api/automations/{aid}/disable")
    await bot.api("POST", f"/api/automations/{aid}/disable")  # already disabled: nothing
    await bot.api("PATCH", f"/api/automations/{aid}", json={"enabled": True})
    await bot.api("DELETE", f"/api/automations/{aid}")

    found = await revisions(bot, aid)  # kept after the deletion, newest first
    assert [(r["revision"], r["change"], r["by"]) for r in found] == [
        (5, "deleted", "api"),
        (4, "enabled", "api"),
        (3, "disabled", "api"),
        (2, "updated", "api"),
        (1, "created", f"user:{root}"),
    ]
    first, second = found[-1]["automation"], found[-2]["automation"]
    assert first["keywords"] == ["au revoir", "bye"] and first["id"] == aid and first["enabled"] is True
    assert second["keywords"] == ["bye", "ciao"]
    assert [r["automation"]["enabled"] for r in found] == [True, True, False, True, True]
    assert set(first) == {
        "id", "name", "keywords", "match", "actions", "channels", "types", "enabled", "created_at", "updated_at",
    }  # fmt: skip
    assert all(r["at"].endswith("Z") for r in found)

    # paginated like every list
    page = await bot.api("GET", f"/api/automations/{aid}/revisions?limit=2")
    assert [r["revision"] for r in page["items"]] == [5, 4]
    rest = await bot.api("GET", f"/api/automations/{aid}/revisions?limit=10&cursor={page['next_cursor']}")
    assert [r["revision"] for r in rest["items"]] == [3, 2, 1] and rest["next_cursor"] is None


@both_stores
async def test_revisions_of_an_automation_that_never_existed_is_a_404(bot: Bot) -> None:
    status, body = await call(bot, "GET", "/api/automations/999/revisions")
    assert status == 404 and "no automation #999" in body["error"]
    for path in ("/api/automations/99999999999/revisions", "/api/automations/99999999999/runs"):
        status, body = await call(bot, "GET", path)  # beyond what an id column holds: none, not a failure
        assert status == 404, body
    status, body = await call(bot, "POST", "/api/automations/99999999999/rollback", json={"revision": 1})
    assert status == 404, body
    await labels(bot, ("tags", "closing"))
    aid = (await bot.api("POST", "/api/automations", json=AU_REVOIR, expect=201))["id"]
    status, body = await call(bot, "POST", f"/api/automations/{aid}/rollback", json={"revision": 99999999999})
    assert status == 404, body
    from bot.front.api import encode_cursor

    far = await bot.api("GET", f"/api/automations/{aid}/revisions?cursor={encode_cursor(10**17)}")
    assert [r["revision"] for r in far["items"]] == [1]
    status, body = await call(bot, "GET", "/api/automations/1/revisions?sort=old")
    assert status == 400 and body["field"] == "sort"


@both_stores
async def test_rollback_restores_a_revision_as_a_new_one_and_keeps_enabled(bot: Bot) -> None:
    await labels(bot, ("tags", "closing"), ("tags", "vip"))
    a = await bot.api("POST", "/api/automations", json={**AU_REVOIR, "channels": ["shop"]}, expect=201)
    aid = a["id"]
    await bot.api(
        "PATCH",
        f"/api/automations/{aid}",
        json={"name": "Bye", "keywords": "ciao", "match": "all", "actions": [{"type": "tag", "tag": "vip"}],
              "channels": [], "types": ["group"]},
    )  # fmt: skip
    await bot.api("POST", f"/api/automations/{aid}/disable")

    back = await bot.api("POST", f"/api/automations/{aid}/rollback", json={"revision": 1})
    assert (back["name"], back["keywords"], back["match"]) == ("Au revoir", ["au revoir", "bye"], "any")
    assert back["actions"] == [{"type": "tag", "tag": "closing"}]
    assert (back["channels"], back["types"]) == (["shop"], [])
    assert back["enabled"] is False  # as it was before the rollback
    assert back == await bot.api("GET", f"/api/automations/{aid}")
    [newest, *_] = await revisions(bot, aid)
    assert (newest["revision"], newest["change"], newest["by"]) == (4, "rolled_back", "api")
    assert newest["automation"]["name"] == "Au revoir" and newest["automation"]["enabled"] is False

    # enabled again, the restored keywords fire, and the run records the revision that fired
    await bot.api("POST", f"/api/automations/{aid}/enable")
    cid = (await bot.webhook("Au revoir !"))["conversation_id"]
    [run] = (await bot.conversation(cid))["runs"]
    assert (run["automation_id"], run["revision"]) == (aid, 5)


@both_stores
async def test_a_refused_rollback_changes_nothing(bot: Bot) -> None:
    await labels(bot, ("tags", "closing"), ("tags", "vip"))
    a = await bot.api("POST", "/api/automations", json={**AU_REVOIR, "actions": [{"type": "tag", "tag": "vip"}]},
                      expect=201)  # fmt: skip
    aid = a["id"]
    await bot.api(
        "PATCH", f"/api/automations/{aid}", json={"name": "Bye", "actions": [{"type": "tag", "tag": "closing"}]}
    )
    before = await bot.api("GET", f"/api/automations/{aid}")

    for revision in (3, 0, 99):
        status, body = await call(bot, "POST", f"/api/automations/{aid}/rollback", json={"revision": revision})
        assert status == 404, body
        assert (
            body["error"] == f"automation #{aid} has no revision {revision} — see GET /api/automations/{aid}/revisions"
        )
    for bad in ({}, {"revision": "1"}, {"revision": 1, "enabled": True}):
        status, body = await call(bot, "POST", f"/api/automations/{aid}/rollback", json=bad)
        assert status == 400 and body["field"] in ("revision", "enabled"), body

    # a label deleted since: refused naming it
    await bot.api("DELETE", "/api/tags/vip")
    status, body = await call(bot, "POST", f"/api/automations/{aid}/rollback", json={"revision": 1})
    assert (status, body["field"]) == (400, "actions")
    assert body["error"] == 'unknown tag "vip" — create it with POST /api/tags'
    # a name now taken by another automation: a conflict
    await labels(bot, ("tags", "vip"))
    await bot.api("POST", "/api/automations", json={**AU_REVOIR, "keywords": ["x"]}, expect=201)
    status, body = await call(bot, "POST", f"/api/automations/{aid}/rollback", json={"revision": 1})
    assert (status, body["field"]) == (409, "name") and "Au revoir" in body["error"]

    assert await bot.api("GET", f"/api/automations/{aid}") == before
    assert [r["revision"] for r in await revisions(bot, aid)] == [2, 1]
    assert [e["kind"] for e in await audit(bot, "&kind=automation.rolled_back")] == []

    # a deleted automation cannot be rolled back
    await bot.api("DELETE", f"/api/automations/{aid}")
    status, body = await call(bot, "POST", f"/api/automations/{aid}/rollback", json={"revision": 1})
    assert status == 404 and body["error"].startswith(f"no automation #{aid}")


@both_stores
async def test_each_run_records_the_revision_that_fired(bot: Bot) -> None:
    await labels(bot, ("tags", "closing"))
    aid = (await bot.api("POST", "/api/automations", json=AU_REVOIR, expect=201))["id"]
    first = (await bot.webhook("bye", thread="a"))["conversation_id"]
    await bot.api("PATCH", f"/api/automations/{aid}", json={"keywords": ["ciao"]})
    await bot.webhook("bye", thread="b")  # the old keyword no longer fires
    second = (await bot.webhook("ciao", thread="c"))["conversation_id"]

    runs = (await bot.api("GET", f"/api/automations/{aid}/runs"))["items"]
    assert [(r["conversation_id"], r["revision"]) for r in runs] == [(second, 2), (first, 1)]
    assert [r["revision"] for r in (await bot.conversation(first))["runs"]] == [1]


@both_stores
async def test_chat_changes_are_revisions_credited_to_who_typed_them(bot: Bot) -> None:
    await labels(bot, ("tags", "closing"))
    assert (await bot.command('create "Au revoir" keywords="bye" tags=closing')).startswith("Created")
    aid = (await bot.api("GET", "/api/automations"))["items"][0]["id"]
    await bot.command('disable "Au revoir"')
    await bot.command('enable "Au revoir"')
    await bot.command('delete "Au revoir"')
    found = await revisions(bot, aid)
    assert [(r["change"], r["by"]) for r in found] == [
        ("deleted", "test-admin"),
        ("enabled", "test-admin"),
        ("disabled", "test-admin"),
        ("created", "test-admin"),
    ]


@both_stores
async def test_chat_history_and_rollback(bot: Bot) -> None:
    await labels(bot, ("tags", "closing"), ("tags", "vip"))
    await bot.command('create "Au revoir" keywords="au revoir, bye" tags=closing')
    aid = (await bot.api("GET", "/api/automations"))["items"][0]["id"]
    await bot.api(
        "PATCH", f"/api/automations/{aid}", json={"keywords": "ciao", "actions": [{"type": "tag", "tag": "vip"}]}
    )
    await bot.command('disable "Au revoir"')

    history = (await bot.command('history "au revoir"')).splitlines()
    assert history[0] == f'History of #{aid} "Au revoir", newest first:'
    assert history[1].startswith("3 · ") and history[1].endswith(
        '· disabled by test-admin — any of ciao → tag "vip" · disabled'
    )
    assert history[2].endswith('· updated by api — any of ciao → tag "vip" · enabled')
    assert history[3].endswith('· created by test-admin — any of au revoir, bye → tag "closing" · enabled')
    assert history[4] == f"Put one back: /automation rollback #{aid} REV"

    answer = await bot.command(f"rollback #{aid} 1")
    assert answer == (
        f'Rolled #{aid} "Au revoir" back to revision 1 (now revision 4): any of au revoir, bye → tag "closing". '
        "It stays disabled."
    )
    [newest, *_] = await revisions(bot, aid)
    assert (newest["revision"], newest["change"], newest["by"]) == (4, "rolled_back", "test-admin")
    # the name may span words, unquoted; refusals change nothing
    assert await bot.command("rollback Au revoir 9") == f"#{aid} has no revision 9 — see /automation history #{aid}"
    assert "e.g. /automation rollback" in await bot.command('rollback "Au revoir"')
    assert await bot.command("rollback Nope 1") == 'no automation "Nope" — see /automation list'
    assert len(await revisions(bot, aid)) == 4

    # a deleted automation's history stays readable by its id
    await bot.command(f"delete #{aid}")
    lines = (await bot.command(f"history #{aid}")).splitlines()
    assert lines[1].startswith("5 · ") and "deleted by test-admin" in lines[1]
    assert len(lines) == 1 + 5 and "rollback" not in lines[-1]
    assert await bot.command("history #999") == "no automation #999 — see /automation list"


# --- the audit log ------------------------------------------------------------------------------------


@both_stores
async def test_the_audit_log_keeps_every_admin_change_of_each_kind(bot: Bot) -> None:
    root = await new_admin(bot)
    await bot.api("POST", "/api/teams", json={"name": "Billing"}, expect=201)
    ana = await bot.api("POST", "/api/users", json={"email": "ana@example.com", "role": "agent"}, expect=201)
    await bot.api("PATCH", f"/api/users/{ana['id']}", json={"teams": ["billing"], "name": "Ana"})
    await bot.api("PATCH", f"/api/users/{ana['id']}", json={"active": False})
    await labels(bot, ("tags", "closing"), ("reasons", "Contact left"))
    await call(bot, "POST", "/api/topics", user=root, json={"name": "Refunds", "priority": "high"})
    await bot.api("PATCH", "/api/topics/Refunds", json={"team": "Billing"})
    aid = (await bot.api("POST", "/api/automations", json=AU_REVOIR, expect=201))["id"]
    await bot.api("PATCH", f"/api/automations/{aid}", json={"keywords": "ciao"})
    await bot.api("POST", f"/api/automations/{aid}/disable")
    await bot.api("POST", f"/api/automations/{aid}/enable")
    await bot.api("POST", f"/api/automations/{aid}/rollback", json={"revision": 1})
    await bot.api("DELETE", f"/api/automations/{aid}")
    await bot.api("DELETE", "/api/tags/closing")
    await bot.api("DELETE", "/api/reasons/Contact left")
    await bot.api("DELETE", "/api/topics/Refunds")
    await bot.api("DELETE", "/api/teams/Billing")

    entries = await audit(bot)
    assert [(e["kind"], e["actor"], e["target"]) for e in reversed(entries)] == [
        ("user.created", "api", f"user:{root}"),
        ("team.created", "api", "team:Billing"),
        ("user.created", "api", f"user:{ana['id']}"),
        ("user.updated", "api", f"user:{ana['id']}"),
        ("user.deactivated", "api", f"user:{ana['id']}"),
        ("tag.created", "api", "tag:closing"),
        ("reason.created", "api", "reason:Contact left"),
        ("topic.created", f"user:{root}", "topic:Refunds"),
        ("topic.updated", "api", "topic:Refunds"),
        ("automation.created", "api", f"automation:{aid}"),
        ("automation.updated", "api", f"automation:{aid}"),
        ("automation.disabled", "api", f"automation:{aid}"),
        ("automation.enabled", "api", f"automation:{aid}"),
        ("automation.rolled_back", "api", f"automation:{aid}"),
        ("automation.deleted", "api", f"automation:{aid}"),
        ("tag.deleted", "api", "tag:closing"),
        ("reason.deleted", "api", "reason:Contact left"),
        ("topic.deleted", "api", "topic:Refunds"),
        ("team.deleted", "api", "team:Billing"),
    ]
    by_kind = {e["kind"]: e["summary"] for e in entries}
    assert by_kind["user.updated"] == 'ana@example.com: name "Ana", teams Billing'
    assert by_kind["topic.updated"] == 'topic "Refunds" (high, team Billing)'
    assert by_kind["automation.updated"] == 'updated "Au revoir": keywords'
    assert by_kind["automation.rolled_back"] == 'rolled "Au revoir" back to revision 1'
    assert all(e["at"].endswith("Z") and isinstance(e["id"], int) for e in entries)
    assert [e["id"] for e in entries] == sorted((e["id"] for e in entries), reverse=True)  # newest first


@both_stores
async def test_a_persons_actions_on_conversations_are_audited_and_automations_are_not(bot: Bot) -> None:
    await labels(bot, ("tags", "closing"), ("reasons", "Contact left"), ("topics", "Sales"))
    await bot.api("POST", "/api/automations", json={"name": "Bye", "keywords": "bye", "actions": [{"type": "resolve"}]},
                  expect=201)  # fmt: skip
    auto = (await bot.webhook("bye", thread="auto"))["conversation_id"]  # resolved by the automation
    assert (await bot.conversation(auto))["status"] == "resolved"
    root = await new_admin(bot)
    cid = (await bot.webhook("Hello, my order?", thread="t"))["conversation_id"]
    await call(bot, "POST", f"/api/conversations/{cid}/assign", user=root, json={"user": root})
    await bot.api("POST", f"/api/conversations/{cid}/topics", json={"add": ["Sales"], "agent": "7"})
    await call(bot, "POST", f"/api/conversations/{cid}/messages", user=root, json={"text": "On its way!"})
    await bot.api("POST", f"/api/conversations/{cid}/resolve", json={"reason": "Contact left", "agent": "7"})
    await call(bot, "POST", f"/api/conversations/{cid}/reopen", user=root)

    entries = [e for e in await audit(bot) if e["kind"].startswith("conversation.")]
    assert [(e["kind"], e["actor"], e["target"]) for e in reversed(entries)] == [
        ("conversation.assigned", f"user:{root}", f"conversation:{cid}"),
        ("conversation.topics_changed", "agent:7", f"conversation:{cid}"),
        ("conversation.replied", f"user:{root}", f"conversation:{cid}"),
        ("conversation.resolved", "agent:7", f"conversation:{cid}"),
        ("conversation.reopened", f"user:{root}", f"conversation:{cid}"),
    ]
    summaries = [e["summary"] for e in reversed(entries)]
    assert summaries[0] == f"assigned to user:{root}"
    assert summaries[1] == "topics +Sales"
    assert summaries[3] == "resolved (reason Contact left)"
    assert "On its way" not in summaries[2]  # the reply's text stays in the conversation


@both_stores
async def test_audit_filters_pages_and_refusals(bot: Bot) -> None:
    root = await new_admin(bot)
    for name in ("a", "b", "c"):
        await call(bot, "POST", "/api/tags", user=root, json={"name": name})
    await bot.api("POST", "/api/reasons", json={"name": "Done"}, expect=201)

    mine = await audit(bot, f"&actor=user:{root}")
    assert [e["target"] for e in mine] == ["tag:c", "tag:b", "tag:a"]
    assert [e["target"] for e in await audit(bot, "&kind=reason.created")] == ["reason:Done"]
    assert await audit(bot, f"&actor=user:{root}&kind=reason.created") == []
    assert await audit(bot, "&actor=nobody") == []

    page = await bot.api("GET", "/api/audit?limit=2")
    assert [e["summary"] for e in page["items"]] == ['created reason "Done"', 'created tag "c"']
    rest = await bot.api("GET", f"/api/audit?limit=2&cursor={page['next_cursor']}")
    assert [e["target"] for e in rest["items"]] == ["tag:b", "tag:a"]

    for query, field in (("?since=1d", "since"), ("?kind=tag.renamed", "kind"), ("?limit=0", "limit"),
                         ("?cursor=zzz", "cursor")):  # fmt: skip
        status, body = await call(bot, "GET", f"/api/audit{query}")
        assert (status, body["field"]) == (400, field), body
    status, body = await call(bot, "GET", "/api/audit?kind=tag.renamed")
    assert "tag.created" in body["error"]  # names the kinds to use

    # agents work on conversations: the audit log is for admins
    agent = await bot.api("POST", "/api/users", json={"email": "ana@example.com", "role": "agent"}, expect=201)
    status, _ = await call(bot, "GET", "/api/audit", user=agent["id"])
    assert status == 403


@both_stores
async def test_the_audit_log_is_append_only(bot: Bot) -> None:
    await labels(bot, ("tags", "closing"))
    [entry] = await audit(bot)
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        status, _ = await call(bot, method, "/api/audit", json={})
        assert status == 405
        status, _ = await call(bot, method, f"/api/audit/{entry['id']}", json={})
        assert status in (404, 405)
    assert await audit(bot) == [entry]
    doc = await bot.api("GET", "/api/openapi.json")
    assert list(doc["paths"]["/api/audit"]) == ["get"]
    assert not any(p.startswith("/api/audit/") for p in doc["paths"])


@both_stores
async def test_no_password_ever_reaches_the_audit_log(bot: Bot, db_url: str) -> None:
    created = await bot.api("POST", "/api/users", json={"email": "ana@example.com", "role": "agent",
                                                        "password": PASSWORD}, expect=201)  # fmt: skip
    new_password = "second secret 456"
    await bot.api("PATCH", f"/api/users/{created['id']}", json={"password": new_password})
    generated = await bot.api("POST", "/api/users", json={"email": "bob@example.com", "role": "agent"}, expect=201)

    entries = await audit(bot)
    assert entries[1]["summary"] == "ana@example.com: password changed"
    rows = await Tortoise.get_connection("default").execute_query_dict("SELECT * FROM audit_log")
    dump = repr(rows)
    assert len(rows) == 3
    for secret in (PASSWORD, new_password, generated["password"]):
        assert secret not in dump


# --- the command line ---------------------------------------------------------------------------------


def test_command_line_changes_are_credited_to_the_cli(
    tmp_path: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = write_config(tmp_path)
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{PASSWORD}\n"))
    assert (
        cli_main(["--config", str(cfg), "users", "add", "ana@example.com", "--role", "agent", "--password-stdin"]) == 0
    )
    monkeypatch.setattr("sys.stdin", io.StringIO("second secret 456\n"))
    assert cli_main(["--config", str(cfg), "users", "set-password", "ana@example.com", "--password-stdin"]) == 0
    assert cli_main(["--config", str(cfg), "users", "deactivate", "ana@example.com"]) == 0

    async def read() -> list[tuple[str, str, str]]:
        async with db.open_store(load_settings(str(cfg)).database.url):
            return [(e.actor, e.kind, e.summary) for e in reversed(await audit_store.entries())]

    assert asyncio.run(read()) == [
        ("cli", "user.created", "created agent ana@example.com"),
        ("cli", "user.updated", "ana@example.com: password changed"),
        ("cli", "user.deactivated", "ana@example.com: deactivated"),
    ]


@both_stores
async def test_the_demo_automation_is_revision_1_by_the_cli(db_url: str, settings: Any) -> None:
    from bot.cli import _seed_demo

    await _seed_demo(settings)
    async with db.open_store(db_url):
        [a] = await repo.list_automations()
        [r] = await repo.list_revisions(a.id)
        assert (r.revision, r.change.value, r.by, r.automation["name"]) == (1, "created", "cli", "Au revoir")
        assert a.revision == 1
