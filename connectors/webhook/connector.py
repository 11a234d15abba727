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
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import aiohttp
from aiohttp import web
from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints, ValidationError

from bot.domain import ConversationType, InboundMessage
from bot.outbox import PermanentFailure, RetryLater
from bot.request_body import BadBody, parse_object, read_body
from connectors.base import Connector, ConnectorContext, OutboundTarget

log = logging.getLogger("inbox.webhook")

MAX_SKEW_SECONDS = 300
SIGNATURE_HEADER = "X-Inbox-Signature"
TIMESTAMP_HEADER = "X-Inbox-Timestamp"


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


def _no_nul(value: str) -> str:
    # PostgreSQL text cannot hold NUL: refuse it here rather than fail in the store.
    if "\x00" in value:
        raise ValueError("must not contain NUL (\\u0000) characters")
    return value


def _utc(value: datetime | None) -> datetime | None:
    """Naive times are UTC; a time that cannot be expressed in UTC is refused (not a 500 later)."""
    if value is None:
        return None
    try:
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
    except OverflowError:
        raise ValueError("is out of range") from None


NonEmpty = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=255), AfterValidator(_no_nul)]


def sign(secret: str, timestamp: str | int, body: bytes) -> str:
    """The `X-Inbox-Signature` value for `body` sent at `timestamp`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"v1={mac.hexdigest()}"


def signed_headers(secret: str, body: bytes, *, now: float | None = None) -> dict[str, str]:
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


class _Contact(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: NonEmpty
    name: Annotated[str, StringConstraints(strict=True, max_length=255), AfterValidator(_no_nul)] | None = None


class WebhookPayload(BaseModel):
    """The body of `POST /webhooks/{channel}`."""

    model_config = ConfigDict(extra="ignore")
    id: NonEmpty
    contact: _Contact
    # no length cap of its own: the body limit (413) bounds it
    text: Annotated[
        str, StringConstraints(strict=True, min_length=1), AfterValidator(_no_nul), AfterValidator(_not_blank)
    ]
    type: Literal["direct", "group", "public"] | None = None  # null or absent: direct
    # null, absent or blank: the contact id is the thread
    thread: Annotated[str, StringConstraints(strict=True, max_length=255), AfterValidator(_no_nul)] | None = None
    sent_at: Annotated[datetime | None, AfterValidator(_utc)] = None


def field_errors(exc: ValidationError) -> dict[str, str]:
    out: dict[str, str] = {}
    for e in exc.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "body"
        msg = "required" if e["type"] == "missing" else e["msg"].removeprefix("Value error, ")
        out.setdefault(loc, msg)
    return out


def error(status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status)


class WebhookConnector(Connector):
    kind = "webhook"

    def __init__(self, name: str, ctx: ConnectorContext, *, secret: str, reply_url: str | None) -> None:
        super().__init__(name, ctx)
        self.secret = secret
        self.reply_url = reply_url
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15))

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def to_message(self, payload: WebhookPayload) -> InboundMessage:
        return InboundMessage(
            channel=self.name,
            platform_message_id=payload.id,
            thread_key=(payload.thread or "").strip() or payload.contact.id,
            contact_id=payload.contact.id,
            contact_name=payload.contact.name,
            text=payload.text,
            type=ConversationType(payload.type or "direct"),
            sent_at=payload.sent_at,
        )

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


def webhook_handler(
    connectors: Callable[[str], Connector | None],
    *,
    max_body: int,
    known: Callable[[str], str | None],
) -> Callable[[web.Request], Any]:
    """The `POST /webhooks/{channel}` handler. `known(name)` says why a configured channel is off."""

    async def handle(request: web.Request) -> web.Response:
        name = request.match_info["channel"]
        connector = connectors(name)
        if not isinstance(connector, WebhookConnector):
            why = known(name)
            unknown = f'unknown channel "{name}" — configure it under [[channels]] with kind = "webhook"'
            return error(404, why or unknown)
        metrics = connector.ctx.metrics
        body = await read_body(request, max_body)
        if body is None:
            metrics.rejected.labels("webhook", "too_large").inc()
            return error(413, f"body is larger than {max_body // 1024} KiB")
        problem = check_signature(connector.secret, request.headers, body)
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
        result = await connector.ctx.inbox.ingest(connector.to_message(payload))
        return web.json_response(
            {"conversation_id": result.conversation_id, "message_id": result.message_id, "duplicate": result.duplicate}
        )

    return handle
