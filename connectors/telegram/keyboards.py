"""Inline keyboards for `/automation list` in Telegram, and reading a pressed button back. Pure.

A button's `callback_data` (at most 64 bytes, https://core.telegram.org/bots/api#inlinekeyboardbutton)
is `a:<verb>:<id>:<version>`: the automation's id and the version the list showed, never its name.
Verbs: `on`, `off`, `del` (asks for confirmation), `rm` (confirmed delete), `keep` (not deleted).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.front.chat_forms import Item
from bot.i18n import Wording

PREFIX = "a:"
PATTERN = r"^a:"
VERBS = {"on": "enable", "off": "disable", "rm": "delete"}
ASK = "del"
KEEP = "keep"
MAX_LISTED = 50  # rows of buttons under one message
MAX_DATA = 64  # bytes Telegram keeps of callback_data


@dataclass(frozen=True, slots=True)
class Press:
    """A pressed button: what it asks for, on which automation as the list showed it."""

    verb: str  # on, off, del, rm, keep
    automation_id: int
    version: int


def data(verb: str, automation_id: int, version: int) -> str:
    out = f"{PREFIX}{verb}:{automation_id}:{version}"
    assert len(out.encode()) <= MAX_DATA, out
    return out


def parse(raw: str | None) -> Press | None:
    """The button a `callback_data` stands for; None when it is not one of ours."""
    if not raw or not raw.startswith(PREFIX):
        return None
    parts = raw[len(PREFIX) :].split(":")
    if len(parts) != 3 or parts[0] not in (*VERBS, ASK, KEEP):
        return None
    verb, ident, version = parts
    if not (ident.isascii() and ident.isdigit() and version.isascii() and version.isdigit()):
        return None
    return Press(verb, int(ident), int(version))


def list_keyboard(items: Sequence[Item], _: Wording) -> InlineKeyboardMarkup | None:
    """A row per automation: Enable or Disable, and Delete (which asks first)."""
    rows = []
    for item in items[:MAX_LISTED]:
        toggle = (
            InlineKeyboardButton(_("Disable #{id}", id=item.id), callback_data=data("off", item.id, item.version))
            if item.enabled
            else InlineKeyboardButton(_("Enable #{id}", id=item.id), callback_data=data("on", item.id, item.version))
        )
        delete = InlineKeyboardButton(_("Delete #{id}", id=item.id), callback_data=data(ASK, item.id, item.version))
        rows.append([toggle, delete])
    return InlineKeyboardMarkup(rows) if rows else None


def confirm_keyboard(press: Press, _: Wording) -> InlineKeyboardMarkup:
    """The second keyboard: really delete, or keep it."""
    return InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton(
                    _("Yes, delete #{id}", id=press.automation_id),
                    callback_data=data("rm", press.automation_id, press.version),
                ),
                InlineKeyboardButton(_("Keep it"), callback_data=data(KEEP, press.automation_id, press.version)),
            ]
        ]
    )
