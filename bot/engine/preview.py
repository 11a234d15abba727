"""What one automation would have done to stored messages: a replay through the live rules. Pure.

`Replay` is fed stored inbound messages in order (the store streams them in chunks) and evaluates
each with the very `RuleSet.evaluate` that ingest uses: same compiled matcher, scope, first-message
and `all` rules. It keeps counts, the conversations that would fire and, for `all`, each
conversation's keyword progress; never the messages themselves.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from bot.domain import ActionType, ConversationType, MatchMode
from bot.engine.offsets import Found, find_keywords
from bot.engine.rules import Rule, RuleSet

__all__ = ["Example", "PreviewCounts", "Replay", "ReplayMessage"]

MAX_EXAMPLES = 5


@dataclass(frozen=True, slots=True)
class ReplayMessage:
    """A stored inbound message with what the rules need of its conversation."""

    id: int
    conversation_id: int
    channel: str
    type: ConversationType
    text: str
    first: bool  # the conversation's stored first message


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
    """Feeds messages, oldest first, through one automation as live ingest would."""

    __slots__ = (
        "_convs",
        "_examples",
        "_fired_messages",
        "_known",
        "_progress",
        "_resolved",
        "_rule",
        "_rules",
        "_tagged",
        "scanned",
    )

    def __init__(self, rule: Rule) -> None:
        self._rule = rule
        self._rules = RuleSet([rule])
        self.scanned = 0
        self._fired_messages = 0
        self._tagged = 0
        self._resolved = 0
        self._convs: set[int] = set()
        self._examples: list[Example] = []
        # `all` only: conversations met so far, and the keyword progress of those that have one
        self._known: set[int] = set()
        self._progress: dict[int, frozenset[str]] = {}

    @property
    def needs_history(self) -> bool:
        """Whether a conversation's inbound messages before the replayed ones matter (`all`)."""
        return self._rule.match is MatchMode.ALL

    def unknown(self, messages: Iterable[ReplayMessage]) -> list[int]:
        """Conversations of `messages` (in order) whose earlier messages must be given to `prime`
        first: those met for the first time on a message that is not their first."""
        if not self.needs_history:
            return []
        known = self._known
        met: set[int] = set()
        out: list[int] = []
        for m in messages:
            cid = m.conversation_id
            if cid in known or cid in met:
                continue
            met.add(cid)
            if not m.first:
                out.append(cid)
        return sorted(out)

    def prime(self, conversation_id: int, earlier: Iterable[tuple[str, bool]]) -> None:
        """The keyword progress a conversation had from its inbound messages (text, first) before
        the replay, oldest first."""
        seen = _EMPTY
        for text, first in earlier:
            seen = self._rules.evaluate(
                text=text, channel="", type=ConversationType.DIRECT, first_message=first, seen=seen
            ).seen
        self._known.add(conversation_id)
        if seen:
            self._progress[conversation_id] = seen

    def feed(self, msg: ReplayMessage) -> None:
        """One message, in order."""
        self.scanned += 1
        history = self.needs_history
        seen = self._progress.get(msg.conversation_id, _EMPTY) if history else _EMPTY
        ev = self._rules.evaluate(text=msg.text, channel=msg.channel, type=msg.type, first_message=msg.first, seen=seen)
        if history:
            self._known.add(msg.conversation_id)
            if ev.seen:
                self._progress[msg.conversation_id] = ev.seen
        if not ev.firings:
            return
        self._fired_messages += 1
        self._convs.add(msg.conversation_id)
        if ev.tags:
            self._tagged += 1
        if ev.resolve:
            self._resolved += 1  # a conversation has one first message: counted once
        if len(self._examples) < MAX_EXAMPLES:
            found = tuple(find_keywords(msg.text, ev.firings[0].keywords))
            self._examples.append(Example(msg.conversation_id, msg.id, msg.text, found))

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
