"""Why a conversation's automations did, or did not, act on each of its inbound messages. Pure.

The runs stored at ingest say what fired; the automations as they stood when each message arrived
say why the others did not (disabled, refused by the plan, out of scope, keywords incomplete). The
keywords found are located in the stored text (`bot.engine.offsets`), so a page can highlight them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from bot.domain import Action, ActionType, ConversationType, MatchMode
from bot.engine.matcher import KeywordIndex
from bot.engine.normalize import keyword_key
from bot.engine.offsets import Found, TextMap
from bot.engine.rules import Rule

__all__ = ["NOT_FIRST", "AsOf", "HistoryMessage", "NotApplied", "Outcome", "PastRun", "WhyEntry", "explain"]

NOT_FIRST = "not the first message"

# the key of a keyword found: asked per keyword found in each message of the conversation
_key = functools.lru_cache(maxsize=4096)(keyword_key)


class Outcome(StrEnum):
    """What became of an automation on one message."""

    FIRED = "fired"
    NOT_IN_SCOPE = "not_in_scope"
    KEYWORDS_INCOMPLETE = "keywords_incomplete"
    SKIPPED_PLAN = "skipped_plan"
    DISABLED = "disabled"


@dataclass(frozen=True, slots=True)
class HistoryMessage:
    """An inbound message of the conversation, oldest first."""

    id: int
    text: str
    first: bool  # the conversation's first message


@dataclass(frozen=True, slots=True)
class AsOf:
    """An automation as it stood when a message arrived."""

    rule: Rule
    enabled: bool
    plan_allows: bool
    revision: int | None = None


@dataclass(frozen=True, slots=True)
class PastRun:
    """A stored firing: what the automation did to the message."""

    automation_id: int
    automation_name: str
    message_id: int
    keywords: tuple[str, ...]
    actions: tuple[Action, ...]
    revision: int | None = None


@dataclass(frozen=True, slots=True)
class NotApplied:
    """An action of the automation that this message did not get, and why."""

    type: ActionType
    why: str


@dataclass(frozen=True, slots=True)
class WhyEntry:
    """One automation on one message."""

    message_id: int
    automation_id: int
    automation_name: str
    revision: int | None
    outcome: Outcome
    found: tuple[Found, ...]
    missing: tuple[str, ...]  # for `all`: the keywords not yet seen in the conversation
    actions: tuple[Action, ...]  # applied
    not_applied: tuple[NotApplied, ...]


_NOTHING_FOUND = TextMap("")  # stands for a message in which no keyword is looked for

_WHY_NOT = {
    Outcome.DISABLED: "the automation was disabled",
    Outcome.SKIPPED_PLAN: "the plan does not allow it",
    Outcome.NOT_IN_SCOPE: "the message is not in the automation's scope",
}


def _locate(mapped: TextMap, keywords: Sequence[str]) -> tuple[Found, ...]:
    out: list[Found] = []
    for keyword in keywords:
        span = mapped.locate(keyword)
        if span is not None:
            out.append(Found(keyword, *span))
    return tuple(out)


def _in_scope(rule: Rule, *, channel: str, type: ConversationType) -> bool:
    return rule.in_scope(channel=channel, type=type)


def explain(
    messages: Sequence[HistoryMessage],
    *,
    channel: str,
    type: ConversationType,
    automations_at: Callable[[HistoryMessage], Sequence[AsOf]],
    runs: Sequence[PastRun],
) -> list[WhyEntry]:
    """Per inbound message (oldest first), an entry for each automation that fired on it or found
    at least one of its keywords in it, oldest automation first."""
    by_message: dict[int, dict[int, PastRun]] = {}
    for run in runs:
        by_message.setdefault(run.message_id, {})[run.automation_id] = run
    standing = [automations_at(msg) for msg in messages]
    # Which keys each message holds: one scan of it for all of them (the live matcher's index);
    # only the keywords it holds are then located in the stored text.
    index = KeywordIndex({key for subjects in standing for s in subjects for key in s.rule.keys})
    seen: set[str] = set()  # keys found in the conversation's earlier inbound messages
    entries: list[WhyEntry] = []
    for msg, at_the_time in zip(messages, standing, strict=True):
        fired = by_message.get(msg.id, {})
        resolver = next((r for _, r in sorted(fired.items()) if _resolves(r.actions)), None)
        subjects = {s.rule.id: s for s in at_the_time}
        present = index.find(msg.text) if subjects and len(index) else set()
        mapped = TextMap(msg.text) if fired or present else _NOTHING_FOUND
        here: set[str] = set()
        pending: list[tuple[AsOf, tuple[Found, ...]]] = []
        for subject in subjects.values():
            rule = subject.rule
            if present.isdisjoint(rule.keys):
                pending.append((subject, ()))
                continue
            found = _locate(mapped, [k for k, key in zip(rule.keywords, rule.keys, strict=True) if key in present])
            here.update(_key(f.keyword) for f in found)
            pending.append((subject, found))
        progress = seen | here
        message_entries = [
            _fired(msg, run, subjects.get(automation_id), mapped, resolver, progress)
            for automation_id, run in fired.items()
        ]
        for subject, found in pending:
            if subject.rule.id in fired or not found:
                continue
            entry = _not_fired(msg, subject, found, progress, channel=channel, type=type)
            if entry is not None:
                message_entries.append(entry)
        entries += sorted(message_entries, key=lambda e: e.automation_id)
        seen = progress
    return entries


def _resolves(actions: Sequence[Action]) -> bool:
    return any(a.type is ActionType.RESOLVE for a in actions)


def _missing(rule: Rule, progress: set[str]) -> tuple[str, ...]:
    if rule.match is not MatchMode.ALL:
        return ()
    return tuple(k for k, key in zip(rule.keywords, rule.keys, strict=True) if key and key not in progress)


def _fired(
    msg: HistoryMessage,
    run: PastRun,
    subject: AsOf | None,
    mapped: TextMap,
    resolver: PastRun | None,
    progress: set[str],
) -> WhyEntry:
    not_applied: list[NotApplied] = []
    if subject is not None:
        applied = set(run.actions)
        for action in subject.rule.actions:
            if action in applied:
                continue
            if action.type is ActionType.RESOLVE:
                if not msg.first:
                    why = NOT_FIRST
                elif resolver is not None and resolver.automation_id != run.automation_id:
                    why = f'"{resolver.automation_name}" (#{resolver.automation_id}) resolved it first'
                else:
                    why = "not applied"
                not_applied.append(NotApplied(action.type, why))
            else:
                not_applied.append(NotApplied(action.type, "not applied"))
    return WhyEntry(
        message_id=msg.id,
        automation_id=run.automation_id,
        automation_name=run.automation_name,
        revision=run.revision if run.revision is not None else (subject.revision if subject else None),
        outcome=Outcome.FIRED,
        found=_locate(mapped, run.keywords),
        missing=_missing(subject.rule, progress) if subject is not None else (),
        actions=run.actions,
        not_applied=tuple(not_applied),
    )


def _not_fired(
    msg: HistoryMessage,
    subject: AsOf,
    found: tuple[Found, ...],
    progress: set[str],
    *,
    channel: str,
    type: ConversationType,
) -> WhyEntry | None:
    rule = subject.rule
    missing = _missing(rule, progress)
    if not subject.enabled:
        outcome = Outcome.DISABLED
    elif not subject.plan_allows:
        outcome = Outcome.SKIPPED_PLAN
    elif not _in_scope(rule, channel=channel, type=type):
        outcome = Outcome.NOT_IN_SCOPE
    elif missing:
        outcome = Outcome.KEYWORDS_INCOMPLETE
    else:
        # It would have fired as it stands, yet it did not: it was changed since the message came
        # (only its history of changes could say how). Nothing true to report.
        return None
    why = _WHY_NOT.get(outcome) or "keywords missing: " + ", ".join(missing)
    return WhyEntry(
        message_id=msg.id,
        automation_id=rule.id,
        automation_name=rule.name,
        revision=subject.revision,
        outcome=outcome,
        found=found,
        missing=missing,
        actions=(),
        not_applied=tuple(NotApplied(a.type, why) for a in rule.actions),
    )
