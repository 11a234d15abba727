"""The JSON API under /api (bearer tokens), its OpenAPI document, /healthz and /metrics.

Handlers only parse (pydantic models of `bot/front/schemas.py`) and format (`bot/front/views.py`);
changes go through the services. The API's wording of the service's errors, and their HTTP
statuses, live in `describe` and `STATUS` below.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hmac
import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, get_args

from aiohttp import web
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from pydantic import BaseModel, ValidationError

from bot.domain import Automation, QueueKey, Role, User
from bot.errors import (
    Conflict,
    Forbidden,
    InboxError,
    Invalid,
    Missing,
    NotFound,
    RevisionNotFound,
    TooLarge,
    TurnedOff,
    UnknownField,
    UnknownLabel,
    UnknownTeam,
)
from bot.front import schemas, views
from bot.front.openapi import OPENAPI, OPERATIONS
from bot.metrics import Metrics
from bot.services.admin import LABEL_KINDS, Admin, rule_of
from bot.services.audit import Audit
from bot.services.inbox import Inbox
from bot.services.insight import Insight, parse_since
from bot.services.people import People
from bot.store import queue, repo
from connectors.http import BadBody, bad_text, parse_object, read_body

log = logging.getLogger("inbox.api")

MAX_API_BODY = 256 * 1024
# ASCII digits only (str.isdigit accepts "²"), at most 18 of them (fits a 64-bit integer column)
DIGITS = re.compile(r"[0-9]{1,18}")
QUEUE_CURSOR = re.compile(r"q:([0-3]):(-|-?[0-9]{1,18}):([0-9]{1,18})")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# A bearer-token request may act as one user (their id): recorded as `user:<id>`, with their role.
USER_HEADER = "X-Inbox-User"
USER_KEY = web.RequestKey("inbox_user", User)
PEOPLE = People()
AUDIT = Audit()
DEFAULT_LIMIT = 50
MAX_LIMIT = schemas.MAX_LIMIT

ADMIN_KEY = web.AppKey("admin", Admin)
INBOX_KEY = web.AppKey("inbox", Inbox)
PEOPLE_KEY = web.AppKey("people", People)
INSIGHT_KEY = web.AppKey("insight", Insight)
TOKENS_KEY = web.AppKey("api_tokens", frozenset)
METRICS_KEY = web.AppKey("metrics", Metrics)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
M = TypeVar("M", bound=schemas.Request)


# --- the API's words ------------------------------------------------------------------------------

# The HTTP status of each kind of refusal; the first that matches wins.
STATUS: tuple[tuple[type[InboxError], int], ...] = (
    (TooLarge, 413),
    (Invalid, 400),
    (NotFound, 404),
    (Conflict, 409),
    (Forbidden, 403),
)
# What to say when a required value is missing, by (what it belongs to, field).
MISSING: dict[tuple[str, str | None], str] = {
    ("automation", "name"): 'give the automation a name, e.g. "name": "Au revoir"',
    ("automation", "keywords"): 'keywords: give at least one keyword, e.g. "keywords": "au revoir, bye"',
    ("automation", "actions"): 'give at least one action, e.g. "actions": [{"type": "tag", "tag": "closing"}]',
    ("test", "text"): 'give the message to test, e.g. {"text": "Au revoir !"}',
    ("reply", "text"): "text must be a non-empty string",
    ("user", "email"): 'give the user\'s email, e.g. "email": "ana@example.com"',
    ("user", "role"): 'give the user\'s role, e.g. "role": "agent" (or "admin")',
    ("team", "name"): 'give the team\'s name, e.g. {"name": "Billing"}',
    ("topics", "add"): 'give topics to add or remove, e.g. {"add": ["Refunds"], "remove": ["Sales"]}',
    ("assignment", "user"): 'give the user to assign, e.g. {"user": 3}, or {"user": null} to unassign',
}


def describe(exc: InboxError) -> str:
    """An error of the services, in the API's words (the way out is an API call)."""
    match exc:
        case Missing(of=of, field=field) if (of, field) in MISSING:
            return MISSING[of, field]
        case Missing(of=of, field="name") if of in LABEL_KINDS:
            return f'give the {LABEL_KINDS[of].noun}\'s name, e.g. {{"name": "billing"}}'
        case UnknownLabel(kind=kind, name=name):
            k = LABEL_KINDS[kind]
            return f'unknown {k.noun} "{name}" — create it with POST /api/{k.plural}'
        case UnknownTeam(name=name):
            return f'unknown team "{name}" — create it with POST /api/teams'
        case RevisionNotFound(automation_id=aid, revision=n):
            return f"automation #{aid} has no revision {n} — see GET /api/automations/{aid}/revisions"
        case NotFound(what="automation"):
            return f"no automation {exc.shown} — see GET /api/automations"
        case NotFound(what="user"):
            return f"no user {exc.shown} — see GET /api/users"
        case NotFound(what="team", ref=ref):
            return f'unknown team "{ref}" — see GET /api/teams'
        case NotFound(what=what, ref=ref) if what in LABEL_KINDS:
            k = LABEL_KINDS[what]
            return f'unknown {k.noun} "{ref}" — see GET /api/{k.plural}'
        case NotFound(what=what, ref=ref):
            return f"no such {what}: {ref}"
        case TooLarge(limit=limit):
            return f"body is larger than {limit // 1024} KiB"
        case TurnedOff(in_action=True):
            return f"{exc}; resolve without a reason or turn them on"
    return str(exc)


