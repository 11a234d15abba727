"""Plain, frozen data shared by connectors, the engine and the inbox. No IO here."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class ConversationType(StrEnum):
    """How many people a conversation involves, as the platform tells it."""

    DIRECT = "direct"
    GROUP = "group"
    PUBLIC = "public"


class MatchMode(StrEnum):
    """`any`: one keyword is enough; `all`: every keyword across the conversation."""

    ANY = "any"
    ALL = "all"


class ActionType(StrEnum):
    """What an automation can do when it fires."""

    TAG = "tag"
    TOPIC = "topic"
    RESOLVE = "resolve"
    CRM = "crm"


class Status(StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"


class Direction(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


@dataclass(frozen=True, slots=True)
class Action:
    """One action of an automation.

    `value` is the tag name (tag), the topic name (topic), the resolution reason or None
    (resolve), or the CRM target (crm).
    """

    type: ActionType
    value: str | None = None

    def to_json(self) -> dict[str, str | None]:
        key = {
            ActionType.TAG: "tag",
            ActionType.TOPIC: "topic",
            ActionType.RESOLVE: "reason",
            ActionType.CRM: "target",
        }[self.type]
        return {"type": self.type.value, key: self.value}


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """A contact's message, normalized by a connector; the core never sees platform dicts."""

    channel: str
    platform_message_id: str
    thread_key: str
    contact_id: str
    text: str
    type: ConversationType = ConversationType.DIRECT
    contact_name: str | None = None
    sent_at: datetime | None = None
    # Where to send replies on the platform (Slack channel + thread_ts, Telegram chat id + topic).
    reply_to: dict[str, str | int | None] = field(default_factory=dict)
