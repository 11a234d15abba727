"""Builds the one aiohttp application: routes, store, connectors, ingest writers, outbox worker."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web

from bot import outbox_kinds
from bot.config import SalesforceSettings, Settings
from bot.domain import OutboxJob
from bot.front import api
from bot.front.chat_forms import ChatForms
from bot.front.commands import CommandRunner
from bot.front.web import live, setup_web
from bot.front.web.auth import signed_in_user
from bot.metrics import Metrics, http_metrics_middleware
from bot.outbox import Outbox, PermanentFailure, RetryLater
from bot.services.admin import Admin, RuleCache
from bot.services.crm import CrmSync
from bot.services.inbox import Inbox
from bot.services.insight import Insight
from bot.services.live import DELIVERY, Hub
from bot.services.people import People
from bot.store import StoreBusy, StoreConflict, StoreInvalid, StoreUnavailable, db, notify, repo
from bot.store.checkpoint import Checkpointer
from connectors.base import Connector, ConnectorContext, OutboundTarget, mount_routes

log = logging.getLogger("inbox.app")

STATE_KEY: web.AppKey[AppState] = web.AppKey("state")


# Every channel kind config.toml can name. Imported only when configured: slack-bolt and
# python-telegram-bot take a while to import, and `serve` listens before it builds the app.
def _webhook() -> type[Connector]:
    from connectors.webhook.connector import WebhookConnector

    return WebhookConnector


def _slack() -> type[Connector]:
    from connectors.slack.connector import SlackConnector

    return SlackConnector


def _telegram() -> type[Connector]:
    from connectors.telegram.connector import TelegramConnector

    return TelegramConnector


CONNECTOR_KINDS: dict[str, Callable[[], type[Connector]]] = {
    "webhook": _webhook,
    "slack": _slack,
    "telegram": _telegram,
}
# Served even when no channel of the kind is configured: the generic endpoint always answers.
ALWAYS_SERVED = ("webhook",)


class AppState:
    """Everything one running server holds; built once per app, started by the cleanup context."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.rules = RuleCache(settings)
        self.rules.on_reload.append(self.metrics.automations.set)
        # live updates; on PostgreSQL other workers hear them through NOTIFY/LISTEN (on SQLite
        # several workers are a development setup: each page hears its own worker's changes)
        relay = (
            None
            if settings.database.is_sqlite
            else notify.PgRelay(settings.database.url, on_error=self.metrics.live_errors.labels("relay").inc)
        )
        self.live = Hub(metrics=self.metrics, relay=relay)
        # SQLite: WAL checkpoints in the background, not inside a commit a request waits on
        database = db.sqlite_file(settings.database.url)
        self.checkpointer = Checkpointer(database) if database is not None else None
        self.admin = Admin(settings, self.rules, live=self.live)
        self.insight = Insight(settings, self.admin)
        self.commands = CommandRunner(self.admin, self.insight)
        self.people = People(live=self.live)
        self.inbox = Inbox(
            rules=self.rules.current,
            metrics=self.metrics,
            writers=1 if settings.database.is_sqlite else max(1, min(4, settings.database.pool_max // 2)),
            live=self.live,
        )
        self.outbox = Outbox(
            metrics=self.metrics,
            skip_locked=not settings.database.is_sqlite,
            max_attempts=settings.outbox.max_attempts,
            base_delay=settings.outbox.base_delay,
            max_delay=settings.outbox.max_delay,
            poll_interval=settings.outbox.poll_interval,
        )
        self.inbox.wake_outbox = self.outbox.wake
        self.outbox.failed_for_good = self.job_failed
        self.inbox.reply_problem = self.reply_problem
        self.inbox.delivers_replies = self.delivers_replies
        self.ctx = ConnectorContext(
            settings=settings,
            inbox=self.inbox,
            commands=self.commands,
            metrics=self.metrics,
            forms=ChatForms(self.admin, self.commands),
        )
        self.connectors: dict[str, Connector] = {}
        self.left_off: dict[str, str] = {}
        self.crm: CrmSync | None = None
        self._build_connectors()
        self.outbox.register(outbox_kinds.REPLY, self.deliver_reply)
        self._tasks: list[asyncio.Task[None]] = []

    def _build_connectors(self) -> None:
        s = self.settings
        for ch in s.channels:
            missing = s.missing_secrets(ch)
            if missing:
                why = f'channel "{ch.name}" is off: set {", ".join(missing)} in the environment'
                self.left_off[ch.name] = why
                log.warning(why)
                continue
            try:
                self.connectors[ch.name] = build_connector(ch, self.ctx)
            except Exception as exc:  # one broken connector never stops the others
                why = f'channel "{ch.name}" is off: {exc}'
                self.left_off[ch.name] = why
                log.error(why)
        sf = s.crm.salesforce
        if sf is not None:
            self.crm = build_crm(sf, self)

    def connector(self, name: str) -> Connector | None:
        return self.connectors.get(name)

    def reply_problem(self, channel: str) -> str | None:
        """A channel that is off (missing secret) may come back: its replies wait in the outbox."""
        if self.settings.channel(channel) is None:
            return f'channel "{channel}" is no longer configured — replies cannot be sent'
        return None

    def delivers_replies(self, channel: str) -> bool:
        connector = self.connectors.get(channel)
        return connector.delivers_replies() if connector is not None else True

    def job_failed(self, job: OutboxJob) -> None:
        """A reply that can never be sent shows as failed on the open pages."""
        if job.kind == outbox_kinds.REPLY and job.conversation_id is not None:
            self.live.publish(job.conversation_id, DELIVERY)

    async def deliver_reply(self, payload: dict[str, Any]) -> None:
        """Outbox job: send one stored outbound message through its conversation's channel."""
        message = await repo.get_message(int(payload["message_id"]))
        if message is None:
            raise PermanentFailure(f"message {payload['message_id']} no longer exists")
        if message.external_id is not None:
            return  # sent already (a retry after the send but before the commit)
        conv = await repo.get_conversation(message.conversation_id)
        if conv is None:  # deleted with its messages since: nothing left to send
            raise PermanentFailure(f"conversation {message.conversation_id} no longer exists")
        contact = await repo.get_contact(conv.contact_id)
        connector = self.connectors.get(conv.channel)
        if connector is None:
            why = self.left_off.get(conv.channel) or f'channel "{conv.channel}" is not configured'
            raise RetryLater(why)
        target = OutboundTarget(
            conversation_id=conv.id,
            message_id=message.id,
            thread_key=conv.thread_key,
            contact_id=contact.platform_id if contact else "",
            contact_name=contact.name if contact else None,
            reply_to=dict(conv.reply_to or {}),
        )
        external_id = await connector.send(target, message.text)
        await repo.mark_sent(message.id, external_id or "sent")
        self.live.publish(conv.id, DELIVERY)

    async def start(self) -> None:
        await self.rules.refresh(force=True)
        await self.live.start()
        if self.checkpointer is not None:
            await self.checkpointer.start()
        self.inbox.start()
        for name, c in list(self.connectors.items()):
            try:
                await c.start()
            except Exception as exc:
                why = f'channel "{name}" is off: could not start: {exc}'
                self.left_off[name] = why
                self.connectors.pop(name)
                self.metrics.connector_errors.labels(name).inc()
                log.error(why)
        if self.crm is not None:
            await self.crm.start()
        self.outbox.start()
        self._tasks.append(asyncio.create_task(self.rules.watch(), name="rules-watch"))

    async def stop(self) -> None:
        """Outbound work first, while the connectors it sends through are still open; then the
        connectors (polling, Socket Mode); then the ingest writers drain what those delivered."""
        await self.outbox.stop(timeout=self.settings.server.shutdown_timeout)
        if self.crm is not None:
            try:
                await self.crm.stop()
            except Exception:
                log.exception("stopping the Salesforce connector failed")
        for name, c in self.connectors.items():
            try:
                await c.stop()
            except Exception:
                log.exception('stopping channel "%s" failed', name)
        await self.inbox.stop()
        if self.checkpointer is not None:
            await self.checkpointer.stop()
        await self.live.stop()
        self.rules.stop()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=5)
            for t in pending:
                t.cancel()
        self._tasks.clear()


def build_connector(ch: Any, ctx: ConnectorContext) -> Connector:
    """The connector of one `[[channels]]` entry; raises ValueError when it cannot be built."""
    load = CONNECTOR_KINDS.get(ch.kind)
    if load is None:
        raise ValueError(f"unknown channel kind {ch.kind!r}")
    return load().from_settings(ch, ctx)


def build_crm(sf: SalesforceSettings, state: AppState) -> CrmSync:
    """Salesforce behind the CRM sync, which runs the `crm_sync` outbox jobs."""
    from connectors.salesforce.connector import SalesforceCrm

    crm = SalesforceCrm.from_settings(sf, secret=state.settings.secret, metrics=state.metrics)
    sync = CrmSync(crm, inbox=state.inbox, metrics=state.metrics)
    state.outbox.register(outbox_kinds.CRM_SYNC, sync.sync_conversation)
    return sync


@web.middleware
async def error_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if request.path.startswith("/api/") and exc.status >= 400 and exc.content_type != "application/json":
            # unknown routes and methods answer JSON like the rest of the API
            what = "no such endpoint" if exc.status == 404 else exc.reason.lower()
            return web.json_response(
                {"error": f"{what}: {request.method} {request.path} — see GET /api/openapi.json"},
                status=exc.status,
                headers={k: v for k, v in exc.headers.items() if k == "Allow"},
            )
        raise
    except StoreInvalid as exc:  # a value the store cannot hold: the caller's input
        log.info("refused on %s %s: %s", request.method, request.path, exc)
        return web.json_response({"error": f"invalid value: {exc}"}, status=400)
    except (StoreUnavailable, StoreConflict, StoreBusy, ConnectionError, OSError) as exc:
        # a conflict no handler expected, or a lock race lost again and again, is a race with
        # another writer: trying again resolves it
        log.error("store unavailable on %s %s: %s", request.method, request.path, exc)
        return web.json_response(
            {"error": "the store is unavailable — try again shortly"}, status=503, headers={"Retry-After": "1"}
        )
    except Exception:
        log.exception("unexpected error on %s %s", request.method, request.path)
        return web.json_response({"error": "internal error — the bot's log has the details"}, status=500)


def build_app(settings: Settings, *, authenticate: live.Authenticate = signed_in_user) -> web.Application:
    """The aiohttp app. The store must already be migrated (`inbox-bot serve` does it first).

    `authenticate`: the signed-in user of a request for the live updates' stream (the web
    pages' session; tests of the stream alone may pass another), else None."""
    state = AppState(settings)
    app = web.Application(
        middlewares=[error_middleware, api.api_middleware],
        client_max_size=settings.server.max_body_bytes + 1024,
    )
    app[STATE_KEY] = state
    app.middlewares.insert(0, http_metrics_middleware(state.metrics))  # outermost: sees the status sent
    app[api.ADMIN_KEY] = state.admin
    app[api.INBOX_KEY] = state.inbox
    app[api.PEOPLE_KEY] = state.people
    app[api.INSIGHT_KEY] = state.insight
    app[api.TOKENS_KEY] = settings.api_tokens()
    app[api.METRICS_KEY] = state.metrics
    if not settings.api_tokens():
        log.warning("the JSON API is locked: set %s to one or more comma-separated tokens", settings.api.tokens_env)
    app.add_routes(api.routes())
    setup_web(app, settings=settings, people=state.people, inbox=state.inbox, admin=state.admin, insight=state.insight)
    app[live.LIVE_HUB] = state.live
    app.add_routes(live.routes(state.live, authenticate))

    async def end_streams(app: web.Application) -> None:
        # before aiohttp waits for the requests in flight: the live streams would never finish
        state.live.end_all()

    app.on_shutdown.append(end_streams)
    kinds = {*ALWAYS_SERVED, *(ch.kind for ch in settings.channels)}
    mount_routes(
        app, state.connectors.values(), kinds=[CONNECTOR_KINDS[k]() for k in sorted(kinds)], off=state.left_off.get
    )

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        db_settings = settings.database
        async with db.open_store(db_settings.url, pool_min=db_settings.pool_min, pool_max=db_settings.pool_max):
            await state.start()
            try:
                yield
            finally:
                await state.stop()

    app.cleanup_ctx.append(lifecycle)
    return app
