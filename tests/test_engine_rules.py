"""bot.engine.rules: which automations fire on a message and what they plan."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.domain import Action, ActionType, ConversationType, MatchMode
from bot.engine import Evaluation, Rule, RuleSet, reference_find

DIRECT = ConversationType.DIRECT
GROUP = ConversationType.GROUP
PUBLIC = ConversationType.PUBLIC


def tag(value: str) -> Action:
    return Action(ActionType.TAG, value)


def topic(value: str) -> Action:
    return Action(ActionType.TOPIC, value)


def resolve(reason: str | None = None) -> Action:
    return Action(ActionType.RESOLVE, reason)


CRM = Action(ActionType.CRM, "salesforce")


def rule(
    id: int,
    keywords: tuple[str, ...],
    *actions: Action,
    match: MatchMode = MatchMode.ANY,
    channels: frozenset[str] = frozenset(),
    types: frozenset[ConversationType] = frozenset(),
) -> Rule:
    return Rule(
        id=id,
        name=f"rule {id}",
        keywords=keywords,
        match=match,
        actions=actions or (tag(f"t{id}"),),
        channels=channels,
        types=types,
    )


def evaluate(
    rules: RuleSet,
    text: str,
    *,
    channel: str = "slack",
    type: ConversationType = DIRECT,
    first: bool = True,
    seen: frozenset[str] = frozenset(),
) -> Evaluation:
    return rules.evaluate(text=text, channel=channel, type=type, first_message=first, seen=seen)


def fired(evaluation: Evaluation) -> list[int]:
    return [f.rule.id for f in evaluation.firings]


def test_rule_keys_are_computed() -> None:
    r = rule(1, ("Au Revoir", "👋", "Café", "  "))
    assert r.keys == ("au revoir", "👋", "cafe", "")


def test_no_match_returns_empty_evaluation() -> None:
    rules = RuleSet([rule(1, ("bye",))])
    ev = evaluate(rules, "hello there", first=False, seen=frozenset({"x"}))
    assert ev == Evaluation((), (), (), False, None, None, (), frozenset({"x"}))


def test_empty_ruleset() -> None:
    rules = RuleSet([])
    assert len(rules) == 0
    assert evaluate(rules, "bye").firings == ()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Bye!", [1]),
        ("ok, bye.", [1]),
        ("byebye", []),
        ("bystander", []),
        ("Au revoir !", [2]),
        ("merci, au revoir 👋", [2, 3]),
        ("好的，再见！", [4]),
        ("bye 再见 👋", [1, 3, 4]),
    ],
)
def test_any_rules(text: str, expected: list[int]) -> None:
    rules = RuleSet([rule(1, ("bye", "see you")), rule(2, ("au revoir",)), rule(3, ("👋",)), rule(4, ("再见",))])
    assert fired(evaluate(rules, text)) == expected


def test_firing_lists_keywords_found_in_this_message_in_rule_order() -> None:
    rules = RuleSet([rule(1, ("Au Revoir", "bye", "See you", "BYE!"))])
    (firing,) = evaluate(rules, "see you, bye, au revoir").firings
    assert firing.keywords == ("Au Revoir", "bye", "See you")  # "BYE!" is the same keyword as "bye"


def test_all_on_one_first_message() -> None:
    rules = RuleSet([rule(1, ("order", "cancel"), resolve("done"), match=MatchMode.ALL)])
    assert fired(evaluate(rules, "where is my order")) == []
    ev = evaluate(rules, "Cancel my ORDER please")
    assert fired(ev) == [1]
    assert ev.resolve and ev.resolve_reason == "done" and ev.resolved_by_rule == 1


def test_all_spread_over_several_messages() -> None:
    rules = RuleSet([rule(1, ("order", "cancel", "refund"), tag("cancel"), resolve(), match=MatchMode.ALL)])
    ev1 = evaluate(rules, "Hi, about my order", first=True)
    assert ev1.firings == () and ev1.seen == {"order"}

    ev2 = evaluate(rules, "nothing relevant", first=False, seen=ev1.seen)
    assert ev2.firings == () and ev2.seen == {"order"}

    ev3 = evaluate(rules, "I want to cancel", first=False, seen=ev2.seen)
    assert ev3.firings == () and ev3.seen == {"order", "cancel"}

    ev4 = evaluate(rules, "and get a REFUND!", first=False, seen=ev3.seen)
    assert fired(ev4) == [1]
    assert ev4.firings[0].keywords == ("refund",)
    # not the first message: resolve does not apply, the other actions do
    assert ev4.firings[0].actions == (tag("cancel"),)
    assert ev4.tags == ("cancel",) and not ev4.resolve
    assert ev4.seen == {"order", "cancel", "refund"}

    # every later message holding one of its keywords matches again
    ev5 = evaluate(rules, "refund?", first=False, seen=ev4.seen)
    assert fired(ev5) == [1]
    assert fired(evaluate(rules, "thanks", first=False, seen=ev4.seen)) == []


def test_all_needs_a_keyword_in_this_message() -> None:
    rules = RuleSet([rule(1, ("a1", "b1"), match=MatchMode.ALL)])
    assert fired(evaluate(rules, "nothing", first=False, seen=frozenset({"a1", "b1"}))) == []


def test_seen_is_ignored_on_a_first_message() -> None:
    rules = RuleSet([rule(1, ("order", "cancel"), resolve(), match=MatchMode.ALL)])
    ev = evaluate(rules, "cancel", first=True, seen=frozenset({"order"}))
    assert ev.firings == () and ev.seen == {"cancel"}


def test_seen_only_keeps_keys_of_all_rules() -> None:
    rules = RuleSet([rule(1, ("bye",)), rule(2, ("order", "cancel"), match=MatchMode.ALL)])
    ev = evaluate(rules, "bye, my order", first=False, seen=frozenset({"older"}))
    assert ev.seen == {"older", "order"}
    assert fired(ev) == [1]


def test_resolve_only_on_first_message() -> None:
    rules = RuleSet([rule(1, ("bye",), tag("bye"), topic("goodbyes"), resolve("done"), CRM)])
    first = evaluate(rules, "bye", first=True)
    assert first.resolve and first.resolve_reason == "done" and first.resolved_by_rule == 1
    assert first.firings[0].actions == (tag("bye"), topic("goodbyes"), resolve("done"), CRM)
    later = evaluate(rules, "bye", first=False)
    assert fired(later) == [1]
    assert not later.resolve and later.resolve_reason is None and later.resolved_by_rule is None
    assert later.firings[0].actions == (tag("bye"), topic("goodbyes"), CRM)
    assert later.tags == ("bye",) and later.topics == ("goodbyes",)
    assert later.crm_targets == ("salesforce",)


def test_oldest_first_and_oldest_reason_kept() -> None:
    rules = RuleSet(
        [
            rule(30, ("bye",), resolve("third")),
            rule(10, ("bye",), tag("x")),
            rule(20, ("au revoir",), resolve("second")),
            rule(5, ("hello",), resolve("never")),
        ]
    )
    ev = evaluate(rules, "au revoir, bye")
    assert fired(ev) == [10, 20, 30]
    assert ev.resolve_reason == "second" and ev.resolved_by_rule == 20


def test_oldest_resolving_rule_without_reason_wins() -> None:
    rules = RuleSet([rule(1, ("bye",), resolve()), rule(2, ("bye",), resolve("r"))])
    ev = evaluate(rules, "bye")
    assert ev.resolve and ev.resolve_reason is None and ev.resolved_by_rule == 1


def test_tags_topics_crm_union() -> None:
    rules = RuleSet(
        [
            rule(1, ("bye",), tag("Goodbye"), tag("vip"), topic("Closing"), CRM),
            rule(2, ("bye",), tag("goodbye"), tag("later"), topic("closing"), topic("other"), CRM),
            rule(3, ("nope",), tag("never")),
        ]
    )
    ev = evaluate(rules, "bye")
    assert ev.tags == ("Goodbye", "vip", "later")
    assert ev.topics == ("Closing", "other")
    assert ev.crm_targets == ("salesforce",)


@pytest.mark.parametrize(
    ("channel", "type", "expected"),
    [
        ("slack", DIRECT, [1, 2, 3, 4]),
        ("slack", GROUP, [1, 2, 4]),
        ("telegram", DIRECT, [1, 3]),
        ("telegram", PUBLIC, [1]),
        ("webhook", GROUP, [1]),
    ],
)
def test_scope(channel: str, type: ConversationType, expected: list[int]) -> None:
    rules = RuleSet(
        [
            rule(1, ("bye",)),
            rule(2, ("bye",), channels=frozenset({"slack"})),
            rule(3, ("bye",), types=frozenset({DIRECT})),
            rule(4, ("bye",), channels=frozenset({"slack"}), types=frozenset({DIRECT, GROUP})),
        ]
    )
    assert fired(evaluate(rules, "bye", channel=channel, type=type)) == expected


def test_out_of_scope_rule_does_not_block_others() -> None:
    rules = RuleSet(
        [rule(1, ("bye",), resolve("a"), channels=frozenset({"telegram"})), rule(2, ("bye",), resolve("b"))]
    )
    ev = evaluate(rules, "bye", channel="slack")
    assert fired(ev) == [2] and ev.resolve_reason == "b"


def test_rules_property_and_len() -> None:
    rules = RuleSet([rule(3, ("c",)), rule(1, ("a",)), rule(2, ("b",))])
    assert len(rules) == 3
    assert [r.id for r in rules.rules] == [1, 2, 3]


# -- property: the compiled RuleSet agrees with a plain loop over every rule --------------------

_WORDS = ["bye", "au revoir", "cafe", "Café", "再见", "👋", "order", "cancel", "see you", "ok"]
_TEXT_PARTS = [*_WORDS, "byebye", "merci", "!", ",", " ", "谢谢", "🙏", "ORDER", "au", "revoir"]


@st.composite
def _rules(draw: st.DrawFn) -> list[Rule]:
    count = draw(st.integers(min_value=0, max_value=8))
    out = []
    for i in range(count):
        keywords = tuple(draw(st.lists(st.sampled_from(_WORDS), min_size=1, max_size=4)))
        actions = tuple(
            draw(
                st.lists(
                    st.sampled_from([tag("a"), tag("B"), topic("t"), resolve(f"r{i}"), CRM]),
                    min_size=1,
                    max_size=3,
                )
            )
        )
        out.append(
            Rule(
                id=draw(st.integers(min_value=0, max_value=1000)) * 10 + i,
                name=f"r{i}",
                keywords=keywords,
                match=draw(st.sampled_from(list(MatchMode))),
                actions=actions,
                channels=draw(st.sampled_from([frozenset(), frozenset({"slack"}), frozenset({"tg"})])),
                types=draw(st.sampled_from([frozenset(), frozenset({DIRECT}), frozenset({GROUP})])),
            )
        )
    return out


def _naive(
    rules: list[Rule], text: str, *, channel: str, type: ConversationType, first: bool, seen: frozenset[str]
) -> list[tuple[int, tuple[str, ...]]]:
    prior = frozenset() if first else seen
    out = []
    for r in sorted(rules, key=lambda r: r.id):
        if not r.in_scope(channel=channel, type=type):
            continue
        found = reference_find(r.keys, text)
        if not found:
            continue
        if r.match == MatchMode.ALL and not set(r.keys) <= prior | found:
            continue
        keywords: list[str] = []
        done: set[str] = set()
        for key, kw in zip(r.keys, r.keywords, strict=True):
            if key in found and key not in done:
                done.add(key)
                keywords.append(kw)
        out.append((r.id, tuple(keywords)))
    return out


@settings(max_examples=300, deadline=None)
@given(
    rules=_rules(),
    parts=st.lists(st.sampled_from(_TEXT_PARTS), max_size=8),
    channel=st.sampled_from(["slack", "tg"]),
    type=st.sampled_from([DIRECT, GROUP]),
    first=st.booleans(),
    seen=st.frozensets(st.sampled_from(["bye", "order", "cancel", "再见", "👋"])),
)
def test_ruleset_agrees_with_naive_loop(
    rules: list[Rule],
    parts: list[str],
    channel: str,
    type: ConversationType,
    first: bool,
    seen: frozenset[str],
) -> None:
    text = " ".join(parts)
    ev = RuleSet(rules).evaluate(text=text, channel=channel, type=type, first_message=first, seen=seen)
    assert [(f.rule.id, f.keywords) for f in ev.firings] == _naive(
        rules, text, channel=channel, type=type, first=first, seen=seen
    )
    resolving = [f for f in ev.firings if any(a.type == ActionType.RESOLVE for a in f.actions)]
    assert ev.resolve == bool(resolving)
    assert not resolving or not first or ev.resolved_by_rule == resolving[0].rule.id
    assert first or not ev.resolve


def test_only_the_oldest_resolving_rule_records_a_resolve_in_its_run() -> None:
    old = Rule(1, "old", ("bye",), MatchMode.ANY, (Action(ActionType.RESOLVE, "First"),))
    new = Rule(2, "new", ("bye",), MatchMode.ANY, (Action(ActionType.RESOLVE, "Second"), Action(ActionType.TAG, "t")))
    ev = RuleSet([new, old]).evaluate(text="bye", channel="c", type=ConversationType.DIRECT, first_message=True)
    assert (ev.resolve_reason, ev.resolved_by_rule) == ("First", 1)
    assert [f.actions for f in ev.firings] == [
        (Action(ActionType.RESOLVE, "First"),),
        (Action(ActionType.TAG, "t"),),
    ]


@settings(max_examples=200, deadline=None)
@given(
    before=_rules(),
    after=_rules(),
    compact=st.booleans(),
    parts=st.lists(st.sampled_from(_TEXT_PARTS), max_size=8),
    first=st.booleans(),
    seen=st.frozensets(st.sampled_from(["bye", "order", "cancel", "再见", "👋"])),
)
def test_a_changed_ruleset_evaluates_like_one_built_from_scratch(
    before: list[Rule],
    after: list[Rule],
    compact: bool,
    parts: list[str],
    first: bool,
    seen: frozenset[str],
) -> None:
    """Deriving a rule set change by change (replace, add, remove; with or without compaction)
    gives the same answers as compiling the resulting rules afresh."""
    start = RuleSet(before)
    wanted = {r.id: r for r in after}
    derived = start.changed(upsert=after, remove=[r.id for r in before if r.id not in wanted])
    if compact:
        derived = derived.compacted()
    scratch = RuleSet(wanted.values())
    text = " ".join(parts)
    for channel in ("slack", "tg"):
        got = derived.evaluate(text=text, channel=channel, type=DIRECT, first_message=first, seen=seen)
        assert got == scratch.evaluate(text=text, channel=channel, type=DIRECT, first_message=first, seen=seen)
    assert derived.rules == scratch.rules and len(derived) == len(wanted)


def test_many_single_changes_ask_for_compaction_and_it_keeps_answers() -> None:
    rules = RuleSet([rule(1, ("bye",))])
    for i in range(2, 400):
        rules = rules.changed(upsert=[rule(i, (f"word{i}",))])
    assert rules.wants_compaction
    assert fired(evaluate(rules, "word399 and bye")) == [1, 399]
    compact = rules.compacted()
    assert not compact.wants_compaction
    assert fired(evaluate(compact, "word399 and bye")) == [1, 399]
    # a compaction that finished after more changes is reused without losing them
    later = rules.changed(upsert=[rule(400, ("late",))], remove=[1]).with_index_of(compact)
    assert fired(evaluate(later, "late word2 bye")) == [2, 400]


@settings(max_examples=200, deadline=None)
@given(
    text=st.text(alphabet="ab cé,!Ω🙂", max_size=30),
    first=st.booleans(),
    seen=st.frozensets(st.sampled_from(["ab", "cé", "ω"])),
)
def test_an_evaluation_with_the_text_scanned_ahead_is_the_same(text: str, first: bool, seen: frozenset[str]) -> None:
    """Ingest scans a text as its request arrives and evaluates it later, inside the
    transaction: the result is the one of an evaluation in one go — and a scan made by another
    rule set (the automations changed in between) is not trusted but redone."""
    rules = RuleSet([rule(1, ("ab",)), rule(2, ("ab", "cé"), match=MatchMode.ALL), rule(3, ("Ω", "🙂"), resolve())])
    changed = rules.changed([rule(4, ("c",))], remove=[1])
    for current in (rules, changed):
        alone = current.evaluate(text=text, channel="slack", type=DIRECT, first_message=first, seen=seen)
        for ahead in (rules.scan(text), changed.scan(text)):
            assert (
                current.evaluate(text=text, channel="slack", type=DIRECT, first_message=first, seen=seen, scan=ahead)
                == alone
            )
