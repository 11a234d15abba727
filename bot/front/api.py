"""The JSON API under /api (bearer tokens), its OpenAPI document, /healthz and /metrics."""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from bot.front import views
from bot.front.openapi import OPENAPI
from bot.metrics import Metrics
from bot.request_body import BadBody, bad_text, parse_object, read_body
from bot.services.admin import Admin, AdminError
from bot.services.inbox import ConversationConflict, ConversationNotFound, Inbox
from bot.store import repo

log = logging.getLogger("inbox.api")

MAX_API_BODY = 256 * 1024
# ASCII digits only (str.isdigit accepts "²"), at most 18 of them (fits a 64-bit integer column)
DIGITS = re.compile(r"[0-9]{1,18}")
DEFAULT_LIMIT = 50
MAX_LIMIT = 200

ADMIN_KEY = web.AppKey("admin", Admin)
INBOX_KEY = web.AppKey("inbox", Inbox)
TOKENS_KEY = web.AppKey("api_tokens", frozenset)
METRICS_KEY = web.AppKey("metrics", Metrics)


class ApiError(Exception):
    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status)


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
        raise ApiError(400, "invalid cursor — pass next_cursor from the previous page", field="cursor") from None


def parse_limit(value: str | None) -> int:
    if value is None or value == "":
        return DEFAULT_LIMIT
    if not DIGITS.fullmatch(value) or not 1 <= int(value) <= MAX_LIMIT:
        raise ApiError(400, f"limit must be a whole number from 1 to {MAX_LIMIT}", field="limit")
    return int(value)


def page(items: list[dict[str, Any]], ids: list[int], limit: int) -> dict[str, Any]:
    more = len(items) > limit
    items = items[:limit]
    return {"items": items, "next_cursor": encode_cursor(ids[limit - 1]) if more else None}


def agent_of(body: dict[str, Any]) -> str:
    """Who makes the change (`agent` in the body, recorded as `agent:<id>`); `api` when not said."""
    agent = body.get("agent") or body.get("by") or "api"
    if not isinstance(agent, str | int) or isinstance(agent, bool) or len(str(agent)) > 200:
        raise ApiError(400, "agent must be the agent's id (a string)", field="agent")
    return str(agent)


def path_id(request: web.Request, key: str = "id") -> int:
    raw = request.match_info[key]
    if not DIGITS.fullmatch(raw):
        raise ApiError(404, f"no such {key.replace('_', ' ')}: {raw}")
    return int(raw)


async def read_json(request: web.Request, *, required: bool = True) -> dict[str, Any]:
    body = await read_body(request, MAX_API_BODY)
    if body is None:
        raise ApiError(413, f"body is larger than {MAX_API_BODY // 1024} KiB")
    if not body.strip():
        if required:
            raise ApiError(400, "body must be a JSON object")
        return {}
    try:
        return parse_object(body)
    except BadBody as exc:
        raise ApiError(400, str(exc)) from None


