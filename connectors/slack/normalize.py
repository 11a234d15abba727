"""Slack Events API payloads → `InboundMessage`s, and the decisions about them. Pure: no IO.

Shapes: https://api.slack.com/events/message (and its subtypes), https://api.slack.com/events-api.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from slack_bolt.request.internals import parse_body

from bot.domain import ConversationType, InboundMessage

# Message subtypes that carry a contact's words. Everything else (channel_join, channel_leave,
# message_changed, message_deleted, message_replied, channel_topic, pinned_item, …) is
# acknowledged and ignored; so is anything our own bot posted.
CONTENT_SUBTYPES: frozenset[str | None] = frozenset(
    {None, "file_share", "thread_broadcast", "me_message", "bot_message"}
)

CONVERSATION_TYPES: Mapping[str, ConversationType] = {
    "im": ConversationType.DIRECT,
    "mpim": ConversationType.GROUP,
    "group": ConversationType.GROUP,  # a private channel (the Events API still calls it "group")
    "channel": ConversationType.PUBLIC,
}


@dataclass(frozen=True, slots=True)
class BotIdentity:
    """Who we are in the workspace (from `auth.test`)."""

    team_id: str | None
    user_id: str | None
    bot_id: str | None


def unescape(text: str) -> str:
    """Slack escapes `&`, `<` and `>` in message text; give the contact's words back."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def escape(text: str) -> str:
    """Our text shown as written (Slack would read `<…>` as a link or mention)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def conversation_type(channel_type: str | None, channel_id: str) -> ConversationType | None:
    """IM → direct; MPIM and private channels → group; public channels → public."""
    if channel_type is not None and channel_type in CONVERSATION_TYPES:
        return CONVERSATION_TYPES[channel_type]
    if channel_id.startswith("D"):
        return ConversationType.DIRECT
    return None  # ask conversations.info


def is_direct_like(channel_type: str | None, channel_id: str) -> bool:
    """IMs and MPIMs: top-level messages share one conversation per DM."""
    return channel_type in ("im", "mpim") or (channel_type is None and channel_id.startswith("D"))


def thread_of(event: Mapping[str, Any]) -> tuple[str, str | None]:
    """(thread key, thread_ts to reply in).

    Channels: channel id + thread root ts (a top-level message is its own root).
    DMs and group DMs: the DM's channel id for top-level messages; a thread inside a DM is keyed
    like a channel thread.
    """
    channel = str(event["channel"])
    ts = str(event["ts"])
    thread_ts = event.get("thread_ts")
    if is_direct_like(event.get("channel_type"), channel) and not thread_ts:
        return channel, None
    root = str(thread_ts or ts)
    return f"{channel}:{root}", root


def skip_reason(event: Mapping[str, Any], me: BotIdentity | None) -> str | None:
    """Why a `message` event is not a contact's message; None when it is."""
    subtype = event.get("subtype")
    if subtype not in CONTENT_SUBTYPES:
        return f"subtype {subtype}"
    if event.get("hidden"):
        return "hidden"
    if not event.get("channel") or not event.get("ts"):
        return "no channel or ts"
    if me is not None and (
        (me.user_id and event.get("user") == me.user_id) or (me.bot_id and event.get("bot_id") == me.bot_id)
    ):
        return "our own message"
    if not (event.get("user") or event.get("bot_id")):
        return "no author"
    if not message_text(event):
        return "no text"
    return None


def message_text(event: Mapping[str, Any]) -> str:
    text = unescape(str(event.get("text") or "")).strip()
    if text:
        return text
    files = [f for f in event.get("files") or () if isinstance(f, dict)]
    names = [str(f.get("name") or f.get("title") or "file") for f in files]
    return " ".join(f"[file: {n}]" for n in names)


def to_message(
    event: Mapping[str, Any],
    *,
    channel_name: str,
    type: ConversationType,
    contact_name: str | None,
) -> InboundMessage:
    """Normalize one contact message event (already checked by `skip_reason`)."""
    channel = str(event["channel"])
    ts = str(event["ts"])
    key, reply_ts = thread_of(event)
    contact = str(event.get("user") or event.get("bot_id"))
    if contact_name is None and not event.get("user"):
        profile = event.get("bot_profile") or {}
        contact_name = event.get("username") or (profile.get("name") if isinstance(profile, dict) else None)
    try:
        sent_at: datetime | None = datetime.fromtimestamp(float(ts), tz=UTC)
    except ValueError:
        sent_at = None
    return InboundMessage(
        channel=channel_name,
        platform_message_id=f"{channel}:{ts}",
        thread_key=key,
        contact_id=contact,
        contact_name=contact_name,
        text=message_text(event),
        type=type,
        sent_at=sent_at,
        reply_to={"channel": channel, "thread_ts": reply_ts},
    )


def display_name(user: Mapping[str, Any]) -> str | None:
    p = user.get("profile") or {}
    for value in (p.get("display_name"), p.get("real_name"), user.get("real_name"), user.get("name")):
        if value:
            return str(value)
    return None


def body_problem(body: str, content_type: str | None) -> str | None:
    """Why bolt cannot read this body, or None. Slack sends a JSON object, or a form whose
    `payload` (interactions) is one; bolt reads it the same way, before it checks the signature."""
    try:
        # the media type without parameters, as bolt reads it
        parsed = parse_body(body, content_type.split(";")[0] if content_type else None)
    except ValueError:
        return "body is not valid JSON"
    except RecursionError:
        return "body is not valid JSON: nested too deeply"
    if not isinstance(parsed, dict):
        return "body must be a JSON object, or a form whose payload is one"
    return None


def callback_type(body: str) -> str:
    """What kind of callback a request body is, for the log: the JSON `type` (`event_callback`,
    `app_rate_limited`, …), a slash command's name, or an interaction's `type`."""
    try:
        data: Any = json.loads(body)
    except ValueError:
        form = parse_qs(body)
        if "command" in form:
            return form["command"][0]
        try:
            data = json.loads(form.get("payload", [""])[0])
        except ValueError:
            return "unknown"
    if not isinstance(data, dict):
        return "unknown"
    kind = str(data.get("type") or "unknown")
    event = data.get("event")
    if kind == "event_callback" and isinstance(event, dict):
        return f"{kind}/{event.get('type')}"
    return kind


__all__ = [
    "BotIdentity",
    "body_problem",
    "callback_type",
    "conversation_type",
    "display_name",
    "escape",
    "is_direct_like",
    "message_text",
    "skip_reason",
    "thread_of",
    "to_message",
    "unescape",
]