_dumps = functools.partial(json.dumps, ensure_ascii=False)


def _json(data: Any, status: int = 200, *, headers: Mapping[str, str] | None = None) -> web.Response:
    """The one place the API serializes JSON: readable UTF-8 ("Réglé", not "R\\u00e9gl\\u00e9")."""
    return web.json_response(data, status=status, headers=headers, dumps=_dumps)


def error_response(exc: InboxError) -> web.Response:
    status = next((code for kind, code in STATUS if isinstance(exc, kind)), 400)
    body = {"error": describe(exc)}
    if exc.field is not None:
        body["field"] = exc.field
    return _json(body, status)


# --- parsing requests ---------------------------------------------------------------------------------


def _expect(annotation: Any) -> str | None:
    """The `Expect` text in a (possibly nested) annotation."""
    for arg in get_args(annotation):
        if isinstance(arg, schemas.Expect):
            return arg.text
        found = _expect(arg)
        if found is not None:
            return found
    return None


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    for arg in get_args(annotation):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
        found = _nested_model(arg)
        if found is not None:
            return found
    return None


def _locate(model: type[BaseModel], loc: tuple[int | str, ...]) -> tuple[str, str | None]:
    """The path of a pydantic error's location as a person reads it (`actions[0].tag`) and what a
    valid value is there."""
    path, expect = "", None
    current: type[BaseModel] | None = model
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif current is not None and part in current.model_fields:
            info = current.model_fields[part]
            path += f".{part}" if path else part
            expect = next((m.text for m in info.metadata if isinstance(m, schemas.Expect)), None)
            expect = expect or _expect(info.annotation)
            current = _nested_model(info.annotation)
        # other parts name the member of a union pydantic tried: not something a person wrote
    return path, expect


def invalid(model: type[BaseModel], exc: ValidationError, *, of: str, where: str = "field") -> Invalid:
    """The first problem pydantic found, as an error of the tree; unknown fields first."""
    errors = sorted(exc.errors(include_url=False), key=lambda e: e["type"] != "extra_forbidden")
    err = errors[0]
    loc = tuple(err["loc"])
    if err["type"] == "extra_forbidden":
        parent, _ = _locate(model, loc[:-1])
        return UnknownField(f"{parent}.{loc[-1]}" if parent else str(loc[-1]), where=where)
    path, expect = _locate(model, loc)
    field = str(loc[0]) if loc else None
    if err["type"] == "missing":
        return Missing(path, of=of) if len(loc) == 1 else Invalid(field, f"{path} is missing")
    return Invalid(field, f"{path} must be {expect}" if expect else f"{path} is not valid")


async def read_json(request: web.Request, *, required: bool = True) -> dict[str, Any]:
    """The body as a JSON object; {} for an empty body when not `required`."""
    body = await read_body(request, MAX_API_BODY)
    if body is None:
        raise TooLarge(MAX_API_BODY)
    if not body.strip():
        if required:
            raise Invalid(None, "body must be a JSON object")
        return {}
    try:
        return parse_object(body)
    except BadBody as exc:
        raise Invalid(None, str(exc)) from None