@web.middleware
async def api_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
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
        return web.json_response(
            {"error": "missing or invalid bearer token — send Authorization: Bearer <token> (see [api] tokens_env)"},
            status=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
    try:
        problem = bad_text([request.path, *request.query.keys(), *request.query.values()])
        if problem is not None:
            raise ApiError(400, problem)
        return await handler(request)
    except ApiError as exc:
        return _json({"error": exc.message, **exc.extra}, exc.status)
    except AdminError as exc:
        extra = {"field": exc.field} if exc.field else {}
        return _json({"error": exc.message, **extra}, exc.status)
    except ConversationNotFound as exc:
        return _json({"error": f"no such conversation: {exc.args[0]}"}, 404)
    except ConversationConflict as exc:
        return _json({"error": str(exc)}, 409)


# --- conversations ----------------------------------------------------------------------------


async def list_conversations(request: web.Request) -> web.Response:
    q = request.query
    status = q.get("status") or None
    if status not in (None, "open", "resolved"):
        raise ApiError(400, 'status must be "open" or "resolved"', field="status")
    limit = parse_limit(q.get("limit"))
    convs = await repo.list_conversations(
        status=status,
        channel=q.get("channel") or None,
        topic=q.get("topic") or None,
        tag=q.get("tag") or None,
        q=q.get("q") if q.get("q") is not None and "\x00" not in q["q"] else None,
        before_id=decode_cursor(q.get("cursor")),
        limit=limit + 1,
    )
    items = await views.conversations_json(convs)
    return _json(page(items, [c.id for c in convs], limit))


async def get_conversation(request: web.Request) -> web.Response:
    data = await views.conversation_detail_json(path_id(request))
    if data is None:
        raise ApiError(404, f"no such conversation: {request.match_info['id']}")
    return _json(data)


async def resolve_conversation(request: web.Request) -> web.Response:
    cid = path_id(request)
    body = await read_json(request, required=False)
    reason = body.get("reason")
    if reason is not None:
        if not isinstance(reason, str):
            raise ApiError(400, "reason must be a string", field="reason")
        label = await repo.find_label("reason", reason.strip())
        admin = request.app[ADMIN_KEY]
        if not admin.settings.organization.resolution_reasons:
            raise ApiError(403, "resolution reasons are turned off (resolution_reasons = false in [organization])")
        if label is None:
            raise ApiError(
                400,
                f'unknown resolution reason "{reason}" — create it with /automation reasons add {reason}',
                field="reason",
            )
        reason = label.name
    actor = agent_of(body)
    await request.app[INBOX_KEY].resolve(cid, actor=f"agent:{actor}", reason=reason)
    return _json(await views.conversation_detail_json(cid))


async def reopen_conversation(request: web.Request) -> web.Response:
    cid = path_id(request)
    body = await read_json(request, required=False)
    actor = agent_of(body)
    await request.app[INBOX_KEY].reopen(cid, actor=f"agent:{actor}")
    return _json(await views.conversation_detail_json(cid))


async def post_message(request: web.Request) -> web.Response:
    cid = path_id(request)
    body = await read_json(request)
    text = body.get("text")
    if not isinstance(text, str) or not text.strip():
        raise ApiError(400, "text must be a non-empty string", field="text")
    actor = agent_of(body)
    mid = await request.app[INBOX_KEY].reply(cid, text=text, author=f"agent:{actor}")
    message = await repo.get_message(mid)
    assert message is not None
    return _json(views.message_json(message, []), 201)


# --- automations --------------------------------------------------------------------------------


async def list_automations(request: web.Request) -> web.Response:
    limit = parse_limit(request.query.get("limit"))
    after = decode_cursor(request.query.get("cursor"))
    rows = await repo.list_automations(after_id=after, limit=limit + 1)
    items = [views.automation_json(a) for a in rows]
    return _json(page(items, [a.id for a in rows], limit))


async def create_automation(request: web.Request) -> web.Response:
    admin = request.app[ADMIN_KEY]
    body = await read_json(request)
    a = await admin.create(body, actor="api")
    return _json(views.automation_json(a), 201)


async def get_automation(request: web.Request) -> web.Response:
    admin = request.app[ADMIN_KEY]
    return _json(views.automation_json(await admin.find(path_id(request))))


async def patch_automation(request: web.Request) -> web.Response:
    admin = request.app[ADMIN_KEY]
    body = await read_json(request)
    a = await admin.update(path_id(request), body)
    return _json(views.automation_json(a))


async def delete_automation(request: web.Request) -> web.Response:
    admin = request.app[ADMIN_KEY]
    a = await admin.delete(path_id(request))
    return _json({"deleted": True, "id": a.id, "name": a.name})


async def enable_automation(request: web.Request) -> web.Response:
    admin = request.app[ADMIN_KEY]
    a, _ = await admin.set_enabled(path_id(request), True)
    return _json(views.automation_json(a))


async def disable_automation(request: web.Request) -> web.Response:
    admin = request.app[ADMIN_KEY]
    a, _ = await admin.set_enabled(path_id(request), False)
    return _json(views.automation_json(a))


async def automation_runs(request: web.Request) -> web.Response:
    automation_id = path_id(request)
    limit = parse_limit(request.query.get("limit"))
    cursor = decode_cursor(request.query.get("cursor"))
    runs = await repo.list_runs(automation_id=automation_id, before_id=cursor, limit=limit + 1)
    if not runs and cursor is None:
        await request.app[ADMIN_KEY].find(automation_id)  # 404 for an id that never ran and does not exist
    # a deleted automation's runs stay listed here, with its name as it was
    return _json(page([views.run_json(r) for r in runs], [r.id for r in runs], limit))


async def test_automations(request: web.Request) -> web.Response:
    admin = request.app[ADMIN_KEY]
    body = await read_json(request)
    for key in ("text", "channel", "type"):
        if body.get(key) is not None and not isinstance(body[key], str):
            raise ApiError(400, f"{key} must be a string", field=key)
    result = await admin.test(
        body.get("text") or "", channel=body.get("channel") or None, type=body.get("type") or None
    )
    ev = result.evaluation
    return _json(
        {
            "matches": [
                {
                    "automation_id": f.rule.id,
                    "automation_name": f.rule.name,
                    "keywords": list(f.keywords),
                    "actions": [a.to_json() for a in f.actions],
                }
                for f in ev.firings
            ],
            "tags": list(ev.tags),
            "topics": list(ev.topics),
            "resolve": ev.resolve,
            "resolution_reason": ev.resolve_reason,
            "crm": list(ev.crm_targets),
            "skipped": [{"automation_name": n, "reason": why} for n, why in result.skipped],
        }
    )


# --- labels ----------------------------------------------------------------------------------------


def label_routes(kind: str, path: str) -> list[web.RouteDef]:
    async def list_(request: web.Request) -> web.Response:
        names = await request.app[ADMIN_KEY].list_labels(kind)
        return _json({"items": [{"name": n} for n in names], "next_cursor": None})

    async def add(request: web.Request) -> web.Response:
        body = await read_json(request)
        name = body.get("name")
        if not isinstance(name, str):
            raise ApiError(400, "name must be a string", field="name")
        created = await request.app[ADMIN_KEY].add_label(kind, name)
        return _json({"name": created}, 201)

    async def delete(request: web.Request) -> web.Response:
        deleted = await request.app[ADMIN_KEY].delete_label(kind, request.match_info["name"])
        return _json({"deleted": True, "name": deleted})

    return [
        web.get(f"/api/{path}", list_),
        web.post(f"/api/{path}", add),
        web.delete(f"/api/{path}/{{name}}", delete),
    ]


# --- outbox ----------------------------------------------------------------------------------------


async def list_outbox(request: web.Request) -> web.Response:
    status = request.query.get("status") or None
    if status not in (None, "pending", "running", "done", "failed"):
        raise ApiError(400, "status must be pending, running, done or failed", field="status")
    conv = request.query.get("conversation_id")
    if conv is not None and not DIGITS.fullmatch(conv):
        raise ApiError(400, "conversation_id must be a number", field="conversation_id")
    limit = parse_limit(request.query.get("limit"))
    jobs = await repo.list_jobs(
        status=status,
        conversation_id=int(conv) if conv else None,
        before_id=decode_cursor(request.query.get("cursor")),
        limit=limit + 1,
    )
    return _json(page([views.job_json(j) for j in jobs], [j.id for j in jobs], limit))


async def retry_outbox_job(request: web.Request) -> web.Response:
    jid = path_id(request)
    if not await repo.requeue_job(jid):
        raise ApiError(409, f"job {jid} is not failed (only failed jobs can be retried)")
    job = await repo.get_job(jid)
    assert job is not None
    return _json(views.job_json(job))


# --- health, metrics, openapi -------------------------------------------------------------------


async def healthz(request: web.Request) -> web.Response:
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
    except Exception:  # metrics must answer even when the store does not
        log.warning("metrics: could not count outbox jobs")
    # the Prometheus text exposition format, version 0.0.4
    return web.Response(body=m.render(), headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4})


