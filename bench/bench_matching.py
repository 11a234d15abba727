"""Benchmark: automation matching cost per inbound message vs the number of automations.

Runs the compiled `RuleSet` (one Aho-Corasick scan + key → rules map) against a straightforward
per-rule loop — the baseline: text normalized once per message, then every rule's keywords searched
one by one with `bot.engine.matcher.key_in`, the code behind `reference_find` — (a loop, not a tuned
competitor: the ratio says what compiling buys, not how far any other matcher is behind), for 10 … 10,000 automations
of 1–5 keywords, over ~2,000 messages of 200 characters (about half holding keywords; 60% ASCII,
25% accented Latin, 15% Chinese). Deterministic (seeded).

    python bench/bench_matching.py

Targets (issue): median ≤ 30 µs per 200-char message at 10,000 automations, and no more than
2x the time at 10 automations.
"""

from __future__ import annotations

import random
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.domain import Action, ActionType, ConversationType, MatchMode
from bot.engine import Evaluation, Rule, RuleSet
from bot.engine.matcher import Prepared, compile_key, key_in, prepare

SEED = 20240611
SIZES = (10, 100, 1_000, 10_000)
MESSAGES = 2_000
BASELINE_MESSAGES = {10: 2_000, 100: 2_000, 1_000: 500, 10_000: 100}
MESSAGE_CHARS = 200
DERIVED_CHANGES = 200
CHANNELS = ("slack", "telegram", "webhook")
TYPES = tuple(ConversationType)

_CONSONANTS = "bcdfghjklmnprstvz"
_VOWELS = "aeiou"
_ACCENTED = {"a": "à", "e": "é", "i": "ï", "o": "ô", "u": "ü"}


def _word(rng: random.Random, syllables: int) -> str:
    return "".join(rng.choice(_CONSONANTS) + rng.choice(_VOWELS) for _ in range(syllables))


def _cjk(rng: random.Random, n: int) -> str:
    return "".join(chr(rng.randrange(0x4E00, 0x9FA5)) for _ in range(n))


def _vocabularies(rng: random.Random) -> tuple[list[str], list[str]]:
    """(keyword pool, filler words); disjoint, so only inserted keywords match."""
    words: set[str] = set()
    while len(words) < 60_000:
        words.add(_word(rng, rng.choice((2, 3, 3, 4))))
    ordered = sorted(words)
    rng.shuffle(ordered)
    return ordered[:55_000], ordered[55_000:]


def _keyword(rng: random.Random, pool: list[str], used: set[str]) -> str:
    while True:
        roll = rng.random()
        if roll < 0.05:
            kw = _cjk(rng, rng.choice((2, 3)))
        elif roll < 0.25:
            kw = f"{rng.choice(pool)} {rng.choice(pool)}"
        else:
            kw = rng.choice(pool)
            if roll < 0.35:  # some accented keywords
                kw = "".join(_ACCENTED.get(c, c) if rng.random() < 0.3 else c for c in kw)
        if kw not in used:
            used.add(kw)
            return kw


def build_rules(n: int, rng: random.Random, pool: list[str]) -> list[Rule]:
    used: set[str] = set()
    rules = []
    for i in range(n):
        keywords = tuple(_keyword(rng, pool, used) for _ in range(rng.randint(1, 5)))
        actions = [Action(ActionType.TAG, f"tag{i % 50}")]
        if rng.random() < 0.3:
            actions.append(Action(ActionType.TOPIC, f"topic{i % 20}"))
        if rng.random() < 0.2:
            actions.append(Action(ActionType.RESOLVE, None))
        rules.append(
            Rule(
                id=i + 1,
                name=f"automation {i + 1}",
                keywords=keywords,
                match=MatchMode.ALL if rng.random() < 0.2 else MatchMode.ANY,
                actions=tuple(actions),
                channels=frozenset() if rng.random() < 0.7 else frozenset({rng.choice(CHANNELS)}),
                types=frozenset() if rng.random() < 0.8 else frozenset({rng.choice(TYPES)}),
            )
        )
    return rules


def _as_typed(keyword: str, rng: random.Random) -> str:
    """How a contact might write a keyword: other case, accents dropped, punctuation around."""
    if rng.random() < 0.3:
        keyword = keyword.upper()
    if rng.random() < 0.3:
        keyword = keyword.replace(" ", "-")
    return keyword + rng.choice(("", "!", ",", "?", " 👋"))


def build_messages(rules: list[Rule], filler: list[str], rng: random.Random) -> list[tuple[str, str, bool]]:
    """(text, channel, first_message) × MESSAGES."""
    keywords = [kw for r in rules for kw in r.keywords]
    messages = []
    for _ in range(MESSAGES):
        kind = rng.random()
        parts: list[str] = []
        length = 0
        while length < MESSAGE_CHARS:
            if kind < 0.15:
                part = _cjk(rng, rng.randint(3, 10)) + rng.choice(("，", "。", "！", ""))
            else:
                word = rng.choice(filler)
                if kind < 0.40:
                    word = "".join(_ACCENTED.get(c, c) if rng.random() < 0.1 else c for c in word)
                part = word + rng.choice(("", "", "", ",", ".", "!", "?"))
            parts.append(part)
            length += len(part) + 1
        if rng.random() < 0.5:  # holds 1–3 keywords
            for _ in range(rng.randint(1, 3)):
                parts.insert(rng.randrange(len(parts) + 1), _as_typed(rng.choice(keywords), rng))
        text = " ".join(parts)[:MESSAGE_CHARS]
        messages.append((text, rng.choice(CHANNELS), rng.random() < 0.3))
    return messages


