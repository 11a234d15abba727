"""bot.engine.queue: a conversation's priority and team from its topics."""

from __future__ import annotations

from bot.domain import Priority, TopicRouting
from bot.engine.queue import route

U, H, N, L = Priority.URGENT, Priority.HIGH, Priority.NORMAL, Priority.LOW


def test_no_topics_is_normal_and_unrouted() -> None:
    assert route([]) == (N, None)


def test_priority_is_the_highest_among_topics() -> None:
    assert route([TopicRouting(L, None), TopicRouting(H, None)]) == (H, None)
    assert route([TopicRouting(L, None)]) == (L, None)
    assert route([TopicRouting(N, None), TopicRouting(U, None), TopicRouting(H, None)]) == (U, None)


def test_team_comes_from_the_highest_priority_topic_that_names_one() -> None:
    topics = [TopicRouting(L, "Sales"), TopicRouting(U, None), TopicRouting(H, "Billing")]
    assert route(topics) == (U, "Billing")


def test_ties_go_to_the_topic_applied_first() -> None:
    assert route([TopicRouting(H, "Sales"), TopicRouting(H, "Billing")]) == (H, "Sales")
    assert route([TopicRouting(H, "Billing"), TopicRouting(H, "Sales")]) == (H, "Billing")
