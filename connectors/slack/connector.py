"""Slack channel: a slack-bolt `AsyncApp` behind the one aiohttp server, or over Socket Mode.

In: `message` events from IMs, MPIMs and channels the app is in → `InboundMessage`s; the
`/automation` slash command → the shared `CommandRunner`, answered ephemerally.
Out: agent replies → `chat.postMessage` in the conversation's channel and thread.

Bolt checks `X-Slack-Signature` / `X-Slack-Request-Timestamp` (bad or older than 5 minutes → 401).
Bolt does not dedupe Slack's retries; the inbox does, by (channel, "<channel id>:<ts>").
`process_before_response=True`: a message event is answered only after its message is committed,
so a failure gives Slack a 500 and Slack delivers it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from bot.domain import ConversationType
from bot.front.chat_forms import Refused
from bot.front.commands import FAILED, NOT_ADMIN
from bot.i18n import language_of
from bot.outbox import PermanentFailure, RetryLater
from connectors.base import Connector, ConnectorContext, OutboundTarget
from connectors.http import error, read_body, too_large
from connectors.slack import forms
from connectors.slack.forms import CREATE_VIEW, LIST_ACTIONS
from connectors.slack.normalize import (
    BotIdentity,
    body_problem,
    callback_type,
    conversation_type,
    display_name,
    escape,
    skip_reason,
    to_message,
    unescape,
)
from connectors.slack.settings import SlackChannel

log = logging.getLogger("inbox.slack")

T = TypeVar("T")

DEFAULT_EVENTS_PATH = "/slack/events"
COMMAND = "/automation"

# Slack API errors that no retry can fix: the outbox fails the job at once.
PERMANENT_ERRORS = frozenset(
    {
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "channel_is_archived",
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "no_permission",
        "missing_scope",
        "restricted_action",
        "msg_too_long",
        "no_text",
        "invalid_arguments",
        "user_not_found",
        "cannot_dm_bot",
    }
)

USER_CACHE_SECONDS = 300.0
# Slack wants an answer within 3 s: a slow users.info / conversations.info must not hold the event.
LOOKUP_SECONDS = 1.5
USER_CACHE_MAX = 10_000
# While we do not know who we are (auth.test failed), each request asks again, this long at most.
IDENTITY_SECONDS = 1.0
TIMESTAMP_HEADER = "X-Slack-Request-Timestamp"
SIGNATURE_HEADER = "X-Slack-Signature"
# Set in bolt's request context when our listener failed (a 500 that Slack must retry).
LISTENER_FAILED = "inbox_listener_failed"


class IdentityUnknown(Exception):
    """A bot's message arrived while auth.test cannot tell whether the bot is us."""


def signature_header_problem(headers: Mapping[str, str]) -> str | None:
    """Why the signature headers cannot be checked at all (bytes no Slack request carries), or None.
    Missing headers are left to bolt, which answers 401 for them."""
    timestamp = headers.get(TIMESTAMP_HEADER)
    if timestamp is not None and not (timestamp.isascii() and timestamp.isdigit()):
        return f"{TIMESTAMP_HEADER} must be unix seconds in ASCII digits"
    signature = headers.get(SIGNATURE_HEADER)
    if signature is not None and not (signature.isascii() and signature.isprintable()):
        return f"{SIGNATURE_HEADER} must be ASCII (v0=<hex>)"
    return None


def api_error(exc: SlackApiError) -> tuple[str, int | None, str | None]:
    """(error code, HTTP status, Retry-After) of a failed Web API call."""
    resp = exc.response
    status = getattr(resp, "status_code", None) or getattr(resp, "status", None)
    headers = getattr(resp, "headers", None) or {}
    data = getattr(resp, "data", None)
    code = str(data.get("error") or "") if isinstance(data, dict) else ""
    return code or f"http_{status}", status, headers.get("Retry-After")


class _TtlCache:
    """A small time-bounded cache (users.info answers, conversation types)."""

    def __init__(self, ttl: float, max_size: int = USER_CACHE_MAX) -> None:
        self.ttl = ttl
        self.max_size = max_size
        self._data: dict[str, tuple[float, Any]] = {}

    def get(self, key: str) -> Any | None:
        hit = self._data.get(key)
        if hit is None:
            return None
        if hit[0] < time.monotonic():
            self._data.pop(key, None)
            return None
        return hit[1]

    def put(self, key: str, value: Any) -> None:
        if len(self._data) >= self.max_size:
            self._data.pop(next(iter(self._data)))
        self._data[key] = (time.monotonic() + self.ttl, value)