async def read_model(request: web.Request, model: type[M], *, required: bool = True, of: str | None = None) -> M:
    """The body validated by `model` (unknown fields refused)."""
    return parse_model(model, await read_json(request, required=required), of=of)


def parse_model(model: type[M], data: dict[str, Any], *, of: str | None = None) -> M:
    """`data` validated by `model` (unknown fields refused)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid(model, exc, of=of or model.of) from None


def read_query(request: web.Request, model: type[M]) -> M:
    """The query string validated by `model` (unknown parameters refused); first value of each."""
    data = {k: request.query.get(k) for k in request.query}
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid(model, exc, of="request", where="parameter") from None


def encode_queue_cursor(key: QueueKey) -> str:
    """An opaque token for the queue's next page: the last conversation's priority, waiting since
    (in microseconds since 1970; `-` when not waiting) and id."""
    waiting = "-" if key.waiting_since is None else str((key.waiting_since - EPOCH) // timedelta(microseconds=1))
    raw = f"q:{key.priority}:{waiting}:{key.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_queue_cursor(cursor: str | None) -> QueueKey | None:
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        match = QUEUE_CURSOR.fullmatch(raw)
        if match is None:
            raise ValueError
        rank, waiting, last_id = match.groups()
        since = None if waiting == "-" else EPOCH + timedelta(microseconds=int(waiting))
        return QueueKey(int(rank), since, int(last_id))
    except (ValueError, OverflowError, binascii.Error, UnicodeDecodeError):
        raise Invalid("cursor", "invalid cursor — pass next_cursor from the previous page of the same sort") from None


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"id:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int | None:
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if not raw.startswith("id:"):
            raise ValueError
        if not DIGITS.fullmatch(raw[3:]):
            raise ValueError
        return int(raw[3:])
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise Invalid("cursor", "invalid cursor — pass next_cursor from the previous page") from None


def parse_limit(value: str | None) -> int:
    if value is None or value == "":
        return DEFAULT_LIMIT
    if not DIGITS.fullmatch(value) or not 1 <= int(value) <= MAX_LIMIT:
        raise Invalid("limit", f"limit must be a whole number from 1 to {MAX_LIMIT}")
    return int(value)


def page(items: list[dict[str, Any]], ids: list[int], limit: int) -> dict[str, Any]:
    more = len(items) > limit
    items = items[:limit]
    return {"items": items, "next_cursor": encode_cursor(ids[limit - 1]) if more else None}


def agent_of(
    body: schemas.Resolve | schemas.Reopen | schemas.Reply | schemas.TopicsChange | schemas.Assign,
) -> str:
    """Who makes the change (`agent` in the body, recorded as `agent:<id>`); `api` when not said."""
    agent = body.agent or getattr(body, "by", None) or "api"
    if len(str(agent)) > 200:
        raise Invalid("agent", "agent must be the agent's id (a string)")
    return str(agent)


def actor_of(request: web.Request, body: schemas.Resolve | schemas.Reopen | schemas.Reply | schemas.Assign) -> str:
    """How the change is recorded: `user:<id>` for the user of X-Inbox-User, else `agent:<id>`."""
    user = request.get(USER_KEY)
    if user is None:
        return f"agent:{agent_of(body)}"
    if body.agent is not None or getattr(body, "by", None) is not None:
        raise Invalid("agent", f"agent cannot be given with {USER_HEADER}: the change is recorded as that user")
    return str(user.actor)


def settings_actor(request: web.Request) -> str:
    """Who makes a change to settings (automations, labels, people): `user:<id>` for the user of
    X-Inbox-User, else `api` (the token)."""
    user = request.get(USER_KEY)
    return user.actor if user is not None else "api"


async def acting_user(request: web.Request) -> User | None:
    """The user a bearer-token request acts for (`X-Inbox-User: <user id>`), or None."""
    raw = request.headers.get(USER_HEADER)
    if raw is None:
        return None
    raw = raw.strip()
    if not DIGITS.fullmatch(raw):
        raise Invalid(USER_HEADER, f"{USER_HEADER} must be a user id (a number)")
    try:
        user = await PEOPLE.get_user(int(raw))
    except NotFound:
        raise Invalid(USER_HEADER, f"unknown user {raw} in {USER_HEADER} — see GET /api/users") from None
    if not user.active:
        raise Invalid(USER_HEADER, f"user {raw} ({user.email}) is deactivated")
    return user


def path_id(request: web.Request, what: str) -> int:
    raw = request.match_info["id"]
    if not DIGITS.fullmatch(raw):
        raise NotFound(what, raw)
    return int(raw)


# --- the middleware: tokens, text the store cannot hold, errors in the API's words ------------------------


@web.middleware
async def api_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith("/api/") or request.path == "/api/openapi.json":
        return await handler(request)
    tokens: frozenset[str] = request.app[TOKENS_KEY]
    auth = request.headers.get("Authorization", "")
    scheme, _, token = auth.partition(" ")
    ok = (
        scheme.lower() == "bearer"
        and token.strip()
        and any(hmac.compare_digest(token.strip().encode("utf-8", "surrogateescape"), t.encode()) for t in tokens)
    )
    if not ok:
        request.app[METRICS_KEY].rejected.labels("api", "token").inc()
        return _json(
            {"error": "missing or invalid bearer token — send Authorization: Bearer <token> (see [api] tokens_env)"},
            401,
            headers={"WWW-Authenticate": "Bearer"},
        )
    try:
        problem = bad_text([request.path, *request.query.keys(), *request.query.values()])
        if problem is not None:
            raise Invalid(None, problem)
        return await handler(request)
    except InboxError as exc:
        return error_response(exc)
    except web.HTTPException as exc:
        if exc.status < 400 or exc.content_type == "application/json":
            raise
        # unknown routes and methods answer JSON like the rest of the API
        what = "no such endpoint" if exc.status == 404 else exc.reason.lower()
        return _json(
            {"error": f"{what}: {request.method} {request.path} — see GET /api/openapi.json"},
            exc.status,
            headers={k: v for k, v in exc.headers.items() if k == "Allow"},
        )


# --- conversations ----------------------------------------------------------------------------


async def list_conversations(request: web.Request) -> web.Response:
    q = read_query(request, schemas.ConversationQuery)
    if q.sort not in (None, "", "queue"):
        raise Invalid("sort", f'unknown sort "{q.sort}" — use sort=queue, or leave it out for newest first')
    queue_order = q.sort == "queue"
    me = request.get(USER_KEY)
    if q.assignee and q.assignee.casefold() == "me" and me is None:
        raise Invalid(
            "assignee",
            f"assignee=me needs to know who you are: send {USER_HEADER}: <your user id>, or give assignee=<user id>",
        )
    limit = parse_limit(q.limit)
    convs = await request.app[INBOX_KEY].conversations(
        status=q.status or None,
        channel=q.channel,
        topic=q.topic,
        tag=q.tag,
        q=q.q,
        team=q.team,
        assignee=q.assignee,
        priority=q.priority,
        contact=q.contact,
        me=me,
        queue_order=queue_order,
        after=decode_queue_cursor(q.cursor) if queue_order else None,
        before_id=None if queue_order else decode_cursor(q.cursor),
        limit=limit + 1,
    )
    items = await views.conversations_json(convs[:limit])
    more = len(convs) > limit
    cursor = None
    if more:
        last = convs[limit - 1]
        cursor = encode_queue_cursor(last.queue_key) if queue_order else encode_cursor(last.id)
    return _json({"items": items, "next_cursor": cursor})


async def _conversation(conversation_id: int) -> web.Response:
    data = await views.conversation_detail_json(conversation_id)
    if data is None:
        raise NotFound("conversation", conversation_id)
    return _json(data)


async def get_conversation(request: web.Request) -> web.Response:
    return await _conversation(path_id(request, "conversation"))


async def resolve_conversation(request: web.Request) -> web.Response:
    cid = path_id(request, "conversation")
    body = await read_model(request, schemas.Resolve, required=False)
    reason = await request.app[ADMIN_KEY].resolution_reason(body.reason)
    await request.app[INBOX_KEY].resolve(cid, actor=actor_of(request, body), reason=reason)
    return await _conversation(cid)


async def reopen_conversation(request: web.Request) -> web.Response:
    cid = path_id(request, "conversation")
    body = await read_model(request, schemas.Reopen, required=False)
    await request.app[INBOX_KEY].reopen(cid, actor=actor_of(request, body))
    return await _conversation(cid)


async def assign_conversation(request: web.Request) -> web.Response:
    cid = path_id(request, "conversation")
    body = await read_model(request, schemas.Assign)
    actor = actor_of(request, body)
    await request.app[INBOX_KEY].assign(cid, body.user, by=request.get(USER_KEY), actor=actor)
    return await _conversation(cid)


async def reply_to_conversation(request: web.Request) -> web.Response:
    cid = path_id(request, "conversation")
    body = await read_model(request, schemas.Reply)
    if not body.text.strip():
        raise Missing("text", of="reply")
    mid = await request.app[INBOX_KEY].reply(cid, text=body.text, author=actor_of(request, body))
    message = await repo.get_message(mid)
    assert message is not None
    return _json(views.message_json(message, []), 201)


async def change_conversation_topics(request: web.Request) -> web.Response:
    cid = path_id(request, "conversation")
    body = await read_model(request, schemas.TopicsChange)
    actor = agent_of(body)
    await request.app[INBOX_KEY].change_topics(cid, add=body.add, remove=body.remove, actor=f"agent:{actor}")
    return await _conversation(cid)


# --- automations --------------------------------------------------------------------------------


async def list_automations(request: web.Request) -> web.Response:
    q = read_query(request, schemas.Page)
    limit = parse_limit(q.limit)
    found = await request.app[ADMIN_KEY].list_automations(after_id=decode_cursor(q.cursor), limit=limit + 1)
    return _json(page([views.automation_json(a) for a in found], [a.id for a in found], limit))


async def _saved(request: web.Request, a: Automation, status: int = 200) -> web.Response:
    """An automation as saved, with the warnings it raises."""
    warnings = await request.app[INSIGHT_KEY].lint_saved(a)
    return _json({**views.automation_json(a), "warnings": views.warnings_json(warnings)}, status)


async def create_automation(request: web.Request) -> web.Response:
    body = await read_model(request, schemas.AutomationIn)
    a = await request.app[ADMIN_KEY].create(body.model_dump(exclude_unset=True), actor=settings_actor(request))
    return await _saved(request, a, 201)


async def get_automation(request: web.Request) -> web.Response:
    return _json(views.automation_json(await request.app[ADMIN_KEY].find(path_id(request, "automation"))))


async def change_automation(request: web.Request) -> web.Response:
    aid = path_id(request, "automation")
    body = await read_model(request, schemas.AutomationChange)
    a = await request.app[ADMIN_KEY].update(aid, body.model_dump(exclude_unset=True), actor=settings_actor(request))
    return await _saved(request, a)


async def delete_automation(request: web.Request) -> web.Response:
    a = await request.app[ADMIN_KEY].delete(path_id(request, "automation"), actor=settings_actor(request))
    return _json({"deleted": True, "id": a.id, "name": a.name})


async def enable_automation(request: web.Request) -> web.Response:
    a, _ = await request.app[ADMIN_KEY].set_enabled(path_id(request, "automation"), True, actor=settings_actor(request))
    return await _saved(request, a)


async def disable_automation(request: web.Request) -> web.Response:
    a, _ = await request.app[ADMIN_KEY].set_enabled(
        path_id(request, "automation"), False, actor=settings_actor(request)
    )
    return _json(views.automation_json(a))


async def list_automation_runs(request: web.Request) -> web.Response:
    automation_id = path_id(request, "automation")
    q = read_query(request, schemas.Page)
    limit = parse_limit(q.limit)
    cursor = decode_cursor(q.cursor)
    runs = await repo.list_runs(automation_id=automation_id, before_id=cursor, limit=limit + 1)
    if not runs and cursor is None:
        await request.app[ADMIN_KEY].find(automation_id)  # 404 for an id that never ran and does not exist
    # a deleted automation's runs stay listed here, with its name as it was
    return _json(page([views.run_json(r) for r in runs], [r.id for r in runs], limit))


async def list_automation_revisions(request: web.Request) -> web.Response:
    automation_id = path_id(request, "automation")
    q = read_query(request, schemas.Page)
    limit = parse_limit(q.limit)
    found = await request.app[ADMIN_KEY].revisions(automation_id, before=decode_cursor(q.cursor), limit=limit + 1)
    return _json(page([views.revision_json(r) for r in found], [r.revision for r in found], limit))


async def rollback_automation(request: web.Request) -> web.Response:
    automation_id = path_id(request, "automation")
    body = await read_model(request, schemas.Rollback)
    a = await request.app[ADMIN_KEY].rollback(automation_id, body.revision, actor=settings_actor(request))
    return _json(views.automation_json(a))


async def test_automations(request: web.Request) -> web.Response:
    body = await read_model(request, schemas.AutomationTest)
    result = await request.app[ADMIN_KEY].test(body.text, channel=body.channel or None, type=body.type or None)
    return _json(views.test_json(result.evaluation, [(name, describe(why)) for name, why in result.skipped]))


async def preview_automation(request: web.Request) -> web.Response:
    body = await read_model(request, schemas.AutomationPreview)
    fields = body.model_dump(exclude_unset=True, exclude={"since"})
    since = parse_since(body.since, now=datetime.now(UTC))
    rule = await request.app[ADMIN_KEY].candidate(fields)
    preview = await request.app[INSIGHT_KEY].preview(rule, since=since, enabled=body.enabled)
    return _json(views.preview_json(preview))


async def preview_saved_automation(request: web.Request) -> web.Response:
    aid = path_id(request, "automation")
    body = await read_model(request, schemas.PreviewIn, required=False)
    since = parse_since(body.since, now=datetime.now(UTC))
    a = await request.app[ADMIN_KEY].find(aid)
    preview = await request.app[INSIGHT_KEY].preview(rule_of(a), since=since, enabled=a.enabled)
    return _json(views.preview_json(preview))


async def lint_automations(request: web.Request) -> web.Response:
    return _json({"warnings": views.warnings_json(await request.app[INSIGHT_KEY].lint_all())})


async def explain_conversation(request: web.Request) -> web.Response:
    entries = await request.app[INSIGHT_KEY].why(path_id(request, "conversation"))
    return _json(views.why_json(entries))


# --- labels ----------------------------------------------------------------------------------------


def label_handlers(kind: str) -> dict[str, Handler]:
    """The handlers of one kind of label, by operationId."""
    word = kind.capitalize()

    async def list_(request: web.Request) -> web.Response:
        names = await request.app[ADMIN_KEY].list_labels(kind)
        return _json({"items": [{"name": n} for n in names], "next_cursor": None})

    async def add(request: web.Request) -> web.Response:
        body = await read_model(request, schemas.LabelIn, of=kind)
        created = await request.app[ADMIN_KEY].add_label(kind, body.name, actor=settings_actor(request))
        return _json({"name": created}, 201)

    async def delete(request: web.Request) -> web.Response:
        deleted = await request.app[ADMIN_KEY].delete_label(
            kind, request.match_info["name"], actor=settings_actor(request)
        )
        return _json({"deleted": True, "name": deleted})

    if kind == "topic":  # topics have their own list and create (with priority and team)
        return {f"delete{word}": delete}
    return {f"list{word}s": list_, f"create{word}": add, f"delete{word}": delete}


# --- people: users and teams ------------------------------------------------------------------------


async def list_users(request: web.Request) -> web.Response:
    q = read_query(request, schemas.Page)
    limit = parse_limit(q.limit)
    found = await request.app[PEOPLE_KEY].list_users(after_id=decode_cursor(q.cursor), limit=limit + 1)
    return _json(page([views.user_json(u) for u in found], [u.id for u in found], limit))


async def create_user(request: web.Request) -> web.Response:
    body = await read_model(request, schemas.UserIn)
    created = await request.app[PEOPLE_KEY].add_user(
        email=body.email,
        role=body.role,
        name=body.name,
        teams=body.teams,
        password=body.password,
        actor=settings_actor(request),
    )
    data = views.user_json(created.user)
    if created.password is not None:  # generated: shown this once, never again
        data["password"] = created.password
    return _json(data, 201)


async def get_user(request: web.Request) -> web.Response:
    return _json(views.user_json(await request.app[PEOPLE_KEY].get_user(path_id(request, "user"))))


async def change_user(request: web.Request) -> web.Response:
    uid = path_id(request, "user")
    data = await read_json(request)
    if "email" in data:  # a person signs in with it: changing it is a new user, not a field change
        raise Invalid("email", "an email cannot be changed — add a user with the new email and deactivate this one")
    changes = parse_model(schemas.UserChange, data).model_dump(exclude_unset=True)
    # null leaves a field as it is (as in a change of an automation), except language: null is "none"
    given = {k: v for k, v in changes.items() if v is not None or k == "language"}
    user = await request.app[PEOPLE_KEY].update_user(uid, **given, actor=settings_actor(request))
    return _json(views.user_json(user))


async def list_teams(request: web.Request) -> web.Response:
    teams = await request.app[PEOPLE_KEY].list_teams()
    return _json({"items": [views.team_json(t) for t in teams], "next_cursor": None})


async def create_team(request: web.Request) -> web.Response:
    body = await read_model(request, schemas.TeamIn)
    team = await request.app[PEOPLE_KEY].add_team(body.name, actor=settings_actor(request))
    return _json(views.team_json(team), 201)


async def delete_team(request: web.Request) -> web.Response:
    team = await request.app[PEOPLE_KEY].delete_team(request.match_info["name"], actor=settings_actor(request))
    return _json({"deleted": True, "name": team.name})


async def list_topics(request: web.Request) -> web.Response:
    topics = await request.app[ADMIN_KEY].list_topics()
    return _json({"items": [views.topic_json(t) for t in topics], "next_cursor": None})


async def create_topic(request: web.Request) -> web.Response:
    body = await read_model(request, schemas.TopicIn)
    topic = await request.app[ADMIN_KEY].add_topic(
        body.name, priority=body.priority, team=body.team, actor=settings_actor(request)
    )
    return _json(views.topic_json(topic), 201)


async def change_topic(request: web.Request) -> web.Response:
    body = await read_model(request, schemas.TopicChange)
    topic = await request.app[ADMIN_KEY].change_topic(
        request.match_info["name"],
        priority=body.priority,
        team=body.team if "team" in body.model_fields_set else ...,  # null: no team; absent: as it is
        actor=settings_actor(request),
    )
    return _json(views.topic_json(topic))


# --- the audit log ---------------------------------------------------------------------------------


async def list_audit(request: web.Request) -> web.Response:
    q = read_query(request, schemas.AuditQuery)
    limit = parse_limit(q.limit)
    found = await AUDIT.entries(
        actor=q.actor or None, kind=q.kind or None, before_id=decode_cursor(q.cursor), limit=limit + 1
    )
    return _json(page([views.audit_json(e) for e in found], [e.id for e in found], limit))


# --- outbox ----------------------------------------------------------------------------------------


async def list_outbox(request: web.Request) -> web.Response:
    q = read_query(request, schemas.OutboxQuery)
    status = q.status or None
    if status not in (None, "pending", "running", "done", "failed"):
        raise Invalid("status", "status must be pending, running, done or failed")
    conv = q.conversation_id
    if conv is not None and not DIGITS.fullmatch(conv):
        raise Invalid("conversation_id", "conversation_id must be a number")
    limit = parse_limit(q.limit)
    jobs = await repo.list_jobs(
        status=status,
        conversation_id=int(conv) if conv else None,
        before_id=decode_cursor(q.cursor),
        limit=limit + 1,
    )
    return _json(page([views.job_json(j) for j in jobs], [j.id for j in jobs], limit))


async def retry_outbox_job(request: web.Request) -> web.Response:
    jid = path_id(request, "job")
    if not await repo.requeue_job(jid):
        raise Conflict(f"job {jid} is not failed (only failed jobs can be retried)")
    job = await repo.get_job(jid)
    assert job is not None
    return _json(views.job_json(job))


# --- health, metrics, openapi -------------------------------------------------------------------


async def health(request: web.Request) -> web.Response:
    try:
        await repo.ping()
    except Exception as exc:
        log.warning("health check: store does not answer: %s", exc)
        return _json({"status": "unavailable", "store": "down"}, 503)
    return _json({"status": "ok", "store": "ok"})


async def metrics(request: web.Request) -> web.Response:
    m = request.app[METRICS_KEY]
    try:
        m.outbox_pending.set(await repo.count_jobs("pending"))
        m.outbox_failed.set(await repo.count_jobs("failed"))
        m.set_queue(await queue.queue_figures(), now=repo.now())
    except Exception:  # metrics must answer even when the store does not
        log.warning("metrics: could not count outbox jobs and the queue")
    # the Prometheus text exposition format, version 0.0.4
    return web.Response(body=m.render(), headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4})


def only(method: str) -> Handler:
    """A 405 for every other method of a fixed path that `/api/automations/{id}` would also match."""

    async def refuse(request: web.Request) -> web.StreamResponse:
        return _json({"error": f"{request.method} is not allowed here; use {method}"}, 405, headers={"Allow": method})

    return refuse


async def openapi(request: web.Request) -> web.Response:
    return _json(OPENAPI)


HANDLERS: dict[str, Handler] = {
    "health": health,
    "metrics": metrics,
    "openapi": openapi,
    "listConversations": list_conversations,
    "getConversation": get_conversation,
    "explainConversation": explain_conversation,
    "resolveConversation": resolve_conversation,
    "reopenConversation": reopen_conversation,
    "replyToConversation": reply_to_conversation,
    "changeConversationTopics": change_conversation_topics,
    "assignConversation": assign_conversation,
    "listAutomations": list_automations,
    "createAutomation": create_automation,
    "testAutomations": test_automations,
    "previewAutomation": preview_automation,
    "previewSavedAutomation": preview_saved_automation,
    "lintAutomations": lint_automations,
    "getAutomation": get_automation,
    "changeAutomation": change_automation,
    "deleteAutomation": delete_automation,
    "enableAutomation": enable_automation,
    "disableAutomation": disable_automation,
    "listAutomationRuns": list_automation_runs,
    "listAutomationRevisions": list_automation_revisions,
    "rollbackAutomation": rollback_automation,
    "listAudit": list_audit,
    "listUsers": list_users,
    "createUser": create_user,
    "getUser": get_user,
    "changeUser": change_user,
    "listTeams": list_teams,
    "createTeam": create_team,
    "deleteTeam": delete_team,
    "listOutbox": list_outbox,
    "retryOutboxJob": retry_outbox_job,
    **{op_id: h for kind in LABEL_KINDS for op_id, h in label_handlers(kind).items()},
    "listTopics": list_topics,
    "createTopic": create_topic,
    "changeTopic": change_topic,
}


def _checked(handler: Handler, *, no_query: bool, settings: bool) -> Handler:
    """`handler` behind the route's own checks: `no_query`, a route that takes no query
    parameters (any is refused, named); the user of X-Inbox-User, when given; `settings`, a route
    an agent may not use (acting through X-Inbox-User, an agent works on conversations only)."""

    @functools.wraps(handler)
    async def checked(request: web.Request) -> web.StreamResponse:
        if no_query:
            read_query(request, schemas.Request)
        # who acts is asked only by an operation (an unknown route or method stays a 404/405)
        user = await acting_user(request)
        if user is not None:
            request[USER_KEY] = user
        if settings and user is not None and user.role is Role.AGENT:
            raise Forbidden(f"{user.email} is an agent: agents work on conversations; settings need an admin")
        return await handler(request)

    return checked


def routes() -> list[web.RouteDef]:
    """Every operation of the route table (`bot/front/openapi.py`), with its handler."""
    defs = []
    for op in OPERATIONS:
        handler = HANDLERS[op.id]
        if not op.public:
            handler = _checked(handler, no_query=op.query is None, settings=op.tag != "conversations")
        defs.append(web.get(op.path, handler) if op.method == "get" else web.route(op.method.upper(), op.path, handler))
    # without these, PATCH /api/automations/test (…/preview, …/lint) would fall through to
    # /api/automations/{id}: a 404 or a 400 instead of a 405
    for path, method in (
        ("/api/automations/test", "POST"),
        ("/api/automations/preview", "POST"),
        ("/api/automations/lint", "GET"),
    ):
        at = max(i for i, d in enumerate(defs) if isinstance(d, web.RouteDef) and d.path == path)
        defs.insert(at + 1, web.route("*", path, only(method)))
    return defs
