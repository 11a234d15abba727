"""Telegram channel on python-telegram-bot: webhook updates at `POST /telegram/{channel}` of our one
aiohttp server (secret header checked), or long polling when no webhook secret is configured.

PTB's `Application` is used without its own web server or `Updater`: we feed each update to
`Application.process_update`, whose handlers are blocking, so the webhook is answered only after the
message is committed. Inbound text and captions become `InboundMessage`s; `/automation` goes to the
shared command runner; replies go out through `sendMessage`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import re
import warnings
from collections import OrderedDict
from datetime import timedelta
from typing import Any, cast

from aiohttp import web
from telegram import Bot, InlineKeyboardMarkup, Message, Update
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    InvalidToken,
    RetryAfter,
    TelegramError,
)
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)
from telegram.warnings import PTBDeprecationWarning

from bot.front.commands import NOT_ADMIN
from bot.i18n import Wording, language_of
from bot.outbox import PermanentFailure, RetryLater
from connectors.base import Connector, ConnectorContext, OutboundTarget
from connectors.http import BadBody, error, parse_object, read_body, too_large
from connectors.telegram import keyboards
from connectors.telegram.normalize import BadUpdate, parse_update, split_text, to_inbound
from connectors.telegram.settings import TelegramChannel

log = logging.getLogger("inbox.telegram")

DEFAULT_API_URL = "https://api.telegram.org/bot"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
PATH = "/telegram/{channel}"
# Telegram accepts 1-256 characters A-Z, a-z, 0-9, _ and - as a webhook secret_token.
SECRET_RE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
# We only handle these; asking for nothing else spares Telegram and us the traffic.
ALLOWED_UPDATES = ("message", "channel_post", "callback_query")
POLL_TIMEOUT = 30  # seconds Telegram holds a getUpdates call open
SEEN_UPDATES = 1024  # update ids remembered to answer a redelivered update at once
MAX_UPDATE_ATTEMPTS = 5  # polling: an update we cannot read is retried this often, then skipped
# Polling backoff: getUpdates failures, and an update whose storing failed (tried again, never skipped).
POLL_BACKOFF_FIRST = 1.0
POLL_BACKOFF_MAX = 60.0
UPDATE_RETRY_MAX = 30.0


class PoisonUpdate(Exception):
    """Our normalization failed on this update's data: trying it again cannot succeed."""