# --- the connector -------------------------------------------------------------------------------


class SlackConnector(Connector):
    """One Slack workspace app. HTTP events at `/slack/events` (the first HTTP-mode Slack channel in
    config.toml) and always at `/slack/<name>/events`; Socket Mode when an app token is set."""

    kind = "slack"

    def __init__(
        self,
        name: str,
        ctx: ConnectorContext,
        *,
        bot_token: str,
        signing_secret: str,
        app_token: str | None = None,
        api_url: str | None = None,
        default_route: bool = True,
    ) -> None:
        super().__init__(name, ctx)
        self.app_token = app_token
        self.default_route = default_route and app_token is None
        base_url = api_url or AsyncWebClient.BASE_URL
        if not base_url.endswith("/"):
            base_url += "/"
        self.client = AsyncWebClient(token=bot_token, base_url=base_url)
        self._bot_token = bot_token
        self._verifier = SignatureVerifier(signing_secret)
        self._me: BotIdentity | None = None
        self._me_lock = asyncio.Lock()
        self._users = _TtlCache(USER_CACHE_SECONDS)
        self._channel_types = _TtlCache(3600.0)
        self._tasks: set[asyncio.Task[None]] = set()
        self._socket: Any = None
        # `authorize=` instead of `token=`: bolt makes no auth.test call of its own; we make one in
        # start() and reuse the answer. The client carries no token: bolt gives each request its own.
        bolt_log = logging.getLogger(f"inbox.slack.bolt.{name}")
        level = bolt_log.level
        # bolt reads SLACK_BOT_TOKEN from the environment on its own and warns that our client
        # (with its api_url) wins over it; that is what we want, so the warning is noise.
        bolt_log.setLevel(logging.ERROR)
        try:
            self.app = AsyncApp(
                name=f"inbox.slack.{name}",
                logger=bolt_log,
                signing_secret=signing_secret,
                client=AsyncWebClient(base_url=base_url),
                authorize=self._authorizer(),
                process_before_response=True,
            )
        finally:
            bolt_log.setLevel(level)
        self._register()

    @classmethod
    def from_settings(cls, ch: SlackChannel, ctx: ConnectorContext) -> SlackConnector:
        s = ctx.settings
        bot_token = s.secret(ch.bot_token_env)
        signing_secret = s.secret(ch.signing_secret_env)
        if not bot_token or not signing_secret:
            raise ValueError(f"set {ch.bot_token_env} and {ch.signing_secret_env} in the environment")
        http_mode = [c.name for c in s.channels if c.kind == "slack" and not getattr(c, "app_token_env", "")]
        first_http = http_mode[0] if http_mode else None
        return cls(
            ch.name,
            ctx,
            bot_token=bot_token,
            signing_secret=signing_secret,
            app_token=s.secret(ch.app_token_env) if ch.app_token_env else None,
            api_url=ch.api_url,
            default_route=first_http == ch.name,
        )

    # --- wiring --------------------------------------------------------------------------------
    def _register(self) -> None:
        # Bolt passes arguments by parameter name, so listeners are plain closures, not methods.
        async def on_message(ack: Any, event: dict[str, Any], context: dict[str, Any]) -> BoltResponse | None:
            try:
                await self.handle_message(event)
            except IdentityUnknown as exc:
                # Not acknowledged: Slack delivers the event again (HTTP retry, Socket Mode redelivery).
                self.ctx.metrics.connector_errors.labels(self.name).inc()
                log.warning("slack channel %s: %s; Slack will send it again", self.name, exc)
                body = '{"error": "the bot cannot tell its own messages apart yet (auth.test failed)"}'
                return BoltResponse(status=503, body=body, headers={"content-type": "application/json"})
            except Exception:
                # Our failure (the store, say): bolt answers 500 and Slack delivers the event again.
                context[LISTENER_FAILED] = True
                raise
            await ack()
            return None

        async def on_command(ack: Any, command: dict[str, Any], respond: Any) -> None:
            await ack()  # within Slack's 3 s; the reply follows through response_url
            self._spawn(self.handle_command(command, respond))

        async def on_other_event(ack: Any) -> None:
            await ack()  # not subscribed in the manifest; a 404 would only make Slack retry

        async def on_button(ack: Any, body: dict[str, Any], action: dict[str, Any], respond: Any) -> None:
            await ack()  # the list is answered through the response_url
            await self.handle_button(body, action, respond)

        async def on_submission(ack: Any, body: dict[str, Any], view: dict[str, Any]) -> None:
            await self.handle_submission(ack, body, view)

        self.app.event("message")(on_message)
        self.app.event(re.compile(".*"))(on_other_event)
        self.app.command(COMMAND)(on_command)
        self.app.action(re.compile(f"^({'|'.join(LIST_ACTIONS)})$"))(on_button)
        self.app.view_submission(CREATE_VIEW)(on_submission)

    @property
    def paths(self) -> list[str]:
        if self.app_token:
            return []
        paths = [f"/slack/{self.name}/events"]
        if self.default_route:
            paths.insert(0, DEFAULT_EVENTS_PATH)
        return paths

    def routes(self) -> list[web.RouteDef]:
        return [web.post(path, self.handle_http) for path in self.paths]

    async def handle_http(self, request: web.Request) -> web.Response:
        """Events API callbacks and slash commands over HTTP, handed to bolt once the body is whole
        and readable; every signed callback gets an answer Slack does not count as a failure."""
        metrics = self.ctx.metrics
        problem = signature_header_problem(request.headers)
        if problem is not None:
            metrics.rejected.labels("slack", "signature").inc()
            return error(401, f"invalid request signature: {problem}")
        max_body = self.ctx.settings.server.max_body_bytes
        body = await read_body(request, max_body)
        if body is None:
            metrics.rejected.labels("slack", "too_large").inc()
            return too_large(max_body)
        try:
            # Slack's bodies are UTF-8 whatever a Content-Type charset says; the signature covers
            # these bytes, which bolt re-encodes as UTF-8 to check it.
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            metrics.rejected.labels("slack", "encoding").inc()
            return error(400, "body is not UTF-8")
        unreadable = body_problem(text, request.headers.get("Content-Type"))
        if unreadable is not None:
            # Bolt would fail on it before checking the signature: check the signature here first.
            if not self._verifier.is_valid_request(text, dict(request.headers)):
                metrics.rejected.labels("slack", "signature").inc()
                return error(401, "invalid request signature")
            metrics.rejected.labels("slack", "json").inc()
            return error(400, unreadable)
        bolt_req = AsyncBoltRequest(body=text, query=request.query_string, headers=request.headers)  # type: ignore[arg-type]
        bolt_resp = await self.app.async_dispatch(bolt_req)
        if bolt_resp.status == 401:
            self.ctx.metrics.rejected.labels("slack", "signature").inc()
        elif bolt_resp.status == 404:
            # Bolt's "unhandled request", only ever answered once the signature is good: a callback we
            # have no listener for (app_rate_limited, a new event type, an interaction). Slack counts
            # a 404 as a failed delivery and disables apps that fail 5 % of them: acknowledge it.
            log.info("slack channel %s: acknowledged a callback we do not handle (%s)", self.name, callback_type(text))
            return web.Response(status=200)
        elif bolt_resp.status == 500 and not bolt_req.context.get(LISTENER_FAILED):
            # Bolt itself failed on a signed body of a shape Slack never sends (`"event": "text"`).
            metrics.rejected.labels("slack", "fields").inc()
            log.info("slack channel %s: refused a callback bolt cannot read (%s)", self.name, callback_type(text))
            return error(
                400, "not a Slack callback: a field has the wrong type (see https://api.slack.com/apis/events-api)"
            )
        return await to_aiohttp_response(bolt_resp)

    async def start(self) -> None:
        await self.identity(strict=True)
        if self.app_token:
            # Built here, not in __init__: the Socket Mode client opens an aiohttp session and a
            # task on construction.
            from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

            self._socket = AsyncSocketModeHandler(self.app, self.app_token, web_client=self.client)
            await self._socket.connect_async()

    async def stop(self) -> None:
        if self._socket is not None:
            with contextlib.suppress(Exception):
                await self._socket.close_async()
            self._socket = None
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- who we are ----------------------------------------------------------------------------
    async def identity(self, *, strict: bool = False, within: float | None = None) -> BotIdentity | None:
        """`auth.test`, once. `strict`: a bad token raises (the channel is left off); a network
        problem only logs, and the next request tries again (for at most `within` seconds)."""
        if self._me is not None:
            return self._me
        if within is None:
            return await self._identity(strict=strict)
        try:
            async with asyncio.timeout(within):
                return await self._identity(strict=strict)
        except TimeoutError:
            log.warning("slack channel %s: auth.test did not answer in %.1fs; will try again", self.name, within)
            return None

    async def _identity(self, *, strict: bool) -> BotIdentity | None:
        async with self._me_lock:
            if self._me is not None:
                return self._me
            try:
                resp = await self.client.auth_test()
            except SlackApiError as exc:
                code, _, _ = api_error(exc)
                if strict and code in PERMANENT_ERRORS:
                    raise RuntimeError(f"Slack auth.test answered {code}: check the bot token") from None
                log.warning("slack channel %s: auth.test failed: %s; will try again", self.name, code)
                return None
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.warning("slack channel %s: auth.test unreachable: %s; will try again", self.name, exc)
                return None
            self._me = BotIdentity(team_id=resp.get("team_id"), user_id=resp.get("user_id"), bot_id=resp.get("bot_id"))
            return self._me

    def _authorizer(self) -> Callable[..., Awaitable[AuthorizeResult]]:
        # A closure: bolt reads the parameter names, and a bound method's would include `self`.
        async def authorize(enterprise_id: str | None, team_id: str | None) -> AuthorizeResult:
            # Bolt drops our own events when it knows our ids; handle_message checks again.
            me = await self.identity(within=IDENTITY_SECONDS)
            return AuthorizeResult(
                enterprise_id=enterprise_id,
                team_id=team_id or (me.team_id if me else None),
                bot_token=self._bot_token,
                bot_user_id=me.user_id if me else None,
                bot_id=me.bot_id if me else None,
            )

        return authorize

    async def user(self, user_id: str) -> dict[str, Any] | None:
        """users.info, cached for a few minutes; None when Slack cannot say."""
        cached = self._users.get(user_id)
        if cached is not None:
            return dict(cached)
        try:
            # include_locale: the same answer says which language to reply to an admin in
            resp = await self.client.users_info(user=user_id, include_locale=True)
        except SlackApiError as exc:
            log.info("slack channel %s: users.info %s failed: %s", self.name, user_id, api_error(exc)[0])
            return None
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.info("slack channel %s: users.info %s unreachable: %s", self.name, user_id, exc)
            return None
        user = resp.get("user")
        if not isinstance(user, dict):
            return None
        self._users.put(user_id, user)
        return user

    async def language(self, user_id: str) -> str | None:
        """The user's Slack locale as one of our languages (`fr-FR` → fr), from the cached
        users.info; None when Slack cannot say (the organization's language is used)."""
        if not user_id:
            return None
        try:
            async with asyncio.timeout(LOOKUP_SECONDS):
                user = await self.user(user_id)
        except TimeoutError:
            log.info("slack channel %s: users.info %s took over %.1fs", self.name, user_id, LOOKUP_SECONDS)
            return None
        return language_of(str(user.get("locale") or "")) if user else None

    async def is_admin(self, user_id: str) -> bool:
        """Listed in [admins].slack, or (with slack_workspace_admins) a workspace admin or owner."""
        admins = self.ctx.settings.admins
        if user_id in admins.slack:
            return True
        if not admins.slack_workspace_admins:
            return False
        user = await self.user(user_id)
        return bool(user and (user.get("is_admin") or user.get("is_owner") or user.get("is_primary_owner")))

    async def _conversation_type(self, event: Mapping[str, Any]) -> ConversationType:
        channel = str(event["channel"])
        known = conversation_type(event.get("channel_type"), channel)
        if known is not None:
            return known
        cached = self._channel_types.get(channel)
        if cached is not None:
            return ConversationType(cached)
        kind = ConversationType.PUBLIC
        try:
            info = (await self.client.conversations_info(channel=channel)).get("channel") or {}
            if info.get("is_im"):
                kind = ConversationType.DIRECT
            elif info.get("is_mpim") or info.get("is_private"):
                kind = ConversationType.GROUP
            self._channel_types.put(channel, kind.value)
        except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:
            # Not cached: the next message asks again. Private channels start with G (legacy) or C.
            log.info("slack channel %s: conversations.info %s failed: %s", self.name, channel, exc)
            if channel.startswith("G"):
                kind = ConversationType.GROUP
        return kind

    # --- inbound -------------------------------------------------------------------------------
    def _lookup_result(self, task: asyncio.Future[T] | None) -> T | None:
        """A finished lookup's answer; None when it was not asked, ran out of time or failed."""
        if task is None or not task.done() or task.cancelled():
            return None
        exc = task.exception()
        if exc is not None:
            log.warning("slack channel %s: lookup failed: %s: %s", self.name, type(exc).__name__, exc)
            return None
        return task.result()

    async def handle_message(self, event: dict[str, Any]) -> None:
        """Store one `message` event (a retry is stored once: the inbox dedupes). Raises
        IdentityUnknown for a bot's message while auth.test cannot say whether that bot is us:
        storing our own reply as inbound would fire automations on it."""
        me = self._me  # the authorizer asked auth.test for this very request when it was unknown
        why = skip_reason(event, me)
        if why is not None:
            log.debug("slack channel %s: ignored message event (%s)", self.name, why)
            return
        if me is None and event.get("bot_id"):
            raise IdentityUnknown(f"message {event.get('ts')} from bot {event.get('bot_id')} held back")
        channel = str(event["channel"])
        kind = conversation_type(event.get("channel_type"), channel)
        user_lookup = asyncio.ensure_future(self.user(str(event["user"]))) if event.get("user") else None
        kind_lookup = asyncio.ensure_future(self._conversation_type(event)) if kind is None else None
        lookups = [t for t in (user_lookup, kind_lookup) if t is not None]
        if lookups:
            # Side by side, in one budget: Slack wants the whole answer within 3 s.
            try:
                await asyncio.wait(lookups, timeout=LOOKUP_SECONDS)
            finally:
                late = [t for t in lookups if not t.done()]
                for t in late:
                    t.cancel()
                if late:
                    log.info("slack channel %s: lookups for %s took over %.1fs", self.name, channel, LOOKUP_SECONDS)
                    await asyncio.gather(*late, return_exceptions=True)
        user = self._lookup_result(user_lookup)
        name = display_name(user) if user else None
        if kind is None:
            kind = self._lookup_result(kind_lookup) or (
                ConversationType.GROUP if channel.startswith("G") else ConversationType.PUBLIC
            )
        msg = to_message(event, channel_name=self.name, type=kind, contact_name=name)
        await self.ctx.inbox.ingest(msg)

    async def handle_command(self, command: Mapping[str, Any], respond: Any) -> None:
        """Run `/automation …` and answer the caller only (ephemeral). For an admin, `list` comes
        with buttons and `create` alone opens the form (a modal)."""
        user_id = str(command.get("user_id") or "")
        commands = self.ctx.commands
        lang = await self.language(user_id)
        _ = commands.wording(lang)
        blocks: list[dict[str, Any]] | None = None
        try:
            text = unescape(str(command.get("text") or ""))
            is_admin = bool(user_id) and await self.is_admin(user_id)
            form = commands.form_for(text) if is_admin else None
            if form == "create":
                problem = await self.open_create_form(command, lang)
                if problem is None:
                    return
                text = problem
            elif form == "list":
                blocks = forms.list_blocks(await self.ctx.forms.items(_), _)
                text = await commands.run(text, is_admin=True, actor=f"slack:{user_id}", lang=lang)
            else:
                text = await commands.run(text, is_admin=is_admin, actor=f"slack:{user_id}", lang=lang)
        except Exception:
            log.exception("slack channel %s: /automation failed", self.name)
            text, blocks = _(FAILED), None
        await self._answer(command, respond, text, blocks)

    async def _answer(
        self, command: Mapping[str, Any], respond: Any, text: str, blocks: list[dict[str, Any]] | None = None
    ) -> None:
        """An ephemeral answer through the response_url, else chat.postEphemeral."""
        extra: dict[str, Any] = {"blocks": blocks} if blocks else {}
        try:
            resp = await respond(text=escape(text), response_type="ephemeral", replace_original=False, **extra)
            if resp.status_code == 200:
                return
            problem = f"HTTP {resp.status_code}"
        except Exception as exc:
            problem = f"{type(exc).__name__}: {exc}"
        # An expired or missing response_url: answer in the channel, visible to the caller only.
        log.info("slack channel %s: response_url failed (%s); using chat.postEphemeral", self.name, problem)
        try:
            await self.client.chat_postEphemeral(
                channel=str(command.get("channel_id")),
                user=str(command.get("user_id") or ""),
                text=escape(text),
                **extra,
            )
        except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:
            log.warning("slack channel %s: could not answer /automation: %s", self.name, exc)

    async def open_create_form(self, command: Mapping[str, Any], lang: str | None) -> str | None:
        """`views.open` with the command's trigger_id; what to say instead when Slack refuses."""
        _ = self.ctx.commands.wording(lang)
        view = forms.create_modal(await self.ctx.forms.choices(_), _, metadata=json.dumps({"lang": _.lang}))
        try:
            await self.client.views_open(trigger_id=str(command.get("trigger_id") or ""), view=view)
        except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:
            why = api_error(exc)[0] if isinstance(exc, SlackApiError) else type(exc).__name__
            log.info("slack channel %s: views.open failed: %s", self.name, why)
            return _(
                "The form did not open (Slack answered {error}) — send /automation create again, "
                'or write it out: /automation create NAME keywords="k1, k2" resolve',
                error=why,
            )
        return None

    async def handle_submission(self, ack: Any, body: Mapping[str, Any], view: Mapping[str, Any]) -> None:
        """The "new automation" modal, submitted: saved through the admin service, or each problem
        shown under its field (`response_action: errors`). Only admins may save."""
        user_id = str((body.get("user") or {}).get("id") or "")
        try:
            lang = json.loads(str(view.get("private_metadata") or "{}")).get("lang")
        except (ValueError, AttributeError):
            lang = None
        _ = self.ctx.commands.wording(lang if isinstance(lang, str) else await self.language(user_id))
        try:
            if not (user_id and await self.is_admin(user_id)):
                await ack(
                    response_action="update", view=forms.message_modal(_("New automation"), _(NOT_ADMIN), _("Close"))
                )
                return
            result = await self.ctx.forms.submit(forms.submission(view), actor=f"slack:{user_id}", _=_)
        except Exception:
            log.exception("slack channel %s: the automation form failed", self.name)
            await ack(response_action="errors", errors={"name": _(FAILED)})
            return
        if isinstance(result, Refused):
            await ack(response_action="errors", errors=forms.field_errors(result.errors, forms.input_blocks(view)))
            return
        await ack(response_action="update", view=forms.message_modal(_("Automation saved"), result.text, _("Close")))

    async def handle_button(self, body: Mapping[str, Any], action: Mapping[str, Any], respond: Any) -> None:
        """Enable, Disable or Delete (confirmed in Slack's dialog) pressed in a list: the change
        through the admin service, then the list again with what was done on top."""
        user_id = str((body.get("user") or {}).get("id") or "")
        lang = await self.language(user_id)
        _ = self.ctx.commands.wording(lang)
        note: str
        try:
            if not (user_id and await self.is_admin(user_id)):
                await respond(text=escape(_(NOT_ADMIN)), response_type="ephemeral", replace_original=False)
                return
            verb = str(action.get("action_id") or "").removeprefix(forms.ACTION_PREFIX)
            parsed = forms.parse_value(action.get("value"))
            if parsed is None:
                note = _("This button is no longer supported — see /automation list")
            else:
                outcome = await self.ctx.forms.press(verb, parsed[0], parsed[1], actor=f"slack:{user_id}", _=_)
                note = outcome.text
            blocks = forms.list_blocks(await self.ctx.forms.items(_), _, note=note)
            await respond(text=escape(note), blocks=blocks, response_type="ephemeral", replace_original=True)
        except Exception:
            log.exception("slack channel %s: a list button failed", self.name)
            with contextlib.suppress(Exception):
                await respond(text=escape(_(FAILED)), response_type="ephemeral", replace_original=False)

    # --- outbound ------------------------------------------------------------------------------
    async def send(self, target: OutboundTarget, text: str) -> str | None:
        channel = target.reply_to.get("channel")
        thread_ts = target.reply_to.get("thread_ts")
        if not channel:  # a conversation stored without reply_to: the thread key says it
            channel, _, root = target.thread_key.partition(":")
            thread_ts = root or None
        try:
            resp = await self.client.chat_postMessage(channel=str(channel), thread_ts=thread_ts, text=escape(text))
        except SlackApiError as exc:
            code, status, retry_after = api_error(exc)
            if code in PERMANENT_ERRORS:
                raise PermanentFailure(f"Slack chat.postMessage: {code}") from exc
            wait = float(retry_after) if retry_after and retry_after.isdigit() else None
            raise RetryLater(f"Slack chat.postMessage: {code} (HTTP {status})", retry_after=wait) from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise RetryLater(f"Slack unreachable: {type(exc).__name__}: {exc}") from exc
        return f"{resp.get('channel') or channel}:{resp.get('ts')}"
