"""Benchmark: automation lint at 1,000 … 10,000 automations, against trying every pair.

Each automation's edit page shows the warnings about that automation (`lint(..., about=id)`); the
settings list and `GET /api/automations/lint` show all of them. Warnings about two automations
need a keyword in common, so lint finds those pairs through a keyword → automations index. The
baseline, measured in the same run on the same automations, is what lint did before: try every
pair of enabled automations (then keep those about the page's automation) — run only up to 3,000
automations, where it already takes seconds.

    python bench/bench_lint.py

Automations have 1–5 keywords drawn from 3,000 words (a realistic overlap: a few hundred pairs
share one at 1,000 automations), tag or resolve actions, and one of three channel scopes.
Deterministic (seeded). Target: an edit page's lint ≤ 50 ms at 10,000 automations.
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from itertools import combinations
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.domain import Action, ActionType, MatchMode
from bot.engine.lint import LintSubject, lint
from bot.engine.rules import Rule

SEED = 20261201
SIZES = (1_000, 3_000, 10_000)
BASELINE_UP_TO = 3_000
TARGET_MS = 50.0
NOW = datetime(2026, 12, 1, tzinfo=UTC)
ACTIONS = ((Action(ActionType.TAG, "bench"),), (Action(ActionType.RESOLVE),))
SCOPES = (frozenset(), frozenset({"slack"}), frozenset({"telegram"}))


def subjects(n: int) -> list[LintSubject]:
    rnd = random.Random(SEED)
    words = [f"word{i}" for i in range(3_000)]
    return [
        LintSubject(
            rule=Rule(
                id=i + 1,
                name=f"rule {i + 1}",
                keywords=tuple(rnd.sample(words, rnd.randint(1, 5))),
                match=MatchMode.ANY,
                actions=rnd.choice(ACTIONS),
                channels=rnd.choice(SCOPES),
            ),
            enabled=True,
        )
        for i in range(n)
    ]


def every_pair(active: list[LintSubject], about: int | None) -> int:
    """The old way: every pair's scopes and shared keys compared; returns the pairs sharing one."""
    found = 0
    for s, t in combinations(sorted(active, key=lambda x: x.rule.id), 2):
        a, b = s.rule, t.rule
        channels = not a.channels or not b.channels or bool(a.channels & b.channels)
        if not channels:
            continue
        keys_b = {k for k in b.keys if k}
        if any(k and k in keys_b for k in a.keys) and (about is None or about in (a.id, b.id)):
            found += 1
    return found


def timed(fn: Callable[[], object], repeat: int) -> float:
    """Best of `repeat` runs, in ms (the machine's noise only ever adds)."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best * 1000


def main() -> None:
    print("lint benchmark: one automation's warnings (its edit page) and all of them, best of several runs")
    for n in SIZES:
        subs = subjects(n)
        about = n // 2
        page = timed(lambda subs=subs, about=about: lint(subs, known_channels=["slack"], now=NOW, about=about), 5)
        full = timed(lambda subs=subs: lint(subs, known_channels=["slack"], now=NOW), 1)
        warnings = len(lint(subs, known_channels=["slack"], now=NOW))
        line = f"{n:>6,} automations: edit page {page:8.1f} ms, all warnings ({warnings:,}) {full:8.1f} ms"
        if n <= BASELINE_UP_TO:
            old = timed(lambda subs=subs, about=about: every_pair(subs, about), 1)
            line += f"; every pair (before) {old:8.1f} ms = {old / page:,.0f}x the edit page"
        verdict = "meets" if page <= TARGET_MS else "MISSES"
        print(f"{line}   [{verdict} edit page <= {TARGET_MS:.0f} ms]")


if __name__ == "__main__":
    main()