def _seconds(value: int | float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def retry_after(exc: RetryAfter) -> float:
    """`RetryAfter.retry_after` in seconds (the int form warns about the coming timedelta)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        return _seconds(exc.retry_after)


class TelegramConnector(Connector):
    """One Telegram bot. Webhook mode when a webhook secret is set, long polling otherwise."""

    kind = "telegram"
    shared_path = PATH

    def __init__(
        self,
        name: str,
        ctx: ConnectorContext,
        *,
        token: str,
        token_env: str = "the token variable",
        webhook_secret: str | None = None,
        public_url: str | None = None,
        api_url: str | None = None,
    ) -> None:
        super().__init__(name, ctx)
        if webhook_secret is not None and not SECRET_RE.match(webhook_secret):
            raise ValueError(
                "the webhook secret must be 1–256 characters of A-Z, a-z, 0-9, _ and - (Telegram's rule); "
                "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
        self.webhook_secret = webhook_secret
        self.token_env = token_env
        self.public_url = public_url.rstrip("/") if public_url else None
        self.admins = frozenset(ctx.settings.admins.telegram)
        self.application: Application[Any, Any, Any, Any, Any, Any] = (
            Application.builder().token(token).base_url(api_url or DEFAULT_API_URL).updater(None).build()
        )
        self.application.add_handler(CommandHandler("automation", self._on_command, filters=filters.UpdateType.MESSAGE))
        self.application.add_handler(
            MessageHandler(
                (filters.UpdateType.MESSAGE | filters.UpdateType.CHANNEL_POST)
                & (filters.TEXT | filters.CAPTION)
                & ~filters.COMMAND,
                self._on_message,
            )
        )
        self.application.add_handler(CallbackQueryHandler(self._on_button, pattern=keyboards.PATTERN))
        self.application.add_error_handler(self._on_error)
        self._failures: dict[int, BaseException] = {}
        self._seen: OrderedDict[int, None] = OrderedDict()
        self._initialized = False
        self.started = False
        self._poller: asyncio.Task[None] | None = None

    @classmethod
    def from_settings(cls, ch: TelegramChannel, ctx: ConnectorContext) -> TelegramConnector:
        s = ctx.settings
        token = s.secret(ch.token_env)
        if token is None:
            raise ValueError(f"set {ch.token_env} in the environment (the bot token from BotFather)")
        return cls(
            ch.name,
            ctx,
            token=token,
            token_env=ch.token_env,
            webhook_secret=s.secret(ch.webhook_secret_env),
            public_url=ch.public_url,
            api_url=ch.api_url,
        )

    @property
    def bot(self) -> Bot:
        return cast(Bot, self.application.bot)

    @property
    def polling(self) -> bool:
        return self.webhook_secret is None

    @property
    def webhook_url(self) -> str | None:
        return f"{self.public_url}/telegram/{self.name}" if self.public_url else None

    # --- lifecycle ---------------------------------------------------------------------------
    def routes(self) -> list[web.RouteDef]:
        # Also in polling mode: the handler tells a sender that this channel takes no webhook.
        return [web.post(PATH, self.handle_webhook)]

    async def start(self) -> None:
        try:
            await self.application.initialize()  # getMe: checks the token, learns our @username
        except TelegramError as exc:
            await self.bot.shutdown()  # initialize() opened the HTTP clients before getMe failed
            raise RuntimeError(self._start_error(exc)) from None  # PTB's message holds the token
        self._initialized = True
        try:
            await self._connect()
        except TelegramError as exc:
            why = self._start_error(exc)
            await self.stop()  # the app drops a connector that failed to start: release it now
            raise RuntimeError(why) from None
        except BaseException:
            await self.stop()
            raise
        self.started = True

    def _start_error(self, exc: TelegramError) -> str:
        if isinstance(exc, InvalidToken):
            return f"Telegram refused the bot token in {self.token_env} — copy it again from @BotFather"
        what = "setWebhook" if self._initialized else "getMe"
        return f"{what} failed: {type(exc).__name__}: {exc}".replace(self.bot.token, "<token>")

    async def _connect(self) -> None:
        if self.polling:
            # getUpdates is refused (409) while a webhook is set.
            await self.bot.delete_webhook(drop_pending_updates=False)
            self._poller = asyncio.create_task(self._poll(), name=f"telegram-poll-{self.name}")
            log.info('telegram channel "%s": long polling as @%s', self.name, self.bot.username)
        elif self.webhook_url:
            await self.bot.set_webhook(
                url=self.webhook_url, secret_token=self.webhook_secret, allowed_updates=list(ALLOWED_UPDATES)
            )
            log.info('telegram channel "%s": webhook set to %s', self.name, self.webhook_url)
        else:
            log.info(
                'telegram channel "%s": webhook mode without public_url — register /telegram/%s '
                "with setWebhook yourself (with the secret_token)",
                self.name,
                self.name,
            )

    async def stop(self) -> None:
        self.started = False
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
            self._poller = None
        # The webhook stays registered on purpose: Telegram keeps the updates until we are back.
        if self._initialized:
            self._initialized = False
            await self.application.shutdown()

    # --- inbound -----------------------------------------------------------------------------
    def parse(self, data: dict[str, Any]) -> Update:
        """A webhook body as a PTB `Update`; raises BadUpdate (saying why) when it is not one."""
        return parse_update(data, self.bot)

    async def process(self, update: Update) -> None:
        """Handle one update; returns once its message is committed. Raises what made the handling
        fail, so the caller can have Telegram send it again (webhook 5xx, polling offset kept)."""
        if update.update_id in self._seen:
            self.ctx.metrics.messages.labels(self.name, "duplicate").inc()
            return
        await self.application.process_update(update)
        failure = self._failures.pop(update.update_id, None)
        if failure is not None:
            raise failure
        self._seen[update.update_id] = None
        while len(self._seen) > SEEN_UPDATES:
            self._seen.popitem(last=False)

    async def _on_message(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        if message is None:
            return
        try:
            inbound = to_inbound(self.name, message)
        except Exception as exc:
            raise PoisonUpdate(f"cannot read message {message.message_id}: {type(exc).__name__}: {exc}") from exc
        if inbound is not None:
            await self.ctx.inbox.ingest(inbound)

    async def _on_command(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        user = update.effective_user
        if message is None or message.text is None or not message.entities:
            return
        args = message.text[message.entities[0].length :].strip()
        is_admin = user is not None and message.sender_chat is None and user.id in self.admins
        actor = f"telegram:{user.id}" if user is not None else "telegram:unknown"
        lang = language_of(user.language_code) if user is not None else None
        commands = self.ctx.commands
        answer = await commands.run(args, is_admin=is_admin, actor=actor, lang=lang)
        markup: InlineKeyboardMarkup | None = None
        if is_admin and commands.form_for(args) == "list":
            markup = keyboards.list_keyboard(await self.ctx.forms.items(commands.wording(lang)), commands.wording(lang))
        topic = message.message_thread_id if message.is_topic_message else None
        try:
            pieces = split_text(answer)
            for n, piece in enumerate(pieces, 1):
                await self.bot.send_message(
                    chat_id=message.chat.id,
                    text=piece,
                    message_thread_id=topic,
                    reply_markup=markup if n == len(pieces) else None,
                )
        except TelegramError as exc:
            # The command has taken effect; a redelivered update would run it twice. Log, don't fail.
            self.ctx.metrics.connector_errors.labels(self.name).inc()
            log.warning(
                'telegram channel "%s": could not answer /automation in chat %s: %s',
                self.name,
                message.chat.id,
                exc,
            )

    async def _on_button(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A button under `/automation list` (or its delete confirmation) was pressed. Every press
        is answered (answerCallbackQuery); only an admin's changes anything."""
        query = update.callback_query
        if query is None:
            return
        user = query.from_user
        _ = self.ctx.commands.wording(language_of(user.language_code))
        press = keyboards.parse(query.data)
        message = query.message if isinstance(query.message, Message) else None
        try:
            if user.id not in self.admins:
                await query.answer(text=_(NOT_ADMIN), show_alert=True)
                return
            if press is None:
                await query.answer(text=_("This button is no longer supported — see /automation list"))
                return
            await self._pressed(press, message, actor=f"telegram:{user.id}", answer=query.answer, _=_)
        except TelegramError as exc:
            # The change (if any) is made; a redelivered update would only answer again. Log, don't fail.
            self.ctx.metrics.connector_errors.labels(self.name).inc()
            log.warning('telegram channel "%s": could not answer a button press: %s', self.name, exc)

    async def _pressed(
        self, press: keyboards.Press, message: Message | None, *, actor: str, answer: Any, _: Wording
    ) -> None:
        forms = self.ctx.forms
        if press.verb == keyboards.ASK:
            question = await forms.confirm_text(press.automation_id, _)
            if question is None:
                await answer(text=_("Automation #{id} no longer exists — see /automation list", id=press.automation_id))
                return
            await answer()
            if message is not None:
                await self.bot.send_message(
                    chat_id=message.chat.id,
                    text=question,
                    message_thread_id=message.message_thread_id if message.is_topic_message else None,
                    reply_markup=keyboards.confirm_keyboard(press, _),
                )
            return
        if press.verb == keyboards.KEEP:
            kept = _("Nothing was deleted.")
            await answer(text=kept)
            if message is not None:
                await self._edit(message, kept, None)
            return
        outcome = await forms.press(keyboards.VERBS[press.verb], press.automation_id, press.version, actor=actor, _=_)
        await answer(text=outcome.text[:200])
        if message is None:
            return
        if press.verb == "rm":  # the confirmation message says what became of it
            await self._edit(message, outcome.text, None)
        else:  # the list, as it is now
            listing = await self.ctx.commands.run("list", is_admin=True, actor=actor, lang=_.lang)
            # a long list went out in pieces, the keyboard under the last one: that is the one pressed
            await self._edit(message, split_text(listing)[-1], keyboards.list_keyboard(await forms.items(_), _))

    async def _edit(self, message: Message, text: str, markup: InlineKeyboardMarkup | None) -> None:
        try:
            await self.bot.edit_message_text(
                chat_id=message.chat.id, message_id=message.message_id, text=text, reply_markup=markup
            )
        except BadRequest as exc:  # "message is not modified", or too old to edit: the answer said it
            log.info('telegram channel "%s": could not edit message %s: %s', self.name, message.message_id, exc)

    async def _on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        if isinstance(update, Update) and context.error is not None:
            self._failures[update.update_id] = context.error

    async def _poll(self) -> None:
        """Long polling: fetch, handle each update until committed, and only then confirm it (the
        next getUpdates' offset), so an update is never lost to a crash or a store outage."""
        offset: int | None = None
        delay = POLL_BACKOFF_FIRST
        attempts: dict[int, int] = {}
        while True:
            try:
                updates = await self.bot.get_updates(
                    offset=offset, timeout=POLL_TIMEOUT, allowed_updates=list(ALLOWED_UPDATES)
                )
            except RetryAfter as exc:
                await asyncio.sleep(retry_after(exc))
                continue
            except InvalidToken:
                self.ctx.metrics.connector_errors.labels(self.name).inc()
                log.error(
                    'telegram channel "%s": Telegram refused the bot token in %s; polling stops — '
                    "copy the token again from @BotFather, set %s and restart",
                    self.name,
                    self.token_env,
                    self.token_env,
                )
                return
            except Exception as exc:  # NetworkError, TimedOut, Conflict, Forbidden, anything else
                # Conflict: a webhook or another poller. Whatever it is, the task must not die silently.
                self.ctx.metrics.connector_errors.labels(self.name).inc()
                if isinstance(exc, TelegramError):
                    log.warning(
                        'telegram channel "%s": getUpdates failed (%s: %s); retrying in %.0fs',
                        self.name,
                        type(exc).__name__,
                        exc,
                        delay,
                    )
                else:
                    log.exception('telegram channel "%s": getUpdates failed; retrying in %.0fs', self.name, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, POLL_BACKOFF_MAX)
                continue
            delay = POLL_BACKOFF_FIRST
            for update in updates:
                try:
                    await self.process(update)
                except Exception as exc:
                    n = attempts.get(update.update_id, 0) + 1
                    attempts[update.update_id] = n
                    self.ctx.metrics.connector_errors.labels(self.name).inc()
                    if isinstance(exc, PoisonUpdate) and n >= MAX_UPDATE_ATTEMPTS:
                        log.error(
                            'telegram channel "%s": update %s skipped after %d attempts: %s',
                            self.name,
                            update.update_id,
                            n,
                            exc,
                        )
                    else:
                        # Not confirmed: a store outage keeps the update at Telegram (and us on it)
                        # until it is stored — never skipped.
                        wait = min(POLL_BACKOFF_FIRST * 2.0 ** (n - 1), UPDATE_RETRY_MAX)
                        log.warning(
                            'telegram channel "%s": update %s failed (attempt %d, %s: %s); trying again in %.1fs',
                            self.name,
                            update.update_id,
                            n,
                            type(exc).__name__,
                            exc,
                            wait,
                        )
                        await asyncio.sleep(wait)
                        break  # fetch again from this update on
                attempts.pop(update.update_id, None)
                offset = update.update_id + 1

    async def handle_webhook(self, request: web.Request) -> web.Response:
        """`POST /telegram/<name>`: check the secret header, read the Update, answer once it is
        handled (a failure answers 5xx: Telegram sends the update again)."""
        name = self.name
        metrics = self.ctx.metrics
        if self.webhook_secret is None:
            return error(
                404,
                f'channel "{name}" uses long polling — set webhook_secret_env to receive webhook updates',
            )
        given = request.headers.get(SECRET_HEADER, "")
        if not hmac.compare_digest(given.encode("utf-8", "surrogateescape"), self.webhook_secret.encode()):
            metrics.rejected.labels("telegram", "secret").inc()
            return error(401, f"missing or wrong {SECRET_HEADER} header")
        max_body = self.ctx.settings.server.max_body_bytes
        body = await read_body(request, max_body)
        if body is None:
            metrics.rejected.labels("telegram", "too_large").inc()
            return too_large(max_body)
        try:
            data = parse_object(body, what="a JSON object (a Telegram Update)")
        except BadBody as exc:
            metrics.rejected.labels("telegram", "json").inc()
            return error(400, str(exc))
        try:
            update = self.parse(data)
        except BadUpdate as exc:
            metrics.rejected.labels("telegram", "fields").inc()
            return error(400, str(exc))
        if not self.started:
            return error(503, f'channel "{name}" is not started — see the log; Telegram will send the update again')
        await self.process(update)  # failures: 5xx from the error middleware, Telegram retries
        return web.json_response({"ok": True})

    # --- outbound ----------------------------------------------------------------------------
    async def send(self, target: OutboundTarget, text: str) -> str | None:
        if not self.started:
            raise RetryLater(f'telegram channel "{self.name}" is not started')
        chat_id = target.reply_to.get("chat_id")
        if chat_id is None:
            # Conversations opened before reply_to was saved: the thread key starts with the chat id.
            chat_id = target.thread_key.split(":", 1)[0]
        topic = target.reply_to.get("message_thread_id")
        sent: Message | None = None
        try:
            for piece in split_text(text):
                try:
                    sent = await self.bot.send_message(chat_id=chat_id, text=piece, message_thread_id=topic)
                except ChatMigrated as exc:  # the group became a supergroup: same chat, new id
                    chat_id = exc.new_chat_id
                    sent = await self.bot.send_message(chat_id=chat_id, text=piece, message_thread_id=topic)
        except RetryAfter as exc:
            raise RetryLater(f"Telegram flood control: {exc}", retry_after=retry_after(exc)) from exc
        except (Forbidden, BadRequest, InvalidToken) as exc:  # BadRequest before NetworkError: a subclass
            raise PermanentFailure(f"Telegram refused the reply to chat {chat_id}: {exc}") from exc
        except TelegramError as exc:  # NetworkError, TimedOut, Conflict, 5xx
            raise RetryLater(f"Telegram unreachable: {type(exc).__name__}: {exc}") from exc
        assert sent is not None
        return f"{sent.chat.id}:{sent.message_id}"
