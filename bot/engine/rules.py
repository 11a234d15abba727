"""Which automations fire on an inbound message, and what they plan to do. Pure.

`RuleSet` is built once, then derived per automation change (`changed`: only the changed rules
are compiled; the keyword index of the others is kept, new keys go to a small second index until
`compacted` folds them in); `evaluate` finds the message's keywords with one `KeywordIndex` scan,
then visits only the rules holding one of them (key → rule ids map), so its cost grows with the
matches, not with the number of automations.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from bot.domain import Action, ActionType, ConversationType, MatchMode
from bot.engine.matcher import KeywordIndex
from bot.engine.normalize import keyword_key

__all__ = ["Evaluation", "Firing", "Rule", "RuleSet", "Scan"]


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


_NO_KEYS: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Scan:
    """The keys a rule set's keyword index finds in one text (`RuleSet.scan`): the costly part of
    an evaluation, which depends on nothing but the text, so it can be done ahead — ingest does
    it as a request arrives, outside the transaction. Valid for that rule set only."""

    rules: RuleSet
    found: frozenset[str]


_NOTHING = Evaluation((), (), (), False, None, None, (), _NO_KEYS)  # immutable: one serves every such message


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


def _count(counts: dict[str, int], key: str, step: int) -> None:
    n = counts.get(key, 0) + step
    if n > 0:
        counts[key] = n
    else:
        counts.pop(key, None)


def _add_unique(target: list[str], folded: set[str], values: tuple[str, ...]) -> None:
    for value in values:
        key = value.casefold()
        if key not in folded:
            folded.add(key)
            target.append(value)


# A derived rule set keeps the keyword index it was built from and indexes keys added since in a
# second, small one (rebuilt per change); past this many keys, or 1/32 of the main index, it asks to
# be compacted. The threshold grows with the index, so the index work of N changes stays O(N).
DELTA_KEYS = 256


class RuleSet:
    """The enabled automations of a deployment, compiled for evaluation. Immutable: a change
    derives a new one (`changed`), which callers swap in whole."""

    __slots__ = ("_all_counts", "_all_keys", "_base", "_by_key", "_compiled", "_delta")

    def __init__(self, rules: Iterable[Rule]) -> None:
        compiled = {r.id: _compile(r) for r in rules}
        by_key: dict[str, list[int]] = {}
        all_counts: dict[str, int] = {}
        for rule_id in sorted(compiled):
            c = compiled[rule_id]
            for key in c.keys:
                by_key.setdefault(key, []).append(rule_id)
                if c.needs_all:
                    all_counts[key] = all_counts.get(key, 0) + 1
        self._set(compiled, {k: tuple(v) for k, v in by_key.items()}, all_counts, KeywordIndex(by_key))

    def _set(
        self,
        compiled: dict[int, _Compiled],
        by_key: dict[str, tuple[int, ...]],
        all_counts: dict[str, int],
        base: KeywordIndex,
    ) -> None:
        self._compiled = compiled  # rule id → compiled rule
        self._by_key = by_key  # key → ids of the rules holding it, ascending
        self._all_counts = all_counts  # key → how many `all` rules hold it
        self._all_keys = frozenset(all_counts)
        self._base = base
        missing = by_key.keys() - base.keys
        self._delta = KeywordIndex(missing) if missing else None

    def __len__(self) -> int:
        return len(self._compiled)

    @property
    def rules(self) -> tuple[Rule, ...]:
        """The rules, oldest (lowest id) first."""
        return tuple(self._compiled[i].rule for i in sorted(self._compiled))

    def holding(self, keys: Iterable[str]) -> list[Rule]:
        """The rules that hold any of the keyword `keys`, oldest first (what an automation's lint
        compares it with, without going through every rule)."""
        ids = {rule_id for key in keys if key for rule_id in self._by_key.get(key, ())}
        return [self._compiled[i].rule for i in sorted(ids)]

    def changed(self, upsert: Iterable[Rule] = (), remove: Iterable[int] = ()) -> RuleSet:
        """A new rule set with `upsert` added or replacing the rule of the same id and the rules of
        `remove` gone. Costs the changed rules plus copying the maps (no rule is recompiled, the
        main keyword index is shared)."""
        upsert = list(upsert)
        compiled = dict(self._compiled)
        by_key = dict(self._by_key)
        all_counts = dict(self._all_counts)
        for rule_id in {*remove, *(r.id for r in upsert)}:
            old = compiled.pop(rule_id, None)
            if old is None:
                continue
            for key in old.keys:
                left = tuple(i for i in by_key[key] if i != rule_id)
                if left:
                    by_key[key] = left
                else:
                    del by_key[key]
                if old.needs_all:
                    _count(all_counts, key, -1)
        for rule in upsert:
            c = compiled[rule.id] = _compile(rule)
            for key in c.keys:
                by_key[key] = tuple(sorted((*by_key.get(key, ()), rule.id)))
                if c.needs_all:
                    _count(all_counts, key, +1)
        derived = RuleSet.__new__(RuleSet)
        derived._set(compiled, by_key, all_counts, self._base)
        return derived

    @property
    def wants_compaction(self) -> bool:
        """Whether the keys added since the main index was built are many enough to rebuild it."""
        return self._delta is not None and len(self._delta) > max(DELTA_KEYS, len(self._base) // 32)

    def compacted(self) -> RuleSet:
        """The same rules with one keyword index over all their keys (build it off the event loop)."""
        derived = RuleSet.__new__(RuleSet)
        derived._set(self._compiled, self._by_key, self._all_counts, KeywordIndex(self._by_key))
        return derived

    def with_index_of(self, other: RuleSet) -> RuleSet:
        """These rules, reusing `other`'s main keyword index (a compaction that finished after
        further changes): keys it lacks go to the small second index."""
        derived = RuleSet.__new__(RuleSet)
        derived._set(self._compiled, self._by_key, self._all_counts, other._base)
        return derived

    def _find(self, text: str) -> frozenset[str] | set[str]:
        found = self._base.find(text)
        if self._delta is not None:
            found |= self._delta.find(text)
        return found

    def scan(self, text: str) -> Scan:
        """The keys of this rule set found in `text`, for a later `evaluate(…, scan=)`."""
        return Scan(self, frozenset(self._find(text)))

    def evaluate(
        self,
        *,
        text: str,
        channel: str,
        type: ConversationType,
        first_message: bool,
        seen: frozenset[str] = frozenset(),
        scan: Scan | None = None,
    ) -> Evaluation:
        """Evaluate every rule in scope against one inbound message, oldest first.

        `seen` holds the keys found in the conversation's earlier inbound messages (ignored on a
        first message); the result's `seen` adds this message's keys that `all` rules use.
        `scan`: `self.scan(text)` done ahead (one of another rule set is ignored).
        """
        prior: frozenset[str] = _NO_KEYS if first_message else seen
        found = scan.found if scan is not None and scan.rules is self else self._find(text)
        by_key = self._by_key
        # the main index may hold keys of removed rules (a loop over the few found keys: a set
        # operation with `by_key.keys()` would copy all of them)
        if found and any(k not in by_key for k in found):
            found = {k for k in found if k in by_key}
        if not found:  # most messages: nothing more to do
            return _NOTHING if not prior else Evaluation((), (), (), False, None, None, (), prior)

        if len(found) == 1:
            candidates: Iterable[int] = by_key[next(iter(found))]
        else:
            candidates = sorted({i for k in found for i in by_key[k]})

        progress: frozenset[str] | None = None
        firings: list[Firing] = []
        tags: list[str] = []
        tags_folded: set[str] = set()
        topics: list[str] = []
        topics_folded: set[str] = set()
        crm: list[str] = []
        resolver: Firing | None = None
        reason: str | None = None
        compiled = self._compiled
        for rule_id in candidates:
            c = compiled[rule_id]
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
