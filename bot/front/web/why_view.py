""" "Why" on a conversation page: per inbound message, the automations that fired on it or found
one of their keywords, what became of each, in words, and the message with the found words marked.

The insight service decides (as each automation stood when the message came); this only words it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.engine.why import NOT_FIRST, Outcome, WhyEntry
from bot.front.commands import describe_actions
from bot.front.web.context import WebContext
from bot.front.web.marks import segments
from bot.i18n import Wording

__all__ = ["why_items", "why_words"]


def _quoted(words: tuple[str, ...] | list[str]) -> str:
    return ", ".join(f"“{w}”" for w in words)


def why_words(e: WhyEntry, _: Wording) -> dict[str, Any]:
    """One automation on one message: its outcome, what it found, did, and did not do."""
    outcome = {
        Outcome.FIRED: _("fired"),
        Outcome.KEYWORDS_INCOMPLETE: _("did not fire: keywords still missing"),
        Outcome.NOT_IN_SCOPE: _("did not fire: the message is not in its scope"),
        Outcome.SKIPPED_PLAN: _("did not fire: the plan does not allow it"),
        Outcome.DISABLED: _("did not fire: it was disabled"),
    }[e.outcome]
    not_applied = [
        _("(resolve not applied: not the first message)")
        if n.why == NOT_FIRST
        else _("(resolve not applied: another automation resolved first)")
        for n in e.not_applied
    ]
    return {
        "name": e.automation_name,
        "automation_id": e.automation_id,
        "revision": e.revision,
        "fired": e.outcome is Outcome.FIRED,
        "outcome": outcome,
        "found": _quoted([f.keyword for f in e.found]),
        "missing": _quoted(list(e.missing)),
        "did": describe_actions(e.actions, _) if e.actions else "",
        "not_applied": not_applied,
    }


async def why_items(
    ctx: WebContext, conversation_id: int, _: Wording, texts: Mapping[int, str]
) -> list[dict[str, Any]]:
    """Per inbound message that an automation fired on or found a keyword in (oldest first): its
    text cut into segments at the found words' offsets, and the automations in words. `texts`:
    the conversation's messages by id (the page has read them already)."""
    entries = await ctx.insight.why(conversation_id)
    if not entries:
        return []
    items: dict[int, dict[str, Any]] = {}
    found: dict[int, list[Any]] = {}
    for e in entries:
        item = items.setdefault(e.message_id, {"message_id": e.message_id, "entries": []})
        item["entries"].append(why_words(e, _))
        found.setdefault(e.message_id, []).extend(e.found)
    for message_id, item in items.items():
        item["parts"] = segments(texts.get(message_id, ""), found[message_id])
    return list(items.values())