async def only_post(request: web.Request) -> web.Response:
    return web.json_response(
        {"error": f"{request.method} is not allowed here; use POST"}, status=405, headers={"Allow": "POST"}
    )


async def openapi(request: web.Request) -> web.Response:
    return _json(OPENAPI)


def routes() -> list[web.RouteDef]:
    return [
        web.get("/healthz", healthz),
        web.get("/metrics", metrics),
        web.get("/api/openapi.json", openapi),
        web.get("/api/conversations", list_conversations),
        web.get("/api/conversations/{id}", get_conversation),
        web.post("/api/conversations/{id}/resolve", resolve_conversation),
        web.post("/api/conversations/{id}/reopen", reopen_conversation),
        web.post("/api/conversations/{id}/messages", post_message),
        web.get("/api/automations", list_automations),
        web.post("/api/automations", create_automation),
        web.post("/api/automations/test", test_automations),
        web.route("*", "/api/automations/test", only_post),  # else PATCH/GET fall through to {id}: 404
        web.get("/api/automations/{id}", get_automation),
        web.patch("/api/automations/{id}", patch_automation),
        web.delete("/api/automations/{id}", delete_automation),
        web.post("/api/automations/{id}/enable", enable_automation),
        web.post("/api/automations/{id}/disable", disable_automation),
        web.get("/api/automations/{id}/runs", automation_runs),
        web.get("/api/outbox", list_outbox),
        web.post("/api/outbox/{id}/retry", retry_outbox_job),
        *label_routes("tag", "tags"),
        *label_routes("topic", "topics"),
        *label_routes("reason", "reasons"),
    ]
