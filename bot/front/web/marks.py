"""Highlighting found keywords in a stored text without ever marking up the text itself.

The text is cut into segments in Python at the keywords' code-point offsets; the template writes
each segment escaped, inside `<mark>` or not. Contacts' text never goes through `|safe`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from bot.engine.offsets import Found

__all__ = ["Segment", "segments"]


@dataclass(frozen=True, slots=True)
class Segment:
    """A stretch of the text, highlighted (`marked`) or not."""

    text: str
    marked: bool


def segments(text: str, found: Iterable[Found]) -> list[Segment]:
    """`text` cut at the `[start, end)` code-point ranges of `found` (overlapping or touching
    ranges merged; ranges outside the text clipped, empty ones dropped)."""
    spans = sorted((max(0, f.start), min(len(text), f.end)) for f in found)
    merged: list[tuple[int, int]] = []
    for start, end in spans:
        if end <= start:
            continue
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    out: list[Segment] = []
    at = 0
    for start, end in merged:
        if start > at:
            out.append(Segment(text[at:start], False))
        out.append(Segment(text[start:end], True))
        at = end
    if at < len(text) or not out:
        out.append(Segment(text[at:], False))
    return out
