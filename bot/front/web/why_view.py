""" "Why" on a conversation page: per inbound message, the automations that fired on it or found
one of their keywords, what became of each, in words, and the message with the found words marked.

The insight service decides (as each automation stood when the message came); this only words it,
in objects the template only prints (a long conversation explains hundreds of messages).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bot.domain import AutomationRun, Conversation, Message
from bot.engine.why import NOT_FIRST, Outcome, WhyEntry
from bot.front.commands import describe_actions
from bot.front.web.context import WebContext
from bot.front.web.marks import Segment, segments
from bot.i18n import Wording

__all__ = ["WhyLine", "WhyMessage", "why_items", "why_words"]


@dataclass(slots=True)
class WhyLine:
    """One automation on one message, in words ('' where there is nothing to say)."""

    name: str
    automation_id: int
    fired: bool
    revision: str  # "revision 3"
    outcome: str  # "fired", "did not fire: …"
    found: str  # "found “a”, “b”"
    missing: str  # "missing “c”"
    did: str  # "did: tag “x”"
    not_applied: list[str]


@dataclass(slots=True)
class WhyMessage:
    """One inbound message: its text cut at the found words, and the automations on it."""

    message_id: int
    label: str  # "Message #12"
    parts: list[Segment]
    entries: list[WhyLine]


def _quoted(words: tuple[str, ...] | list[str]) -> str:
    return ", ".join(f"“{w}”" for w in words)


def _outcomes(_: Wording) -> dict[Outcome, str]:
    return {
        Outcome.FIRED: _("fired"),
        Outcome.KEYWORDS_INCOMPLETE: _("did not fire: keywords still missing"),
        Outcome.NOT_IN_SCOPE: _("did not fire: the message is not in its scope"),
        Outcome.SKIPPED_PLAN: _("did not fire: the plan does not allow it"),
        Outcome.DISABLED: _("did not fire: it was disabled"),
    }


def why_words(e: WhyEntry, _: Wording, outcomes: Mapping[Outcome, str] | None = None) -> WhyLine:
    """One automation on one message: its outcome, what it found, did, and did not do.
    `outcomes`: `_outcomes(_)`, when wording many."""
    not_applied = [
        _("(resolve not applied: not the first message)")
        if n.why == NOT_FIRST
        else _("(resolve not applied: another automation resolved first)")
        for n in e.not_applied
    ]
    found = _quoted([f.keyword for f in e.found])
    missing = _quoted(list(e.missing))
    did = describe_actions(e.actions, _) if e.actions else ""
    return WhyLine(
        name=e.automation_name,
        automation_id=e.automation_id,
        fired=e.outcome is Outcome.FIRED,
        revision=_("revision {n}", n=e.revision) if e.revision else "",
        outcome=(outcomes or _outcomes(_))[e.outcome],
        found=_("found {keywords}", keywords=found) if found else "",
        missing=_("missing {keywords}", keywords=missing) if missing else "",
        did=_("did: {actions}", actions=did) if did else "",
        not_applied=not_applied,
    )


async def why_items(
    ctx: WebContext,
    _: Wording,
    conversation: Conversation,
    runs: Sequence[AutomationRun],
    messages: Sequence[Message],
) -> list[WhyMessage]:
    """Per inbound message that an automation fired on or found a keyword in (oldest first): its
    text cut into segments at the found words' offsets, and the automations in words. The
    conversation, its runs and messages: the page has read them already (not read again)."""
    entries = await ctx.insight.why(conversation.id, read=(conversation, runs, messages))
    if not entries:
        return []
    texts = {m.id: m.text for m in messages}
    outcomes = _outcomes(_)
    items: dict[int, WhyMessage] = {}
    found: dict[int, list[Any]] = {}
    for e in entries:
        item = items.get(e.message_id)
        if item is None:
            label = _("Message #{id}", id=e.message_id)
            item = items[e.message_id] = WhyMessage(e.message_id, label, [], [])
        item.entries.append(why_words(e, _, outcomes))
        found.setdefault(e.message_id, []).extend(e.found)
    for message_id, item in items.items():
        item.parts = segments(texts.get(message_id, ""), found[message_id])
    return list(items.values())
