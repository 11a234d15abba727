"""What one automation would have done to stored messages: a replay through the live rules. Pure.

`Replay` is fed stored inbound messages in id order, a chunk at a time (the store streams them),
and decides as live ingest would: each message it evaluates goes through the very
`RuleSet.evaluate` that ingest uses (same compiled matcher, scope, first-message and `all` rules).

Most stored messages hold none of the automation's keywords, and for those the evaluation's
answer is known without making it: nothing fires and the conversation's keyword progress does not
change. So a chunk is first sifted (`sift`, a `Sieve`: a substring test that never rejects a
message the matcher would find a keyword in), and only what passes is evaluated (`feed`), with the
facts of its conversation the store gives for those few: its type, its first inbound message and,
for `all`, the keywords of its earlier inbound messages (`to_prime`, `prime`). The replay keeps
counts, the conversations that would fire and, for `all`, the keyword progress of the conversations
it evaluated; never the messages.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bot.domain import ActionType, ConversationType, MatchMode
from bot.engine.matcher import Sieve
from bot.engine.offsets import Found, find_keywords
from bot.engine.rules import Rule, RuleSet

__all__ = ["ConversationFacts", "Example", "PreviewCounts", "Replay", "Row"]

MAX_EXAMPLES = 5

Row = Sequence[Any]
"""A stored inbound message as the store reads it: (id, conversation_id, channel, text)."""


@dataclass(frozen=True, slots=True)
class ConversationFacts:
    """What the rules need of a message's conversation."""

    type: ConversationType
    first_inbound_id: int  # the id of its first inbound message


@dataclass(frozen=True, slots=True)
class Example:
    """A message the automation would fire on."""

    conversation_id: int
    message_id: int
    text: str
    found: tuple[Found, ...]


@dataclass(frozen=True, slots=True)
class PreviewCounts:
    """The replay's figures (conversations_scanned is counted by the store)."""

    messages_scanned: int
    would_fire_messages: int
    would_fire_conversations: int
    would_tag: int  # messages
    would_apply_topics: int  # conversations
    would_resolve: int  # conversations
    would_send_to_crm: int  # conversations
    examples: tuple[Example, ...]


_EMPTY: frozenset[str] = frozenset()


class Replay:
    """Feeds messages, oldest first, through one automation as live ingest would.

    Per chunk of rows (id order): `sift` counts them and returns those that may hold a keyword;
    for `all`, `to_prime` names the conversations whose earlier inbound messages must be given to
    `prime`; then `feed` evaluates the sifted rows with their conversations' facts.
    """

    __slots__ = (
        "_convs",
        "_examples",
        "_fired_messages",
        "_history",
        "_interned",
        "_progress",
        "_resolved",
        "_rule",
        "_rules",
        "_sieve",
        "_tagged",
        "scanned",
    )

    def __init__(self, rule: Rule) -> None:
        self._rule = rule
        self._rules = RuleSet([rule])
        self._sieve = Sieve(k for k in rule.keys if k)
        self._history = rule.match is MatchMode.ALL
        self.scanned = 0
        self._fired_messages = 0
        self._tagged = 0
        self._resolved = 0
        self._convs: set[int] = set()
        self._examples: list[Example] = []
        # `all` only: the keyword progress of the conversations primed or evaluated (empty ones
        # too); equal progress sets are one shared set (few distinct ones, many conversations)
        self._progress: dict[int, frozenset[str]] = {}
        self._interned: dict[frozenset[str], frozenset[str]] = {}

    def sift(self, rows: Sequence[Row]) -> list[Row]:
        """Counts a chunk of rows as scanned; returns the rows that may hold one of the keywords,
        in order. The others are done with: evaluated, they fire nothing and change no progress."""
        self.scanned += len(rows)
        return self._sieve.select(rows, 3)

    def to_prime(self, rows: Iterable[Row], facts: Mapping[int, ConversationFacts]) -> dict[int, int]:
        """For `all`: the conversations of sifted `rows` whose keyword progress before their first
        row here must come from the store, each with the id of that row (its earlier inbound
        messages are those below it). A conversation whose first inbound message it is has none;
        one primed or evaluated before has its progress here: each is named once per replay."""
        if not self._history:
            return {}
        out: dict[int, int] = {}
        progress = self._progress
        for row in rows:
            cid = row[1]
            if cid in out or cid in progress:
                continue
            conv = facts.get(cid)
            if conv is not None and conv.first_inbound_id < row[0]:
                out[cid] = row[0]
        return out

    def prime(self, conversation_id: int, earlier: Iterable[tuple[str, bool]]) -> None:
        """The keyword progress a conversation had from its inbound messages (text, first) before
        the rows to feed, oldest first."""
        seen = _EMPTY
        maybe = self._sieve.maybe
        for text, first in earlier:
            if first:
                seen = _EMPTY
            if maybe(text):
                seen = self._rules.evaluate(
                    text=text, channel="", type=ConversationType.DIRECT, first_message=first, seen=seen
                ).seen
        self._progress[conversation_id] = self._interned.setdefault(seen, seen)

    def feed(self, rows: Iterable[Row], facts: Mapping[int, ConversationFacts]) -> None:
        """Evaluates sifted rows, in order, with their conversations' facts (a row whose
        conversation is not in `facts` is not stored any more: it is skipped)."""
        history = self._history
        progress = self._progress
        evaluate = self._rules.evaluate
        for mid, cid, channel, text in rows:
            conv = facts.get(cid)
            if conv is None:
                continue
            seen = progress.get(cid, _EMPTY) if history else _EMPTY
            ev = evaluate(
                text=text, channel=channel, type=conv.type, first_message=mid == conv.first_inbound_id, seen=seen
            )
            if history:  # also when empty: the conversation is known, never primed again
                progress[cid] = self._interned.setdefault(ev.seen, ev.seen)
            if not ev.firings:
                continue
            self._fired_messages += 1
            self._convs.add(cid)
            if ev.tags:
                self._tagged += 1
            if ev.resolve:
                self._resolved += 1  # a conversation has one first message: counted once
            if len(self._examples) < MAX_EXAMPLES:
                found = tuple(find_keywords(text, ev.firings[0].keywords))
                self._examples.append(Example(cid, mid, text, found))

    def counts(self) -> PreviewCounts:
        actions = {a.type for a in self._rule.actions}
        fired = len(self._convs)
        return PreviewCounts(
            messages_scanned=self.scanned,
            would_fire_messages=self._fired_messages,
            would_fire_conversations=fired,
            would_tag=self._tagged,
            would_apply_topics=fired if ActionType.TOPIC in actions else 0,
            would_resolve=self._resolved,
            would_send_to_crm=fired if ActionType.CRM in actions else 0,
            examples=tuple(self._examples),
        )
