"""Cutting a stored text at the found keywords' code-point offsets, for `<mark>` on the pages."""

from __future__ import annotations

from bot.engine.offsets import Found
from bot.front.web.marks import Segment, segments


def test_a_keyword_is_cut_out_at_its_code_point_offsets() -> None:
    assert segments("ﬁne, bye!", [Found("bye", 5, 8)]) == [
        Segment("ﬁne, ", False),
        Segment("bye", True),
        Segment("!", False),
    ]


def test_overlapping_and_touching_ranges_merge_and_stray_ones_are_clipped() -> None:
    text = "refund my order 👍"
    found = [Found("order", 10, 15), Found("my order", 7, 15), Found("refund", 0, 6), Found("x", 16, 99)]
    assert segments(text, found) == [
        Segment("refund", True),
        Segment(" ", False),
        Segment("my order", True),
        Segment(" ", False),
        Segment("👍", True),
    ]


def test_nothing_found_is_the_whole_text_unmarked() -> None:
    assert segments("<b>hi</b>", []) == [Segment("<b>hi</b>", False)]
    assert segments("", [Found("x", 0, 0)]) == [Segment("", False)]
