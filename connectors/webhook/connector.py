"""Generic signed webhooks: `POST /webhooks/{channel}` in, signed POSTs to `reply_url` out.

Signature: `X-Inbox-Signature: v1=<hex HMAC-SHA256(secret, "{timestamp}.{raw body}")>` with
`X-Inbox-Timestamp` (unix seconds) no more than 5 minutes away from now.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Mapping

import aiohttp
from aiohttp import web
from pydantic import ValidationError

from bot.outbox import PermanentFailure, RetryLater
from connectors.base import Connector, ConnectorContext, OutboundTarget
from connectors.http import BadBody, error, parse_object, read_body, too_large
from connectors.webhook.normalize import WebhookPayload, field_errors, to_message
from connectors.webhook.settings import WebhookChannel

log = logging.getLogger("inbox.webhook")

MAX_SKEW_SECONDS = 300
SIGNATURE_HEADER = "X-Inbox-Signature"
TIMESTAMP_HEADER = "X-Inbox-Timestamp"
PATH = "/webhooks/{channel}"


def sign(secret: str, timestamp: str | int, body: bytes) -> str:
    """The `X-Inbox-Signature` value for `body` sent at `timestamp`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"v1={mac.hexdigest()}"


def signed_headers(secret: str, body: bytes, *, now: float | None = None) -> dict[str, str]:
    """The headers that sign `body` (what the bot sends to reply_url, what an integrator sends us)."""
    ts = str(int(time.time() if now is None else now))
    return {TIMESTAMP_HEADER: ts, SIGNATURE_HEADER: sign(secret, ts, body), "Content-Type": "application/json"}


def check_signature(secret: str, headers: Mapping[str, str], body: bytes, *, now: float | None = None) -> str | None:
    """None when the request is signed right and recently; otherwise what is wrong."""
    ts = headers.get(TIMESTAMP_HEADER, "")
    given = headers.get(SIGNATURE_HEADER, "")
    if not ts or not given:
        return f"missing {TIMESTAMP_HEADER} or {SIGNATURE_HEADER} header"
    if not (ts.isascii() and ts.isdigit() and len(ts) <= 12):
        return f"{TIMESTAMP_HEADER} must be unix seconds"
    if abs((time.time() if now is None else now) - int(ts)) > MAX_SKEW_SECONDS:
        return f"{TIMESTAMP_HEADER} is more than 5 minutes away from now (replayed, or the sender's clock is off)"
    # header bytes that are not UTF-8 arrive as surrogate escapes: compare bytes, never raise
    if not hmac.compare_digest(
        sign(secret, ts, body).encode(), given.strip().lower().encode("utf-8", "surrogateescape")
    ):
        return "signature does not match: sign '{timestamp}.{raw body}' with HMAC-SHA256 and the channel's secret"
    return None


class WebhookConnector(Connector):
    """One generic signed-webhook channel: `POST /webhooks/<name>` in, signed POSTs to reply_url out."""

    kind = "webhook"
    shared_path = PATH

    def __init__(self, name: str, ctx: ConnectorContext, *, secret: str, reply_url: str | None) -> None:
        super().__init__(name, ctx)
        self.secret = secret
        self.reply_url = reply_url
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_settings(cls, ch: WebhookChannel, ctx: ConnectorContext) -> WebhookConnector:
        secret = ctx.settings.secret(ch.secret_env)
        if secret is None:
            raise ValueError(f"set {ch.secret_env} in the environment")
        return cls(ch.name, ctx, secret=secret, reply_url=ch.reply_url)

    def routes(self) -> list[web.RouteDef]:
        return [web.post(PATH, self.handle)]

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15))

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def delivers_replies(self) -> bool:
        # Without reply_url the integrator reads replies from the API (outbound messages).
        return self.reply_url is not None

    async def send(self, target: OutboundTarget, text: str) -> str | None:
        if not self.reply_url:
            raise PermanentFailure(f'channel "{self.name}" has no reply_url; set one in config.toml to send replies')
        if self._session is None:
            raise RetryLater(f'channel "{self.name}" is not started')
        body = json.dumps(
            {
                "conversation_id": target.conversation_id,
                "message_id": target.message_id,
                "thread": target.thread_key,
                "contact": {"id": target.contact_id, "name": target.contact_name},
                "text": text,
            }
        ).encode()
        try:
            async with self._session.post(self.reply_url, data=body, headers=signed_headers(self.secret, body)) as resp:
                if resp.status == 429 or resp.status >= 500:
                    retry_after = resp.headers.get("Retry-After")
                    raise RetryLater(
                        f"reply_url answered {resp.status}",
                        retry_after=float(retry_after) if retry_after and retry_after.isdigit() else None,
                    )
                if resp.status >= 400:
                    raise PermanentFailure(f"reply_url answered {resp.status}: {(await resp.text())[:200]}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise RetryLater(f"reply_url unreachable: {type(exc).__name__}: {exc}") from exc
        return None

    async def handle(self, request: web.Request) -> web.Response:
        """`POST /webhooks/<name>`: check the signature, validate, store; answer once committed."""
        metrics = self.ctx.metrics
        max_body = self.ctx.settings.server.max_body_bytes
        body = await read_body(request, max_body)
        if body is None:
            metrics.rejected.labels("webhook", "too_large").inc()
            return too_large(max_body)
        problem = check_signature(self.secret, request.headers, body)
        if problem is not None:
            metrics.rejected.labels("webhook", "signature").inc()
            return error(401, problem)
        try:
            data = parse_object(body, check_text=False)  # NUL etc. are reported per field below
        except BadBody as exc:
            metrics.rejected.labels("webhook", "json").inc()
            return error(400, str(exc), fields={"body": str(exc)})
        try:
            payload = WebhookPayload.model_validate(data)
        except ValidationError as exc:
            metrics.rejected.labels("webhook", "fields").inc()
            return error(400, "invalid fields", fields=field_errors(exc))
        result = await self.ctx.inbox.ingest(to_message(self.name, payload))
        return web.json_response(
            {"conversation_id": result.conversation_id, "message_id": result.message_id, "duplicate": result.duplicate}
        )


__all__ = ["SIGNATURE_HEADER", "TIMESTAMP_HEADER", "WebhookConnector", "check_signature", "sign", "signed_headers"]
