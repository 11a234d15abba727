"""Plain, frozen data shared by connectors, the engine and the inbox. No IO here."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


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
        return {"type": self.type.value, VALUE_KEY[self.type]: self.value}

    @classmethod
    def from_json(cls, item: Mapping[str, Any]) -> Action:
        """From the API/stored form `{"type": "tag", "tag": "closing"}`; raises ValueError/KeyError."""
        t = ActionType(item["type"])
        return cls(t, item.get(VALUE_KEY[t]))


# The JSON key that holds each action type's value (the automation JSON of the API).
VALUE_KEY: dict[ActionType, str] = {
    ActionType.TAG: "tag",
    ActionType.TOPIC: "topic",
    ActionType.RESOLVE: "reason",
    ActionType.CRM: "target",
}


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
