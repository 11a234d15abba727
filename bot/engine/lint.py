"""Warnings about automations that are likely mistakes. Pure: the facts come in, warnings go out.

Warnings never block a save; the front-ends word them (`Warning` holds the facts, not the text).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from itertools import combinations

from bot.domain import ActionType
from bot.engine.normalize import keyword_key
from bot.engine.rules import Rule

__all__ = ["GENERIC_WORDS", "Kind", "LintSubject", "Warning", "lint"]

QUIET_DAYS = 30  # enabled this long without a run: `never_fired`
GENERIC_SHARE = 0.05  # a resolve keyword in more of the recent first messages than this is generic
UNSAVED = 0  # the id of an automation being previewed, not stored yet


class Kind(StrEnum):
    GENERIC_RESOLVE_KEYWORD = "generic_resolve_keyword"
    DUPLICATE_KEYWORD = "duplicate_keyword"
    CONFLICT = "conflict"
    UNKNOWN_CHANNEL = "unknown_channel"
    NEVER_FIRED = "never_fired"


# Greetings and thanks that open conversations as often as they close them, in English, French,
# German and Spanish: resolving on one closes conversations that have just begun.
GENERIC_WORDS: frozenset[str] = frozenset(
    keyword_key(w)
    for w in (
        # English
        "hi", "hello", "hey", "hiya", "good morning", "good afternoon", "good evening",
        "thanks", "thank you", "thank you very much", "thanks a lot", "many thanks", "thx", "ty", "cheers",
        # French
        "bonjour", "bonsoir", "salut", "coucou", "allo", "merci", "merci beaucoup", "merci bien",
        # German
        "hallo", "guten tag", "guten morgen", "guten abend", "servus", "moin", "gruss gott",
        "danke", "danke schon", "danke sehr", "vielen dank",
        # Spanish
        "hola", "buenos dias", "buenas tardes", "buenas noches", "buenas",
        "gracias", "muchas gracias", "mil gracias",
    )
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class LintSubject:
    """An automation with the facts the rules need about it."""

    rule: Rule
    enabled: bool
    enabled_since: datetime | None = None  # when it was last enabled (or created)
    last_run_at: datetime | None = None
    # keyword key → share of the first messages in its scope over the last 30 days it appears in
    first_message_share: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Warning:
    """One warning: its kind, the automations involved (their ids and names), and its subject."""

    kind: Kind
    automation_ids: tuple[int, ...]
    names: tuple[str, ...]  # the automations' names, same order
    keyword: str | None = None  # the keyword concerned (display form)
    channel: str | None = None  # unknown_channel
    share: float | None = None  # generic_resolve_keyword from the first messages
    days: int | None = None  # never_fired


def _overlap(a: Rule, b: Rule) -> bool:
    channels = not a.channels or not b.channels or bool(a.channels & b.channels)
    types = not a.types or not b.types or bool(a.types & b.types)
    return channels and types


def _has(rule: Rule, type: ActionType) -> bool:
    return any(a.type is type for a in rule.actions)


def _ids(*rules: Rule) -> tuple[tuple[int, ...], tuple[str, ...]]:
    return tuple(r.id for r in rules), tuple(r.name for r in rules)


def _shared(a: Rule, b: Rule) -> list[str]:
    """Display keywords of `a` whose key `b` has too."""
    keys_b = {k for k in b.keys if k}
    return [kw for kw, key in zip(a.keywords, a.keys, strict=True) if key and key in keys_b]


def lint(
    subjects: Sequence[LintSubject],
    *,
    known_channels: Sequence[str],
    now: datetime,
    about: int | None = None,
) -> list[Warning]:
    """The warnings of the enabled automations among `subjects` (and of `about`, enabled or not):
    all of them, or only those involving the automation `about` when given."""
    active = [s for s in subjects if s.enabled or s.rule.id == about]
    out: list[Warning] = []
    channels = set(known_channels)
    for s in active:
        if about is not None and s.rule.id != about:
            continue  # its own warnings name only itself
        r = s.rule
        if _has(r, ActionType.RESOLVE):
            for kw, key in zip(r.keywords, r.keys, strict=True):
                share = s.first_message_share.get(key)
                if key in GENERIC_WORDS:
                    out.append(Warning(Kind.GENERIC_RESOLVE_KEYWORD, *_ids(r), keyword=kw))
                elif share is not None and share > GENERIC_SHARE:
                    out.append(Warning(Kind.GENERIC_RESOLVE_KEYWORD, *_ids(r), keyword=kw, share=share))
        for c in sorted(r.channels):
            if c not in channels:
                out.append(Warning(Kind.UNKNOWN_CHANNEL, *_ids(r), channel=c))
        quiet_since = now - timedelta(days=QUIET_DAYS)
        if (
            s.enabled
            and s.enabled_since is not None
            and s.enabled_since <= quiet_since
            and (s.last_run_at is None or s.last_run_at <= quiet_since)
        ):
            out.append(Warning(Kind.NEVER_FIRED, *_ids(r), days=QUIET_DAYS))
    ordered = sorted(active, key=lambda x: x.rule.id)
    for i, j in _sharing_pairs(ordered, about):
        a, b = ordered[i].rule, ordered[j].rule
        if not _overlap(a, b):
            continue
        shared = _shared(a, b)
        for kw in shared:
            out.append(Warning(Kind.DUPLICATE_KEYWORD, *_ids(a, b), keyword=kw))
        if shared and (
            (_has(a, ActionType.RESOLVE) and _has(b, ActionType.CRM))
            or (_has(a, ActionType.CRM) and _has(b, ActionType.RESOLVE))
        ):
            resolver, crm = (a, b) if _has(a, ActionType.RESOLVE) else (b, a)
            out.append(Warning(Kind.CONFLICT, *_ids(resolver, crm), keyword=shared[0]))
    if about is not None:
        out = [w for w in out if about in w.automation_ids]
    return [_saved_only(w) for w in out]


def _sharing_pairs(active: Sequence[LintSubject], about: int | None) -> list[tuple[int, int]]:
    """The pairs (i < j, positions in `active`) of automations with a keyword in common — the only
    pairs a warning can name — found through the keywords rather than by trying every pair (an
    edit page among thousands of automations); with `about`, only the pairs it is part of."""
    holders: dict[str, list[int]] = {}
    for n, s in enumerate(active):
        for key in set(s.rule.keys):
            if key:
                holders.setdefault(key, []).append(n)
    pairs: set[tuple[int, int]] = set()
    if about is None:
        for members in holders.values():
            pairs.update(combinations(members, 2))
    else:
        for n, s in enumerate(active):
            if s.rule.id == about:
                for key in set(s.rule.keys):
                    pairs.update((min(n, m), max(n, m)) for m in holders.get(key, ()) if m != n)
    return sorted(pairs)


def _saved_only(w: Warning) -> Warning:
    """An unsaved automation has no id to name: the warning names only the stored ones."""
    if UNSAVED not in w.automation_ids:
        return w
    pairs = [(i, n) for i, n in zip(w.automation_ids, w.names, strict=True) if i != UNSAVED]
    return replace(w, automation_ids=tuple(i for i, _ in pairs), names=tuple(n for _, n in pairs))