class Baseline:
    """Every rule, every keyword, one at a time (the message normalized once)."""

    def __init__(self, rules: list[Rule]) -> None:
        self.rules = []
        for r in sorted(rules, key=lambda r: r.id):
            compiled = [(k, c) for k in dict.fromkeys(r.keys) if (c := compile_key(k)) is not None]
            self.rules.append((r, compiled))

    def evaluate(self, text: str, channel: str, first: bool) -> list[int]:
        prepared: Prepared = prepare(text)
        fired = []
        for rule, keys in self.rules:
            if not rule.in_scope(channel=channel, type=ConversationType.DIRECT):
                continue
            found = {k for k, (pattern, sym) in keys if key_in(pattern, sym, prepared)}
            if not found or (rule.match == MatchMode.ALL and len(found) < len(keys)):
                continue
            fired.append(rule.id)
        return fired


def timed(fn: Callable[[str, str, bool], object], messages: list[tuple[str, str, bool]]) -> list[float]:
    out = []
    clock = time.perf_counter_ns
    for text, channel, first in messages:
        start = clock()
        fn(text, channel, first)
        out.append((clock() - start) / 1000)
    return out


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98]


def main() -> None:
    rng = random.Random(SEED)
    pool, filler = _vocabularies(rng)
    print(f"messages: {MESSAGES} x {MESSAGE_CHARS} chars; rules of 1-5 keywords; seed {SEED}")
    print(
        f"{'rules':>7} {'keys':>7} {'build ms':>9} {'compiled med':>13} {'p99':>8}"
        f" {'baseline med':>13} {'p99':>9} {'n':>5} {'base/comp':>10} {'fired/msg':>10} {'cold med':>13}"
    )
    print(
        "baseline: the per-rule loop (message normalized once, then each rule's keywords searched one by"
        " one), timed on the warm-up messages after the compiled run, so both share warm normalization"
        " caches; 'cold med': the compiled matcher on messages never seen, before any warm-up"
    )
    medians: dict[int, float] = {}
    for n in SIZES:
        rules = build_rules(n, rng, pool)
        messages = build_messages(rules, filler, rng)
        t0 = time.perf_counter()
        ruleset = RuleSet(rules)
        build_ms = (time.perf_counter() - t0) * 1000
        if n == max(SIZES):
            peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        fired = 0

        def compiled(text: str, channel: str, first: bool, rs: RuleSet = ruleset) -> Evaluation:
            return rs.evaluate(text=text, channel=channel, type=ConversationType.DIRECT, first_message=first)

        # cold: messages never seen before, timed before any warm-up of this rule set
        cold = timed(compiled, build_messages(rules, filler, random.Random(SEED + n)))
        for text, channel, first in messages:  # warm-up (per-character caches), count firings
            fired += len(compiled(text, channel, first).firings)
        comp = timed(compiled, messages)
        baseline = Baseline(rules)
        sample = messages[: BASELINE_MESSAGES[n]]
        for (text, channel, first), ev in zip(sample, (compiled(*m) for m in sample), strict=True):
            assert baseline.evaluate(text, channel, first) == [f.rule.id for f in ev.firings]
        base = timed(baseline.evaluate, sample)
        medians[n] = statistics.median(comp)
        keys = len({k for r in rules for k in r.keys})
        print(
            f"{n:>7} {keys:>7} {build_ms:>9.1f} {medians[n]:>10.1f} µs {p99(comp):>8.1f}"
            f" {statistics.median(base):>10.1f} µs {p99(base):>9.1f} {len(sample):>5}"
            f" {statistics.median(base) / medians[n]:>9.1f}x {fired / len(messages):>10.2f}"
            f" {statistics.median(cold):>10.1f} µs"
        )
        if n == max(SIZES):
            # the rule set as a server holds it after changes: derived one change at a time, new keys
            # in the small second index (before a compaction folds them in)
            extra = build_rules(DERIVED_CHANGES, rng, pool)
            derived = ruleset
            t0 = time.perf_counter()
            for i, r in enumerate(extra):
                added = Rule(n + i + 1, r.name, r.keywords, r.match, r.actions, r.channels, r.types)
                derived = derived.changed(upsert=[added], remove=[i + 1])
            change_ms = (time.perf_counter() - t0) * 1000 / len(extra)

            def after(text: str, channel: str, first: bool, rs: RuleSet = derived) -> Evaluation:
                return rs.evaluate(text=text, channel=channel, type=ConversationType.DIRECT, first_message=first)

            for m in messages:
                after(*m)
            derived_med = statistics.median(timed(after, messages))
            print(
                f"{n:>7} rules after {len(extra)} single changes: {change_ms:.2f} ms per change "
                f"(vs {build_ms:.0f} ms to build all), matching median {derived_med:.1f} µs"
                f" = {derived_med / medians[min(SIZES)]:.2f}x the time at {min(SIZES)} rules"
            )
    print(f"peak RSS after building {max(SIZES):,} rules: {peak_kb / 1024:.1f} MiB")
    ratio = medians[max(SIZES)] / medians[min(SIZES)]
    print(f"compiled median at {max(SIZES):,} rules / at {min(SIZES)} rules: {ratio:.2f}x (target <= 2x)")
    ok = medians[max(SIZES)] <= 30 and ratio <= 2
    verdict = "OK" if ok else "MISSED"
    print(f"target median <= 30 µs at {max(SIZES):,} rules: {medians[max(SIZES)]:.1f} µs -> {verdict}")


if __name__ == "__main__":
    main()
