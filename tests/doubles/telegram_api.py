"""A local stand-in for the Telegram Bot API (https://core.telegram.org/bots/api#making-requests).

Speaks the wire format PTB uses: `POST {base}/bot<TOKEN>/<method>` with form-encoded or JSON
parameters (query string too), answering `{"ok": true, "result": …}` or
`{"ok": false, "error_code": …, "description": …, "parameters": {…}}`. Implements getMe,
setWebhook, deleteWebhook, getWebhookInfo, sendMessage (with an inline keyboard's `reply_markup`),
editMessageText, answerCallbackQuery and getUpdates (long polling, with offsets).
Every call is recorded in `calls`; `fail_next(method, …)` makes the next call(s) of a method fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

BOT_TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
BOT_USER = {
    "id": 123456789,
    "is_bot": True,
    "first_name": "Inbox",
    "username": "InboxTestBot",
    "can_join_groups": True,
    "can_read_all_group_messages": False,
    "supports_inline_queries": False,
}
# getUpdates answers at once when it has updates, else after this long at most (Telegram holds the
# call for `timeout` seconds; a test does not need to wait that long to see the next poll).
MAX_POLL_WAIT = 0.2


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    at: float = field(default_factory=time.monotonic)  # when it arrived (to check a retry_after wait)

    def get(self, key: str) -> Any:
        return self.params.get(key)


@dataclass
class _Failure:
    status: int
    description: str
    parameters: dict[str, Any] | None = None


@dataclass
class TelegramApiDouble:
    token: str = BOT_TOKEN
    calls: list[Call] = field(default_factory=list)
    updates: list[dict[str, Any]] = field(default_factory=list)
    webhook: dict[str, Any] = field(default_factory=dict)
    base_url: str = ""  # set by start(): "http://127.0.0.1:PORT/bot" (the token is appended)
    _failures: dict[str, list[_Failure]] = field(default_factory=dict)
    _garbled: set[str] = field(default_factory=set)
    _next_message_id: int = 5000
    _new_update: asyncio.Event = field(default_factory=asyncio.Event)

    # --- what tests use ------------------------------------------------------------------------
    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def sent(self) -> list[dict[str, Any]]:
        """sendMessage calls, parameters typed as Telegram reads them."""
        out = []
        for c in self.calls_to("sendMessage"):
            thread = c.get("message_thread_id")
            out.append(
                {
                    "chat_id": int(c.get("chat_id")),
                    "text": c.get("text"),
                    "message_thread_id": int(thread) if thread not in (None, "") else None,
                }
            )
        return out

    def keyboard(self, call: Call) -> list[list[dict[str, Any]]]:
        """The inline keyboard a sendMessage/editMessageText call carried (PTB sends it as JSON)."""
        markup = call.get("reply_markup")
        if markup in (None, ""):
            return []
        parsed = json.loads(markup) if isinstance(markup, str) else markup
        return list(parsed.get("inline_keyboard", []))

    def answers(self) -> list[dict[str, Any]]:
        """answerCallbackQuery calls: callback_query_id, text and show_alert as Telegram reads them."""
        return [
            {
                "callback_query_id": c.get("callback_query_id"),
                "text": c.get("text"),
                "show_alert": str(c.get("show_alert")).lower() == "true",
            }
            for c in self.calls_to("answerCallbackQuery")
        ]

    def fail_next(
        self,
        method: str,
        *,
        status: int,
        description: str,
        parameters: dict[str, Any] | None = None,
        times: int = 1,
    ) -> None:
        self._failures.setdefault(method, []).extend([_Failure(status, description, parameters)] * times)

    def garble_next(self, method: str) -> None:
        """The next call of `method` gets a 200 whose body is not JSON (a proxy's error page)."""
        self._garbled.add(method)

    def push_update(self, update: dict[str, Any]) -> None:
        """Queue an update for getUpdates."""
        self.updates.append(update)
        self._new_update.set()

    # --- the server ----------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        return app

    async def _params(self, request: web.Request) -> dict[str, Any]:
        params: dict[str, Any] = dict(request.query)
        if request.content_type == "application/json":
            params.update(await request.json())
        elif request.can_read_body:
            form = await request.post()
            for key, value in form.items():
                params[key] = value if isinstance(value, str) else value.file.read()
        return params

    async def _handle(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return _error(401, "Unauthorized")
        method = request.match_info["method"]
        params = await self._params(request)
        self.calls.append(Call(method, params))
        queued = self._failures.get(method)
        if queued:
            f = queued.pop(0)
            return _error(f.status, f.description, f.parameters)
        if method in self._garbled:
            self._garbled.discard(method)
            return web.Response(status=200, text="<html>502 Bad Gateway</html>", content_type="text/html")
        handler = getattr(self, f"_m_{method}", None)
        if handler is None:
            return _error(404, "Not Found: method not found")
        result = handler(params) if method != "getUpdates" else await handler(params)
        if isinstance(result, web.Response):
            return result
        return web.json_response({"ok": True, "result": result})

    # --- methods -------------------------------------------------------------------------------
    def _m_getMe(self, params: dict[str, Any]) -> Any:
        return BOT_USER

    def _m_setWebhook(self, params: dict[str, Any]) -> Any:
        url = params.get("url", "")
        if url and not str(url).startswith("https://"):
            return _error(400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook")
        self.webhook = {k: params[k] for k in ("url", "secret_token", "allowed_updates") if k in params}
        return True

    def _m_deleteWebhook(self, params: dict[str, Any]) -> Any:
        self.webhook = {}
        return True

    def _m_getWebhookInfo(self, params: dict[str, Any]) -> Any:
        return {
            "url": self.webhook.get("url", ""),
            "has_custom_certificate": False,
            "pending_update_count": 0,
        }

    def _m_sendMessage(self, params: dict[str, Any]) -> Any:
        chat_id, text = params.get("chat_id"), params.get("text")
        if chat_id in (None, "") or not text:
            return _error(400, "Bad Request: message text is empty" if chat_id else "Bad Request: chat not found")
        if len(str(text)) > 4096:
            return _error(400, "Bad Request: message is too long")
        self._next_message_id += 1
        cid = int(chat_id)
        message: dict[str, Any] = {
            "message_id": self._next_message_id,
            "from": {k: BOT_USER[k] for k in ("id", "is_bot", "first_name", "username")},
            "chat": {"id": cid, "type": "private" if cid > 0 else "supergroup"},
            "date": int(time.time()),
            "text": text,
        }
        thread = params.get("message_thread_id")
        if thread not in (None, ""):
            message["message_thread_id"] = int(thread)
            message["is_topic_message"] = True
        return message

    def _m_answerCallbackQuery(self, params: dict[str, Any]) -> Any:
        if not params.get("callback_query_id"):
            return _error(400, "Bad Request: query is too old and response timeout expired or query ID is invalid")
        if len(str(params.get("text") or "")) > 200:
            return _error(400, "Bad Request: MESSAGE_TOO_LONG")
        return True

    def _m_editMessageText(self, params: dict[str, Any]) -> Any:
        chat_id, message_id, text = params.get("chat_id"), params.get("message_id"), params.get("text")
        if chat_id in (None, "") or message_id in (None, ""):
            return _error(400, "Bad Request: message to edit not found")
        if not text:
            return _error(400, "Bad Request: message text is empty")
        cid = int(chat_id)
        return {
            "message_id": int(message_id),
            "from": {k: BOT_USER[k] for k in ("id", "is_bot", "first_name", "username")},
            "chat": {"id": cid, "type": "private" if cid > 0 else "supergroup"},
            "date": int(time.time()),
            "edit_date": int(time.time()),
            "text": text,
        }

    async def _m_getUpdates(self, params: dict[str, Any]) -> Any:
        if self.webhook.get("url"):
            return _error(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        offset = int(params.get("offset") or 0)
        # An offset confirms every update before it: Telegram forgets them.
        self.updates = [u for u in self.updates if u["update_id"] >= offset]
        if not self.updates:
            self._new_update.clear()
            wait = min(float(params.get("timeout") or 0), MAX_POLL_WAIT)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._new_update.wait(), timeout=wait)
        return list(self.updates)


def _error(status: int, description: str, parameters: dict[str, Any] | None = None) -> web.Response:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if parameters:
        body["parameters"] = parameters
    return web.Response(status=status, text=json.dumps(body), content_type="application/json")
