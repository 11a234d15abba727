"""Telegram Bot API updates → `InboundMessage`s; replies cut to Telegram's size. Pure: no IO.

`parse_update` turns a webhook body into python-telegram-bot's `Update` (its objects only hold the
`Bot` for later calls) and words what is wrong with a body it cannot read, without Python's
internals: https://core.telegram.org/bots/api#update says what an Update holds.
"""

from __future__ import annotations

import re
from typing import Any

from telegram import Bot, Message, Update
from telegram.constants import MessageLimit

from bot.domain import ConversationType, InboundMessage
from connectors.http import bad_text

UPDATE_DOCS = "https://core.telegram.org/bots/api#update"
NOT_AN_UPDATE = "not a valid Telegram Update"
# What python-telegram-bot raises for an object without a required field, e.g.
# "User.__init__() missing 1 required positional argument: 'first_name'".
_MISSING_ARGS = re.compile(
    r"^_?(?P<cls>[A-Za-z]+?)(?:Base)?\.__init__\(\) missing \d+ required [\w-]+ arguments?: (?P<names>.+)$"
)

_CHAT_TYPES = {
    "private": ConversationType.DIRECT,
    "group": ConversationType.GROUP,
    "supergroup": ConversationType.GROUP,
    "channel": ConversationType.PUBLIC,
}


class BadUpdate(ValueError):
    """The body is JSON but not a Telegram Update; the message says why in the sender's terms."""


def _field_list(names: list[str]) -> str:
    quoted = [f'"{n}"' for n in names]
    if len(quoted) == 1:
        return f"the required field {quoted[0]}"
    return f"the required fields {', '.join(quoted[:-1])} and {quoted[-1]}"


def explain(exc: BaseException) -> str:
    """What python-telegram-bot's failure to read an Update means for the sender, in plain words."""
    what = "a field has the wrong type or is missing"
    if isinstance(exc, TypeError) and (match := _MISSING_ARGS.match(str(exc))):
        names = re.findall(r"'(\w+)'", match["names"])
        what = f"a {match['cls']} object lacks {_field_list(names)}"
    elif isinstance(exc, KeyError) and exc.args and isinstance(exc.args[0], str):
        what = f"{_field_list([exc.args[0]])} is missing"
    elif isinstance(exc, OverflowError):
        what = "a date is out of range"
    return f"{NOT_AN_UPDATE}: {what} (see {UPDATE_DOCS})"


def parse_update(data: dict[str, Any], bot: Bot) -> Update:
    """A webhook body as a python-telegram-bot `Update`; raises BadUpdate when it is not one."""
    if not isinstance(data.get("update_id"), int):
        raise BadUpdate("a Telegram Update is a JSON object with an integer update_id")
    try:
        update = Update.de_json(data, bot)
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
        raise BadUpdate(explain(exc)) from exc
    message = update.effective_message
    if message is not None and getattr(message, "chat", None) is None:
        # python-telegram-bot reads a message without its chat, but no reply could ever find it
        raise BadUpdate(f"{NOT_AN_UPDATE}: the message lacks {_field_list(['chat'])} (see {UPDATE_DOCS})")
    return update


def thread_key(message: Message) -> str:
    """The thread key: the chat id, plus the forum topic's `message_thread_id` for topic messages."""
    if message.is_topic_message and message.message_thread_id:
        return f"{message.chat.id}:{message.message_thread_id}"
    return str(message.chat.id)


def reply_to(message: Message) -> dict[str, str | int | None]:
    """Where replies to this message's conversation go (saved on the conversation)."""
    topic = message.message_thread_id if message.is_topic_message else None
    return {"chat_id": message.chat.id, "message_thread_id": topic}


def to_inbound(channel: str, message: Message) -> InboundMessage | None:
    """Normalize a text message, caption or channel post; None for anything without text. Raises
    ValueError for text the store cannot keep (NUL, lone surrogates)."""
    text = message.text or message.caption
    if not text:
        return None
    problem = bad_text(text)
    if problem is not None:  # the webhook refuses these bodies (400); polling must skip them too
        raise ValueError(problem)
    chat = message.chat
    # sender_chat: a channel post, an anonymous group admin, or a linked channel's auto-forward.
    if message.sender_chat is not None:
        contact_id, name = str(message.sender_chat.id), message.sender_chat.effective_name
    elif message.from_user is not None:
        contact_id, name = str(message.from_user.id), message.from_user.full_name
    else:
        contact_id, name = str(chat.id), chat.effective_name
    return InboundMessage(
        channel=channel,
        # Telegram message ids are unique per chat only.
        platform_message_id=f"{chat.id}:{message.message_id}",
        thread_key=thread_key(message),
        contact_id=contact_id,
        contact_name=name or None,
        text=text,
        type=_CHAT_TYPES.get(chat.type, ConversationType.GROUP),
        sent_at=message.date,
        reply_to=reply_to(message),
    )


def split_text(text: str, limit: int = MessageLimit.MAX_TEXT_LENGTH) -> list[str]:
    """Split a reply into pieces Telegram accepts (at most `limit` UTF-16 units each), preferring
    line breaks, then spaces."""

    def units(s: str) -> int:
        return len(s.encode("utf-16-le")) // 2

    pieces: list[str] = []
    rest = text
    while units(rest) > limit:
        # the longest prefix that fits
        cut, size = 0, 0
        for i, ch in enumerate(rest):
            size += 2 if ord(ch) > 0xFFFF else 1
            if size > limit:
                cut = i
                break
        head = rest[:cut]
        brk = max(head.rfind("\n"), head.rfind(" "))
        if brk > cut // 2:
            cut = brk + 1
        pieces.append(rest[:cut].rstrip())
        rest = rest[cut:]
    if rest.strip() or not pieces:
        pieces.append(rest)
    return pieces


__all__ = ["BadUpdate", "explain", "parse_update", "reply_to", "split_text", "thread_key", "to_inbound"]
