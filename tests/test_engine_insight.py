"""bot.engine.why, bot.engine.preview and bot.engine.lint: explaining automations, pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.domain import Action, ActionType, ConversationType, MatchMode
from bot.engine.lint import GENERIC_WORDS, UNSAVED, Kind, LintSubject, lint
from bot.engine.preview import MAX_EXAMPLES, Replay, ReplayMessage
from bot.engine.rules import Rule, RuleSet
from bot.engine.why import AsOf, HistoryMessage, Outcome, PastRun, explain

NOW = datetime(2026, 12, 1, tzinfo=UTC)
TAG = Action(ActionType.TAG, "closing")
RESOLVE = Action(ActionType.RESOLVE)
CRM = Action(ActionType.CRM, "salesforce")
DIRECT = ConversationType.DIRECT


def rule(id: int, keywords: str, *actions: Action, match: MatchMode = MatchMode.ANY, **scope: frozenset[str]) -> Rule:
    return Rule(
        id=id, name=f"R{id}", keywords=tuple(keywords.split(",")), match=match, actions=actions or (TAG,), **scope
    )  # type: ignore[arg-type]


# --- why ------------------------------------------------------------------------------------------


def test_resolve_not_applied_because_an_older_automation_resolved_first() -> None:
    old, new = rule(1, "bye", RESOLVE), rule(2, "bye", TAG, RESOLVE)
    msg = HistoryMessage(10, "bye", first=True)
    runs = [PastRun(1, "R1", 10, ("bye",), (RESOLVE,)), PastRun(2, "R2", 10, ("bye",), (TAG,))]
    entries = explain(
        [msg],
        channel="shop",
        type=DIRECT,
        automations_at=lambda m: [AsOf(old, True, True), AsOf(new, True, True)],
        runs=runs,
    )
    assert [(e.automation_id, e.outcome) for e in entries] == [(1, Outcome.FIRED), (2, Outcome.FIRED)]
    assert entries[1].not_applied[0].why == '"R1" (#1) resolved it first'


def test_plan_skip_and_silence() -> None:
    refused = rule(1, "bye", RESOLVE)
    quiet = rule(2, "hello")
    entries = explain(
        [HistoryMessage(10, "Bye!", first=True)],
        channel="shop",
        type=DIRECT,
        automations_at=lambda m: [AsOf(refused, True, False), AsOf(quiet, True, True)],
        runs=[],
    )
    assert [(e.automation_id, e.outcome) for e in entries] == [(1, Outcome.SKIPPED_PLAN)]


# --- preview --------------------------------------------------------------------------------------

_conversations = st.lists(
    st.lists(st.sampled_from(["a", "b", "a b", "x", "B!", "ａ"]), min_size=1, max_size=4), min_size=1, max_size=6
)


@settings(max_examples=150)
@given(_conversations, st.sampled_from(list(MatchMode)), st.integers(0, 6))
def test_replay_fires_where_live_evaluation_fires(convs: list[list[str]], match: MatchMode, skip: int) -> None:
    """Fed from any point (`skip` messages left before `since`, primed), the replay fires on
    exactly the messages a conversation-by-conversation live evaluation fires on."""
    r = rule(1, "a,b", TAG, RESOLVE, match=match)
    live = RuleSet([r])
    # conversations interleave as messages arrive: ids go round-robin across them
    arrival = sorted((i, cid) for cid, texts in enumerate(convs) for i in range(len(texts)))
    ids = {key: n + 1 for n, key in enumerate(arrival)}
    stream: list[ReplayMessage] = []
    expected: set[int] = set()
    for cid, texts in enumerate(convs):
        seen: frozenset[str] = frozenset()
        for i, text in enumerate(texts):
            ev = live.evaluate(text=text, channel="shop", type=DIRECT, first_message=i == 0, seen=seen)
            seen = ev.seen
            stream.append(ReplayMessage(ids[(i, cid)], cid, "shop", DIRECT, text, i == 0))
            if ev.firings:
                expected.add(ids[(i, cid)])
    stream.sort(key=lambda m: m.id)
    before, after = stream[:skip], stream[skip:]
    replay = Replay(r)
    for cid in replay.unknown(after):
        replay.prime(cid, [(m.text, m.first) for m in before if m.conversation_id == cid])
    for m in after:
        replay.feed(m)
    counts = replay.counts()
    fired_after = sorted(m for m in expected if m > (before[-1].id if before else 0))
    assert counts.messages_scanned == len(after)
    assert counts.would_fire_messages == len(fired_after) == counts.would_tag
    assert [e.message_id for e in counts.examples] == fired_after[:MAX_EXAMPLES]


# --- lint -----------------------------------------------------------------------------------------


def subject(r: Rule, *, enabled: bool = True, **facts: object) -> LintSubject:
    return LintSubject(rule=r, enabled=enabled, **facts)  # type: ignore[arg-type]


def test_generic_words_cover_four_languages() -> None:
    assert {"hello", "thanks", "merci", "bonjour", "danke", "hallo", "gracias", "hola"} <= GENERIC_WORDS
    assert "au revoir" not in GENERIC_WORDS  # a goodbye is what resolving is for


def test_scopes_that_do_not_overlap_share_keywords_freely() -> None:
    shop = rule(1, "bye", channels=frozenset({"shop"}))
    support = rule(2, "bye", channels=frozenset({"support"}))
    groups = rule(3, "bye", types=frozenset({ConversationType.GROUP}))
    warnings = lint([subject(shop), subject(support), subject(groups)], known_channels=["shop", "support"], now=NOW)
    assert sorted(w.automation_ids for w in warnings) == [(1, 3), (2, 3)]
    assert all(w.kind is Kind.DUPLICATE_KEYWORD for w in warnings)


def test_disabled_automations_are_left_out_unless_asked_about() -> None:
    a, b = rule(1, "bye"), rule(2, "bye")
    assert lint([subject(a), subject(b, enabled=False)], known_channels=[], now=NOW) == []
    (w,) = lint([subject(a), subject(b, enabled=False)], known_channels=[], now=NOW, about=2)
    assert w.automation_ids == (1, 2)


def test_never_fired_after_thirty_quiet_days() -> None:
    long_ago = NOW - timedelta(days=31)
    quiet = subject(rule(1, "x"), enabled_since=long_ago, last_run_at=None)
    busy = subject(rule(2, "y"), enabled_since=long_ago, last_run_at=NOW - timedelta(days=2))
    fresh = subject(rule(3, "z"), enabled_since=NOW - timedelta(days=3))
    stale = subject(rule(4, "w"), enabled_since=long_ago, last_run_at=long_ago)
    warnings = lint([quiet, busy, fresh, stale], known_channels=[], now=NOW)
    assert [(w.kind, w.automation_ids) for w in warnings] == [(Kind.NEVER_FIRED, (1,)), (Kind.NEVER_FIRED, (4,))]


def test_share_of_first_messages_counts_above_five_percent_only() -> None:
    r = rule(1, "done,ok", RESOLVE)
    warnings = lint([subject(r, first_message_share={"done": 0.05, "ok": 0.051})], known_channels=[], now=NOW)
    assert [(w.kind, w.keyword) for w in warnings] == [(Kind.GENERIC_RESOLVE_KEYWORD, "ok")]


def test_an_unsaved_automation_is_named_by_no_id() -> None:
    saved, draft = rule(5, "bye", RESOLVE), rule(UNSAVED, "bye", CRM)
    warnings = lint([subject(saved), subject(draft)], known_channels=[], now=NOW, about=UNSAVED)
    assert sorted((w.kind, w.automation_ids) for w in warnings) == [
        (Kind.CONFLICT, (5,)),
        (Kind.DUPLICATE_KEYWORD, (5,)),
    ]
