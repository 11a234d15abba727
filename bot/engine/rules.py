"""Which automations fire on an inbound message, and what they plan to do. Pure.

`RuleSet` is built once per automation change; `evaluate` finds the message's keywords with one
`KeywordIndex` scan, then visits only the rules holding one of them (key → rules map), so its
cost grows with the matches, not with the number of automations.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from bot.domain import Action, ActionType, ConversationType, MatchMode
from bot.engine.matcher import KeywordIndex
from bot.engine.normalize import keyword_key

__all__ = ["Evaluation", "Firing", "Rule", "RuleSet"]


@dataclass(frozen=True, slots=True)
class Rule:
    """An enabled automation, as the engine sees it."""

    id: int
    name: str
    keywords: tuple[str, ...]  # display forms
    match: MatchMode
    actions: tuple[Action, ...]
    channels: frozenset[str] = frozenset()  # empty = all
    types: frozenset[ConversationType] = frozenset()  # empty = all
    revision: int | None = None  # the automation's revision this rule was compiled from
    keys: tuple[str, ...] = field(init=False, repr=False, compare=False)
    """`keyword_key` of each keyword, in the same order."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "keys", tuple(keyword_key(k) for k in self.keywords))

    def in_scope(self, *, channel: str, type: ConversationType) -> bool:
        """Whether a message of this channel and conversation type is in the rule's scope."""
        return (not self.channels or channel in self.channels) and (not self.types or type in self.types)


@dataclass(frozen=True, slots=True)
class Firing:
    """One rule that matched the message."""

    rule: Rule
    keywords: tuple[str, ...]  # display keywords found in this message, in rule order
    actions: tuple[Action, ...]  # actions applied (resolve only on a first message)


@dataclass(frozen=True, slots=True)
class Evaluation:
    """Everything the rules plan for one inbound message."""

    firings: tuple[Firing, ...]  # oldest rule (lowest id) first
    tags: tuple[str, ...]  # union, in firing order, de-duplicated case-insensitively
    topics: tuple[str, ...]  # same
    resolve: bool
    resolve_reason: str | None  # the oldest resolving rule's reason
    resolved_by_rule: int | None  # id of that rule
    crm_targets: tuple[str, ...]
    seen: frozenset[str]  # the conversation's keyword progress after this message (keys)


@dataclass(frozen=True, slots=True)
class _Compiled:
    """What evaluation needs of a rule, precomputed (and flat: few objects to touch)."""

    rule: Rule
    channels: frozenset[str]
    types: frozenset[ConversationType]
    keys: frozenset[str]
    display: tuple[tuple[str, str], ...]  # (key, display keyword), first spelling per key
    needs_all: bool
    actions_first: tuple[Action, ...]  # on a conversation's first message
    actions_later: tuple[Action, ...]  # without resolve
    tags: tuple[str, ...]
    topics: tuple[str, ...]
    crm: tuple[str, ...]
    resolves: bool
    reason: str | None  # of its first resolve action


def _values(rule: Rule, type: ActionType) -> tuple[str, ...]:
    return tuple(a.value for a in rule.actions if a.type == type and a.value is not None)


def _compile(rule: Rule) -> _Compiled:
    display: dict[str, str] = {}
    for key, keyword in zip(rule.keys, rule.keywords, strict=True):
        if key:
            display.setdefault(key, keyword)
    resolves = [a for a in rule.actions if a.type == ActionType.RESOLVE]
    return _Compiled(
        rule=rule,
        channels=rule.channels,
        types=rule.types,
        keys=frozenset(display),
        display=tuple(display.items()),
        needs_all=rule.match == MatchMode.ALL,
        actions_first=rule.actions,
        actions_later=tuple(a for a in rule.actions if a.type != ActionType.RESOLVE),
        tags=_values(rule, ActionType.TAG),
        topics=_values(rule, ActionType.TOPIC),
        crm=_values(rule, ActionType.CRM),
        resolves=bool(resolves),
        reason=resolves[0].value if resolves else None,
    )


def _add_unique(target: list[str], folded: set[str], values: tuple[str, ...]) -> None:
    for value in values:
        key = value.casefold()
        if key not in folded:
            folded.add(key)
            target.append(value)


class RuleSet:
    """The enabled automations of a deployment, compiled for evaluation."""

    __slots__ = ("_all_keys", "_by_key", "_compiled", "_index")

    def __init__(self, rules: Iterable[Rule]) -> None:
        ordered = sorted(rules, key=lambda r: r.id)
        self._compiled = tuple(_compile(r) for r in ordered)
        by_key: dict[str, list[int]] = {}
        for position, compiled in enumerate(self._compiled):
            for key in compiled.keys:
                by_key.setdefault(key, []).append(position)
        self._by_key: dict[str, tuple[int, ...]] = {k: tuple(v) for k, v in by_key.items()}
        self._all_keys = frozenset(k for c in self._compiled if c.needs_all for k in c.keys)
        self._index = KeywordIndex(self._by_key)

    def __len__(self) -> int:
        return len(self._compiled)

    @property
    def rules(self) -> tuple[Rule, ...]:
        """The rules, oldest (lowest id) first."""
        return tuple(c.rule for c in self._compiled)

    def evaluate(
        self,
        *,
        text: str,
        channel: str,
        type: ConversationType,
        first_message: bool,
        seen: frozenset[str] = frozenset(),
    ) -> Evaluation:
        """Evaluate every rule in scope against one inbound message, oldest first.

        `seen` holds the keys found in the conversation's earlier inbound messages (ignored on a
        first message); the result's `seen` adds this message's keys that `all` rules use.
        """
        prior: frozenset[str] = frozenset() if first_message else seen
        found = self._index.find(text)
        if not found:
            return Evaluation((), (), (), False, None, None, (), prior)

        by_key = self._by_key
        if len(found) == 1:
            candidates: Iterable[int] = by_key[next(iter(found))]
        else:
            candidates = sorted({p for k in found for p in by_key[k]})

        progress: frozenset[str] | None = None
        firings: list[Firing] = []
        tags: list[str] = []
        tags_folded: set[str] = set()
        topics: list[str] = []
        topics_folded: set[str] = set()
        crm: list[str] = []
        resolver: Firing | None = None
        reason: str | None = None
        for position in candidates:
            c = self._compiled[position]
            if (c.channels and channel not in c.channels) or (c.types and type not in c.types):
                continue
            if c.needs_all:
                if progress is None:
                    progress = prior | found
                if not c.keys <= progress:
                    continue
            # resolve applies on a first message, and only for the oldest resolving rule: a newer
            # one's run must not claim a resolve (and reason) that was not applied
            applies_resolve = first_message and resolver is None
            firing = Firing(
                rule=c.rule,
                keywords=tuple([d for k, d in c.display if k in found]),
                actions=c.actions_first if applies_resolve else c.actions_later,
            )
            firings.append(firing)
            if c.tags:
                _add_unique(tags, tags_folded, c.tags)
            if c.topics:
                _add_unique(topics, topics_folded, c.topics)
            for target in c.crm:
                if target not in crm:
                    crm.append(target)
            if c.resolves and first_message and resolver is None:  # the oldest resolving rule wins
                resolver = firing
                reason = c.reason

        new_seen = found & self._all_keys
        return Evaluation(
            firings=tuple(firings),
            tags=tuple(tags),
            topics=tuple(topics),
            resolve=resolver is not None,
            resolve_reason=reason,
            resolved_by_rule=resolver.rule.id if resolver is not None else None,
            crm_targets=tuple(crm),
            seen=prior | new_seen if not new_seen <= prior else prior,
        )
