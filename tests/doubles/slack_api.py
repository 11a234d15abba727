"""A local stand-in for the Slack Web API (https://api.slack.com/web) and slash-command response_urls.

Speaks what slack_sdk sends: `POST|GET {base}/api/<method>` with the token in
`Authorization: Bearer xoxb-…`, arguments as a query string, a form body or a JSON body; answers
`{"ok": true, …}` or `{"ok": false, "error": "<code>"}` (HTTP 429 with `Retry-After` for
`ratelimited`, as Slack does). Implements auth.test, users.info (`locale` with include_locale),
conversations.info, chat.postMessage, chat.postEphemeral, views.open and apps.connections.open;
`POST /response/<key>` plays a slash command's (or a button's) response_url, and `GET /link` the Socket Mode WebSocket
(https://api.slack.com/apis/socket-mode: a `hello` on connect, envelopes out, `{"envelope_id"}`
acknowledgements back). Every call is recorded; `fail_next(method, error, …)` makes the next call(s)
fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

BOT_TOKEN = "xoxb-17653672481-19874698323-pdFZKVeTuE8sk7oOcBrzbqgy"
TEAM_ID = "T061EG9R6"
BOT_USER_ID = "U0BOT0001"
BOT_ID = "B0BOT0001"
APP_TOKEN = "xapp-1-A0PNCHHK2-1234567890-abcdef"

# users.info answers, shaped like https://api.slack.com/methods/users.info (trimmed). `locale` is
# only sent back when the call asks for it with include_locale=true, as Slack does.
USERS: dict[str, dict[str, Any]] = {
    "U2147483697": {
        "id": "U2147483697",
        "team_id": TEAM_ID,
        "locale": "en-US",
        "name": "marie",
        "real_name": "Marie Curie",
        "is_admin": False,
        "is_owner": False,
        "is_bot": False,
        "profile": {"real_name": "Marie Curie", "display_name": "Marie"},
    },
    "UADMIN": {
        "id": "UADMIN",
        "team_id": TEAM_ID,
        "locale": "en-US",
        "name": "ada",
        "real_name": "Ada Lovelace",
        "is_admin": False,
        "is_owner": False,
        "profile": {"real_name": "Ada Lovelace", "display_name": ""},
    },
    "UWSADMIN": {
        "id": "UWSADMIN",
        "team_id": TEAM_ID,
        "locale": "en-US",
        "name": "grace",
        "real_name": "Grace Hopper",
        "is_admin": True,
        "is_owner": False,
        "profile": {"real_name": "Grace Hopper", "display_name": "grace"},
    },
    "UOWNER": {
        "id": "UOWNER",
        "team_id": TEAM_ID,
        "locale": "en-US",
        "name": "owner",
        "is_admin": False,
        "is_owner": True,
        "is_primary_owner": True,
        "profile": {"real_name": "Olga Owner", "display_name": ""},
    },
    "UFRADMIN": {
        "id": "UFRADMIN",
        "team_id": TEAM_ID,
        "locale": "fr-FR",
        "name": "camille",
        "real_name": "Camille Claudel",
        "is_admin": False,
        "is_owner": False,
        "profile": {"real_name": "Camille Claudel", "display_name": "camille"},
    },
    "UDEADMIN": {
        "id": "UDEADMIN",
        "team_id": TEAM_ID,
        "locale": "de-DE",
        "name": "emmy",
        "real_name": "Emmy Noether",
        "is_admin": False,
        "is_owner": False,
        "profile": {"real_name": "Emmy Noether", "display_name": "emmy"},
    },
    "UPLAIN": {
        "id": "UPLAIN",
        "team_id": TEAM_ID,
        "locale": "en-US",
        "name": "paul",
        "is_admin": False,
        "is_owner": False,
        "profile": {"real_name": "Paul Plain", "display_name": "paul"},
    },
}

# conversations.info answers (https://api.slack.com/methods/conversations.info), trimmed.
CHANNELS: dict[str, dict[str, Any]] = {
    "C024BE91L": {
        "id": "C024BE91L",
        "is_channel": True,
        "is_private": False,
        "is_im": False,
        "is_mpim": False,
    },
    "C0PRIVATE": {
        "id": "C0PRIVATE",
        "is_channel": True,
        "is_private": True,
        "is_im": False,
        "is_mpim": False,
    },
}


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    token: str | None
    at: float = field(default_factory=time.monotonic)  # when it arrived (to check a Retry-After wait)

    def get(self, key: str) -> Any:
        return self.params.get(key)


@dataclass
class Failure:
    error: str
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class SlackApiDouble:
    token: str = BOT_TOKEN
    users: dict[str, dict[str, Any]] = field(default_factory=lambda: {k: dict(v) for k, v in USERS.items()})
    channels: dict[str, dict[str, Any]] = field(default_factory=lambda: dict(CHANNELS))
    calls: list[Call] = field(default_factory=list)
    responses: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    response_status: int = 200
    url: str = ""
    app_token: str = APP_TOKEN
    socket: web.WebSocketResponse | None = None
    acks: dict[str, dict[str, Any]] = field(default_factory=dict)
    _failures: dict[str, list[Failure]] = field(default_factory=dict)
    # together(): these methods answer only once all of them are in flight (or after `_together_wait`)
    _together: set[str] = field(default_factory=set)
    _arrived: set[str] = field(default_factory=set)
    _all_arrived: asyncio.Event = field(default_factory=asyncio.Event)
    _together_wait: float = 5.0
    _ts: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    # --- test helpers --------------------------------------------------------------------------
    @property
    def api_url(self) -> str:
        return f"{self.url}/api/"

    def response_url(self, key: str = "T061EG9R6/1234/5678") -> str:
        return f"{self.url}/response/{key}"

    def fail_next(
        self,
        method: str,
        error: str,
        *,
        status: int = 200,
        headers: dict[str, str] | None = None,
        times: int = 1,
    ) -> None:
        self._failures.setdefault(method, []).extend(Failure(error, status, headers or {}) for _ in range(times))

    def together(self, *methods: str, wait: float = 5.0) -> None:
        """Hold each call of `methods` until every one of them has arrived (at most `wait` s): calls
        made one after the other are answered only after `wait`, calls made side by side at once."""
        self._together = set(methods)
        self._arrived = set()
        self._all_arrived = asyncio.Event()
        self._together_wait = wait

    def of(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    async def wait_for(self, method: str, count: int = 1, *, within: float = 5.0) -> list[Call]:
        """Poll (bounded) until `count` calls of `method` were made."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while len(self.of(method)) < count:
            if loop.time() > deadline:
                raise AssertionError(f"{method}: {len(self.of(method))} calls after {within}s, wanted {count}")
            await asyncio.sleep(0.01)
        return self.of(method)

    async def wait_for_responses(self, count: int = 1, *, within: float = 5.0) -> list[tuple[str, dict[str, Any]]]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while len(self.responses) < count:
            if loop.time() > deadline:
                raise AssertionError(f"response_url: {len(self.responses)} posts after {within}s, wanted {count}")
            await asyncio.sleep(0.01)
        return self.responses

    # --- the server ----------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_post("/response/{key:.+}", self._response_url)
        app.router.add_get("/link", self._socket_mode)
        return app

    async def _params(self, request: web.Request) -> dict[str, Any]:
        params: dict[str, Any] = dict(request.query)
        if request.method == "POST" and request.can_read_body:
            if request.content_type == "application/json":
                params.update(await request.json())
            else:
                params.update(dict(await request.post()))
        return params

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params = await self._params(request)
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else params.get("token")
        self.calls.append(Call(method, params, token))
        if not token:
            return web.json_response({"ok": False, "error": "not_authed"})
        if token != (self.app_token if method == "apps.connections.open" else self.token):
            return web.json_response({"ok": False, "error": "invalid_auth"})
        queued = self._failures.get(method)
        if queued:
            f = queued.pop(0)
            return web.json_response({"ok": False, "error": f.error}, status=f.status, headers=f.headers)
        if method in self._together:
            self._arrived.add(method)
            if self._arrived >= self._together:
                self._all_arrived.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._all_arrived.wait(), self._together_wait)
        handler = getattr(self, "_m_" + method.replace(".", "_"), None)
        if handler is None:
            return web.json_response({"ok": False, "error": "unknown_method"})
        body: dict[str, Any] = handler(params)
        return web.json_response(body)

    def _m_auth_test(self, p: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": "https://inbox-test.slack.com/",
            "team": "Inbox Test",
            "user": "inboxbot",
            "team_id": TEAM_ID,
            "locale": "en-US",
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def _m_apps_connections_open(self, p: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "url": self.url.replace("http://", "ws://") + "/link?ticket=1234-5678"}

    def _m_users_info(self, p: dict[str, Any]) -> dict[str, Any]:
        user = self.users.get(str(p.get("user")))
        if user is None:
            return {"ok": False, "error": "user_not_found"}
        if str(p.get("include_locale")).lower() not in ("1", "true"):
            user = {k: v for k, v in user.items() if k != "locale"}
        return {"ok": True, "user": user}

    def _m_conversations_info(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = self.channels.get(str(p.get("channel")))
        if channel is None:
            return {"ok": False, "error": "channel_not_found"}
        return {"ok": True, "channel": channel}

    def _next_ts(self) -> str:
        return f"1700000000.{next(self._ts):06d}"

    def _m_chat_postMessage(self, p: dict[str, Any]) -> dict[str, Any]:
        if not p.get("channel"):
            return {"ok": False, "error": "channel_not_found"}
        if not p.get("text") and not p.get("blocks"):
            return {"ok": False, "error": "no_text"}
        ts = self._next_ts()
        message = {"type": "message", "user": BOT_USER_ID, "bot_id": BOT_ID, "text": p["text"], "ts": ts}
        if p.get("thread_ts"):
            message["thread_ts"] = p["thread_ts"]
        return {"ok": True, "channel": p["channel"], "ts": ts, "message": message}

    def _m_views_open(self, p: dict[str, Any]) -> dict[str, Any]:
        view = p.get("view")
        if isinstance(view, str):  # a form body carries the view as JSON text
            view = json.loads(view)
        if not p.get("trigger_id"):
            return {"ok": False, "error": "invalid_trigger_id"}
        if not isinstance(view, dict) or view.get("type") != "modal" or not view.get("blocks"):
            return {"ok": False, "error": "invalid_arguments"}
        if len(view["blocks"]) > 100 or len(view.get("title", {}).get("text", "")) > 24:
            return {"ok": False, "error": "invalid_arguments"}
        return {
            "ok": True,
            "view": {"id": "V0" + str(next(self._ts)), "team_id": TEAM_ID, **view, "state": {"values": {}}},
        }

    def _m_chat_postEphemeral(self, p: dict[str, Any]) -> dict[str, Any]:
        if not p.get("channel") or not p.get("user"):
            return {"ok": False, "error": "invalid_arguments"}
        return {"ok": True, "message_ts": self._next_ts()}

    async def _response_url(self, request: web.Request) -> web.Response:
        data = json.loads(await request.text())
        self.responses.append((request.match_info["key"], data))
        if self.response_status != 200:
            return web.Response(status=self.response_status, text="expired_url")
        return web.Response(text="ok")

    # --- Socket Mode ---------------------------------------------------------------------------
    async def _socket_mode(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.socket = ws
        await ws.send_json(
            {
                "type": "hello",
                "num_connections": 1,
                "debug_info": {"host": "applink-test"},
                "connection_info": {"app_id": "A0PNCHHK2"},
            }
        )
        async for msg in ws:
            if msg.type == web.WSMsgType.TEXT:
                data = json.loads(msg.data)
                if "envelope_id" in data:
                    self.acks[data["envelope_id"]] = data
        if self.socket is ws:
            self.socket = None
        return ws

    async def wait_connected(self, *, within: float = 5.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while self.socket is None:
            if loop.time() > deadline:
                raise AssertionError("the Socket Mode client did not connect")
            await asyncio.sleep(0.01)

    async def push(self, type: str, payload: dict[str, Any], *, within: float = 5.0) -> dict[str, Any]:
        """Send one envelope over the socket; return the client's acknowledgement."""
        assert self.socket is not None, "no Socket Mode connection"
        envelope_id = f"{len(self.acks) + 1:08d}-dbc6-4e3b-aa36-3a4b9ac1b24e"
        await self.socket.send_json(
            {
                "envelope_id": envelope_id,
                "type": type,
                "payload": payload,
                "accepts_response_payload": False,
                "retry_attempt": 0,
                "retry_reason": "",
            }
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while envelope_id not in self.acks:
            if loop.time() > deadline:
                raise AssertionError(f"envelope {envelope_id} was not acknowledged")
            await asyncio.sleep(0.01)
        return self.acks[envelope_id]
