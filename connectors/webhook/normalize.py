"""The body of `POST /webhooks/{channel}` → an `InboundMessage`. Pure: no IO."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints, ValidationError

from bot.domain import ConversationType, InboundMessage


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
    """One message per invalid field, keyed by its dotted path (`contact.id`)."""
    out: dict[str, str] = {}
    for e in exc.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "body"
        msg = "required" if e["type"] == "missing" else e["msg"].removeprefix("Value error, ")
        out.setdefault(loc, msg)
    return out


def to_message(channel: str, payload: WebhookPayload) -> InboundMessage:
    """The validated body as the message the inbox stores."""
    return InboundMessage(
        channel=channel,
        platform_message_id=payload.id,
        thread_key=(payload.thread or "").strip() or payload.contact.id,
        contact_id=payload.contact.id,
        contact_name=payload.contact.name,
        text=payload.text,
        type=ConversationType(payload.type or "direct"),
        sent_at=payload.sent_at,
    )


__all__ = ["WebhookPayload", "field_errors", "to_message"]
