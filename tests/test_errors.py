"""The one error tree: each front-end words the same refusal its own way, the API with its status;
unknown fields and parameters are refused by name; answers are readable UTF-8."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from bot import plans
from bot.config import OrganizationSettings
from bot.domain import Action, ActionType
from bot.errors import (
    Conflict,
    ConversationConflict,
    ConversationNotFound,
    Forbidden,
    InboxError,
    Invalid,
    Missing,
    NotFound,
    PlanRefused,
    TooLarge,
    TurnedOff,
    UnknownField,
    UnknownLabel,
)
from bot.front import api, commands
from tests.conftest import TOKEN, Bot, make_settings

MakeBot = Callable[..., Awaitable[Bot]]


async def raw(bot: Bot, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
    resp = await bot.client.request(method, path, headers={"Authorization": f"Bearer {TOKEN}"}, **kwargs)
    return resp.status, await resp.json()


# --- the tree -------------------------------------------------------------------------------------


def test_errors_say_what_is_wrong_not_how_a_front_end_says_it() -> None:
    cases: list[tuple[InboxError, type[InboxError], str | None, str]] = [
        (Invalid("match", 'match must be "any" or "all", not "x"'), Invalid, "match", 'not "x"'),
        (Missing("keywords", of="automation"), Invalid, "keywords", "give the automation's keywords"),
        (UnknownLabel("tag", "vip", field="actions"), Invalid, "actions", 'unknown tag "vip"'),
        (UnknownField("actions[0].colour"), Invalid, "actions", 'unknown field "actions[0].colour"'),
        (TooLarge(1024), Invalid, None, "1024 bytes"),
        (NotFound("automation", 3), NotFound, None, "no automation #3"),
        (NotFound("automation", "Bye"), NotFound, None, 'no automation "Bye"'),
        (ConversationNotFound(7), NotFound, None, "no conversation #7"),
        (ConversationConflict("conversation 7 is already resolved"), Conflict, None, "already resolved"),
        (PlanRefused(feature="resolve", plan="business", needs="enterprise"), Forbidden, None, "needs enterprise"),
    ]
    for err, parent, field, text in cases:
        assert isinstance(err, parent)
        assert err.field == field, err
        assert text in str(err)
        for word in ("/automation", "/api/", "400", "404"):
            assert word not in str(err), err


def test_plan_gating_names_the_plan_or_setting_needed() -> None:
    business = OrganizationSettings(plan="business", advanced_inbox=False, resolution_reasons=True)
    why = plans.refusal(business, [Action(ActionType.TAG, "x"), Action(ActionType.TOPIC, "y")])
    assert isinstance(why, PlanRefused)
    assert (why.feature, why.plan, why.needs) == ("topic", "business", "enterprise")
    assert plans.refusal(business, [Action(ActionType.TAG, "x")]) is None
    no_reasons = OrganizationSettings(plan="enterprise", advanced_inbox=True, resolution_reasons=False)
    why = plans.refusal(no_reasons, [Action(ActionType.RESOLVE, "Spam")])
    assert isinstance(why, TurnedOff) and why.in_action and why.setting == "resolution_reasons"
    assert plans.refusal(no_reasons, [Action(ActionType.RESOLVE)]) is None
    with pytest.raises(TurnedOff):
        plans.require_reasons(no_reasons)


@pytest.mark.parametrize(
    ("error", "status", "api_words", "chat_words"),
    [
        (
            UnknownLabel("tag", "vip", field="actions"),
            400,
            'unknown tag "vip" — create it with POST /api/tags',
            'unknown tag "vip" — create it with /automation tags add vip',
        ),
        (
            UnknownLabel("reason", "Spam", field="reason"),
            400,
            'unknown resolution reason "Spam" — create it with POST /api/reasons',
            'unknown resolution reason "Spam" — create it with /automation reasons add Spam',
        ),
        (
            NotFound("automation", 4),
            404,
            "no automation #4 — see GET /api/automations",
            "no automation #4 — see /automation list",
        ),
        (NotFound("topic", "Sales"), 404, 'unknown topic "Sales" — see GET /api/topics', None),
        (Missing("name", of="tag"), 400, 'give the tag\'s name, e.g. {"name": "billing"}', None),
        (
            TurnedOff(
                feature="resolution reasons", setting="resolution_reasons", section="organization", in_action=True
            ),
            403,
            "resolution reasons are turned off (resolution_reasons = false in [organization]); "
            "resolve without a reason or turn them on",
            "resolution reasons are turned off (resolution_reasons = false in [organization]); "
            "resolve without reason= or turn them on",
        ),
        (Conflict("taken", field="name"), 409, "taken", "taken"),
        (TooLarge(256 * 1024), 413, "body is larger than 256 KiB", None),
    ],
)
def test_each_front_end_words_the_error(error: InboxError, status: int, api_words: str, chat_words: str | None) -> None:
    response = api.error_response(error)
    assert response.status == status
    body = json.loads(response.text or "")
    assert body["error"] == api_words == api.describe(error)
    assert body.get("field") == error.field
    if chat_words is not None:
        assert commands.describe(error) == chat_words


# --- over HTTP -----------------------------------------------------------------------------------


async def test_unknown_tag_speaks_api_to_the_api_and_chat_to_the_chat(bot: Bot) -> None:
    body = {"name": "VIP", "keywords": "vip", "actions": [{"type": "tag", "tag": "vip"}]}
    assert await raw(bot, "POST", "/api/automations", json=body) == (
        400,
        {"error": 'unknown tag "vip" — create it with POST /api/tags', "field": "actions"},
    )
    assert await bot.command("create VIP keywords=vip tags=vip") == (
        'unknown tag "vip" — create it with /automation tags add vip'
    )


@pytest.mark.parametrize(
    ("method", "path", "body", "error", "field"),
    [
        ("POST", "/api/automations", {"name": "x", "keywords": "a", "actions": [], "tagz": ["a"]},
         'unknown field "tagz"', "tagz"),
        ("POST", "/api/automations", {"name": "x", "keywords": "a", "actions": [{"type": "tag", "colour": 1}]},
         'unknown field "actions[0].colour"', "actions"),
        ("POST", "/api/automations/test", {"text": "bye", "chanel": "shop"}, 'unknown field "chanel"', "chanel"),
        ("POST", "/api/tags", {"name": "vip", "colour": "red"}, 'unknown field "colour"', "colour"),
        ("POST", "/api/conversations/{cid}/resolve", {"reasn": "x"}, 'unknown field "reasn"', "reasn"),
        ("POST", "/api/conversations/{cid}/reopen", {"agnt": "a-1"}, 'unknown field "agnt"', "agnt"),
        ("POST", "/api/conversations/{cid}/messages", {"text": "hi", "to": "x"}, 'unknown field "to"', "to"),
        ("PATCH", "/api/automations/{aid}", {"nmae": "y"}, 'unknown field "nmae"', "nmae"),
    ],
)  # fmt: skip
async def test_unknown_fields_are_refused_by_name(
    bot: Bot, method: str, path: str, body: dict[str, Any], error: str, field: str
) -> None:
    cid = (await bot.webhook("hello"))["conversation_id"]
    a = await bot.api(
        "POST",
        "/api/automations",
        json={"name": "Bye", "keywords": "bye", "actions": [{"type": "resolve"}]},
        expect=201,
    )
    before = (await bot.conversation(cid), await bot.api("GET", "/api/automations"))
    status, err = await raw(bot, method, path.format(cid=cid, aid=a["id"]), json=body)
    assert (status, err) == (400, {"error": error, "field": field})
    assert (await bot.conversation(cid), await bot.api("GET", "/api/automations")) == before
    assert (await bot.api("GET", "/api/tags"))["items"] == []


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/api/conversations?stauts=open", "stauts"),
        ("/api/conversations?status=open&limt=5", "limt"),
        ("/api/automations?page=2", "page"),
        ("/api/outbox?state=failed", "state"),
        ("/api/tags?limit=5", "limit"),  # labels are not paged
        ("/api/conversations/{cid}?expand=messages", "expand"),
    ],
)
async def test_unknown_query_parameters_are_refused_by_name(bot: Bot, path: str, name: str) -> None:
    cid = (await bot.webhook("hello"))["conversation_id"]
    status, err = await raw(bot, "GET", path.format(cid=cid))
    assert (status, err) == (400, {"error": f'unknown parameter "{name}"', "field": name})


async def test_read_only_fields_sent_back_in_a_change_are_ignored(bot: Bot) -> None:
    a = await bot.api(
        "POST",
        "/api/automations",
        json={"name": "Bye", "keywords": "bye", "actions": [{"type": "resolve"}]},
        expect=201,
    )
    changed = await bot.api("PATCH", f"/api/automations/{a['id']}", json={**a, "name": "Bye bye", "problem": None})
    assert (changed["id"], changed["name"], changed["created_at"]) == (a["id"], "Bye bye", a["created_at"])


async def test_accepted_forms_are_kept(bot: Bot) -> None:
    await bot.api("POST", "/api/reasons", json={"name": "Réglé"}, expect=201)
    # keywords as a list or as one string with typographic quotes (the one quote table)
    listed = await bot.api(
        "POST",
        "/api/automations",
        json={"name": "a", "keywords": ["x, y"], "actions": [{"type": "resolve"}]},
        expect=201,
    )
    assert listed["keywords"] == ["x, y"]
    quoted = await bot.api(
        "POST",
        "/api/automations",
        json={"name": "b", "keywords": "«au revoir, à bientôt», bye", "actions": [{"type": "resolve"}]},
        expect=201,
    )
    assert quoted["keywords"] == ["au revoir, à bientôt", "bye"]
    # match, channels and types may be null: the default
    nulls = await bot.api(
        "POST",
        "/api/automations",
        json={
            "name": "c",
            "keywords": "z",
            "match": None,
            "channels": None,
            "types": None,
            "actions": [{"type": "resolve"}],
        },
        expect=201,
    )
    assert (nulls["match"], nulls["channels"], nulls["types"]) == ("any", [], [])
    # `agent`, or `by` as older clients say it
    cid = (await bot.webhook("hello"))["conversation_id"]
    conv = await bot.api("POST", f"/api/conversations/{cid}/resolve", json={"by": "a-9", "reason": "réglé"})
    assert (conv["resolved_by"], conv["resolution_reason"]) == ("agent:a-9", "Réglé")
    conv = await bot.api("POST", f"/api/conversations/{cid}/reopen", json={"agent": 12})
    assert conv["status"] == "open"


async def test_json_answers_are_readable_utf8(bot: Bot) -> None:
    await bot.api("POST", "/api/reasons", json={"name": "Réglé"}, expect=201)
    cid = (await bot.webhook("Merci, à bientôt 👋"))["conversation_id"]
    await bot.api("POST", f"/api/conversations/{cid}/resolve", json={"reason": "Réglé"})
    resp = await bot.client.get(f"/api/conversations/{cid}", headers={"Authorization": f"Bearer {TOKEN}"})
    assert resp.headers["Content-Type"] == "application/json; charset=utf-8"
    raw_body = await resp.read()
    assert '"resolution_reason": "Réglé"'.encode() in raw_body
    assert "à bientôt 👋".encode() in raw_body
    assert b"\\u00e9" not in raw_body
    # refusals too
    resp = await bot.client.post(
        "/api/conversations/999/resolve", json={"reason": "Réglé"}, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert resp.status == 404 and b"\\u" not in await resp.read()
    status, err = await raw(bot, "DELETE", "/api/reasons/Ferm%C3%A9")
    assert (status, err) == (404, {"error": 'unknown resolution reason "Fermé" — see GET /api/reasons'})


async def test_reason_rules_are_the_services(make_bot: MakeBot, db_url: str) -> None:
    bot = await make_bot(make_settings(db_url, organization={"resolution_reasons": False}))
    cid = (await bot.webhook("hello"))["conversation_id"]
    status, err = await raw(bot, "POST", f"/api/conversations/{cid}/resolve", json={"reason": "Contact left"})
    assert (status, err) == (
        403,
        {"error": "resolution reasons are turned off (resolution_reasons = false in [organization])"},
    )
