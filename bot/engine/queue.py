"""Where a conversation stands in the queue, from its topics. Pure."""

from __future__ import annotations

from collections.abc import Sequence

from bot.domain import Priority, TopicRouting


def route(topics: Sequence[TopicRouting]) -> tuple[Priority, str | None]:
    """(priority, team) of a conversation whose topics are `topics`, in the order they were applied.

    The priority is the highest among the topics (`normal` with none). The team comes from the
    highest-priority topic that names one; between topics of equal priority, the one applied first.
    """
    priority = min((t.priority for t in topics), key=lambda p: p.rank, default=Priority.NORMAL)
    routed = [t for t in topics if t.team is not None]
    if not routed:
        return priority, None
    best = min(routed, key=lambda t: t.priority.rank)  # min keeps the first of equals: applied first
    return priority, best.team
