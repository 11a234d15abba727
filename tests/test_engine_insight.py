"""bot.engine.why, bot.engine.preview and bot.engine.lint: explaining automations, pure."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.domain import Action, ActionType, ConversationType, MatchMode
from bot.engine.lint import GENERIC_WORDS, UNSAVED, Kind, LintSubject, lint
from bot.engine.offsets import find_keywords
from bot.engine.preview import MAX_EXAMPLES, ConversationFacts, Example, PreviewCounts, Replay
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


@dataclass(frozen=True)
class Stored:
    """An inbound message as stored, with its conversation's facts."""

    id: int
    cid: int
    channel: str
    type: ConversationType
    text: str


def replayed(r: Rule, stored: list[Stored], *, since_id: int, chunk: int) -> PreviewCounts:
    """The replay fed as the insight service feeds it, from these stored messages (id order): the
    messages from `since_id` on in chunks, the facts and earlier messages it asks for."""
    first = {m.cid: m.id for m in reversed(stored)}
    types = {m.cid: m.type for m in stored}
    window = [m for m in stored if m.id >= since_id]
    replay = Replay(r)
    for start in range(0, len(window), chunk):
        rows = [(m.id, m.cid, m.channel, m.text) for m in window[start : start + chunk]]
        candidates = replay.sift(rows)
        facts = {cid: ConversationFacts(types[cid], first[cid]) for cid in {row[1] for row in candidates}}
        for cid, below in replay.to_prime(candidates, facts).items():
            replay.prime(cid, [(m.text, m.id == first[cid]) for m in stored if m.cid == cid and m.id < below])
        replay.feed(candidates, facts)
    return replay.counts()


def reference(r: Rule, stored: list[Stored], *, since_id: int) -> PreviewCounts:
    """What the preview must answer: live ingest's evaluation of every stored message in order,
    each conversation's keyword progress carried from message to message, counted from `since_id`."""
    live = RuleSet([r])
    first = {m.cid: m.id for m in reversed(stored)}
    progress: dict[int, frozenset[str]] = {}
    fired = tagged = resolved = 0
    conversations: set[int] = set()
    examples: list[Example] = []
    for m in stored:
        ev = live.evaluate(
            text=m.text,
            channel=m.channel,
            type=m.type,
            first_message=m.id == first[m.cid],
            seen=progress.get(m.cid, frozenset()),
        )
        progress[m.cid] = ev.seen
        if m.id < since_id or not ev.firings:
            continue
        fired += 1
        conversations.add(m.cid)
        tagged += bool(ev.tags)
        resolved += ev.resolve
        if len(examples) < MAX_EXAMPLES:
            examples.append(Example(m.cid, m.id, m.text, tuple(find_keywords(m.text, ev.firings[0].keywords))))
    kinds = {a.type for a in r.actions}
    return PreviewCounts(
        messages_scanned=sum(1 for m in stored if m.id >= since_id),
        would_fire_messages=fired,
        would_fire_conversations=len(conversations),
        would_tag=tagged,
        would_apply_topics=len(conversations) if ActionType.TOPIC in kinds else 0,
        would_resolve=resolved,
        would_send_to_crm=len(conversations) if ActionType.CRM in kinds else 0,
        examples=tuple(examples),
    )


def interleave(convs: list[list[str]], scopes: list[tuple[str, ConversationType]]) -> list[Stored]:
    """Conversations' messages as they arrive: ids go round-robin across the conversations."""
    arrival = sorted((i, cid) for cid, texts in enumerate(convs) for i in range(len(texts)))
    return [Stored(n + 1, cid, *scopes[cid % len(scopes)], convs[cid][i]) for n, (i, cid) in enumerate(arrival)]


_conversations = st.lists(
    st.lists(st.sampled_from(["a", "b", "a b", "x", "B!", "ａ"]), min_size=1, max_size=4), min_size=1, max_size=6
)


@settings(max_examples=150)
@given(_conversations, st.sampled_from(list(MatchMode)), st.integers(0, 6), st.integers(1, 5))
def test_replay_fires_where_live_evaluation_fires(
    convs: list[list[str]], match: MatchMode, skip: int, chunk: int
) -> None:
    """Fed from any point (`skip` messages left before `since`, primed), the replay fires on
    exactly the messages a conversation-by-conversation live evaluation fires on."""
    r = rule(1, "a,b", TAG, RESOLVE, match=match)
    stored = interleave(convs, [("shop", DIRECT)])
    assert replayed(r, stored, since_id=skip + 1, chunk=chunk) == reference(r, stored, since_id=skip + 1)


# Words of support messages, and the automation's keywords written the ways normalization brings
# back: capitals, accents (composed, or as combining marks), ligatures, fullwidth forms, no-break
# spaces, emoji, scripts written without spaces.
_WORDS = st.sampled_from(
    [
        *["hello", "merci", "order", "the", "late", "delivery", "refund", "refunds", "remboursement", "invoice"],
        "REFUND",
        "Refund!",
        "réfund",
        "re\u0301fund",
        "ｒｅｆｕｎｄ",
        "ﬁle",
        "file",
        "Late-Delivery",
        "late\u00a0delivery",
        "late,delivery",
        "Remboursé",
        "remboursé",
        "rembourse\u0301",
        "REMBOURSÉ",
        "Straße",
        "strasse",
        "再见",
        "好的再见",
        "谢谢bye",
        "bye",
        "👋",
        "👋🏽",
        "🙏🙏",
        "❤️",
        "ลาก่อน",
        "by\u00adstander",
        "\u200b",
        ",",
        "!",
        "ﬁ",
        "ß",
        "İ",
    ]
)
_TEXTS = st.lists(_WORDS, min_size=1, max_size=6).map(" ".join) | st.text(max_size=12)
_KEYWORDS = st.lists(
    st.sampled_from(["refund", "late delivery", "remboursé", "file", "strasse", "再见", "bye", "👋", "🙏🙏", "ลาก่อน"]),
    min_size=1,
    max_size=4,
    unique=True,
)
_ACTIONS = st.lists(st.sampled_from([TAG, RESOLVE, CRM, Action(ActionType.TOPIC, "Billing")]), min_size=1, max_size=3)
_SCOPES = [("shop", DIRECT), ("shop", ConversationType.GROUP), ("support", DIRECT)]


@settings(max_examples=300, deadline=None)
@given(
    convs=st.lists(st.lists(_TEXTS, min_size=1, max_size=5), min_size=1, max_size=8),
    keywords=_KEYWORDS,
    match=st.sampled_from(list(MatchMode)),
    actions=_ACTIONS,
    channels=st.sampled_from([frozenset(), frozenset({"shop"})]),
    types=st.sampled_from([frozenset(), frozenset({DIRECT})]),
    skip=st.integers(0, 10),
    chunk=st.integers(1, 7),
)
def test_replay_answers_what_live_evaluation_of_every_message_answers(
    convs: list[list[str]],
    keywords: list[str],
    match: MatchMode,
    actions: list[Action],
    channels: frozenset[str],
    types: frozenset[ConversationType],
    skip: int,
    chunk: int,
) -> None:
    """Counts, examples and their offsets: the replay, which evaluates only the messages its sieve
    lets through, answers exactly what evaluating every message through the live rules answers."""
    r = Rule(
        id=1,
        name="R",
        keywords=tuple(keywords),
        match=match,
        actions=tuple(dict.fromkeys(actions)),
        channels=channels,
        types=types,
    )
    stored = interleave(convs, _SCOPES)
    assert replayed(r, stored, since_id=skip + 1, chunk=chunk) == reference(r, stored, since_id=skip + 1)


def test_a_conversation_is_primed_once_however_many_chunks_it_spans() -> None:
    """Its messages pass the sieve ("delivery") but hold no keyword ("late delivery"): its
    progress stays empty, and the store is still asked for its earlier messages only once."""
    r = rule(1, "late delivery,refund", TAG, match=MatchMode.ALL)
    replay = Replay(r)
    facts = {7: ConversationFacts(DIRECT, 1)}
    asked: list[int] = []
    for mid in range(2, 40):
        rows = replay.sift([(mid, 7, "shop", f"delivery {mid}"), (mid + 1000, 8, "shop", "nothing")])
        for cid, below in replay.to_prime(rows, facts).items():
            asked.append(cid)
            replay.prime(cid, [("delivery", i == 0) for i in range(below - 1)])
        replay.feed(rows, facts)
    assert asked == [7]
    assert replay.counts().messages_scanned == 76


def test_replay_of_a_busy_store_matches_the_reference() -> None:
    """A larger, fixed store: many conversations, a keyword in about one message in five."""
    rnd = random.Random(13)
    words = ["order", "where", "is", "my", "parcel", "merci", "thanks", "please", "Café", "ｏｋ", "👋"]
    keys = ["refund", "late delivery", "remboursé", "file"]
    spellings = ["REFUND", "re\u0301fund", "Late - delivery", "REMBOURSE\u0301", "ﬁle", "ｆｉｌｅ", "late"]
    convs = [
        [
            " ".join(rnd.choice(words + spellings if rnd.random() < 0.2 else words) for _ in range(rnd.randint(3, 12)))
            for _ in range(rnd.randint(1, 6))
        ]
        for _ in range(300)
    ]
    stored = interleave(convs, _SCOPES)
    for match, keywords in ((MatchMode.ANY, keys), (MatchMode.ALL, keys[::3])):
        r = Rule(
            1, "R", tuple(keywords), match, (TAG, RESOLVE), channels=frozenset({"shop"}), types=frozenset({DIRECT})
        )
        expected = reference(r, stored, since_id=200)
        assert expected.would_fire_messages > 10 and len(expected.examples) == MAX_EXAMPLES
        for chunk in (1, 64, 5000):
            assert replayed(r, stored, since_id=200, chunk=chunk) == expected


# --- lint -----------------------------------------------------------------------------------------


def subject(r: Rule, *, enabled: bool = True, **facts: object) -> LintSubject:
    return LintSubject(rule=r, enabled=enabled, **facts)  # type: ignore[arg-type]


def every_pair(active: list[LintSubject], about: int | None) -> list[tuple[str, tuple[int, ...], str | None]]:
    """The two-automation warnings by their definition: every pair of automations (by id) whose
    scopes overlap, for each keyword of the first that the second has too; a conflict when one
    resolves and the other sends to the CRM."""
    out = []
    ordered = sorted(active, key=lambda s: s.rule.id)
    for n, s in enumerate(ordered):
        for t in ordered[n + 1 :]:
            a, b = s.rule, t.rule
            if about is not None and about not in (a.id, b.id):
                continue
            if not ((not a.channels or not b.channels or a.channels & b.channels) and
                    (not a.types or not b.types or a.types & b.types)):  # fmt: skip
                continue
            shared = [kw for kw, key in zip(a.keywords, a.keys, strict=True) if key and key in set(b.keys)]
            out += [(Kind.DUPLICATE_KEYWORD.value, (a.id, b.id), kw) for kw in shared]
            kinds = ({x.type for x in a.actions}, {x.type for x in b.actions})
            if shared and ActionType.RESOLVE in kinds[0] and ActionType.CRM in kinds[1]:
                out.append((Kind.CONFLICT.value, (a.id, b.id), shared[0]))
            elif shared and ActionType.CRM in kinds[0] and ActionType.RESOLVE in kinds[1]:
                out.append((Kind.CONFLICT.value, (b.id, a.id), shared[0]))
    return out


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.lists(st.sampled_from(["bye", "Bye", "au revoir", "refund", "help", "!!"]), min_size=1, max_size=3),
            st.sampled_from([(TAG,), (RESOLVE,), (CRM,), (TAG, RESOLVE)]),
            st.sampled_from([frozenset(), frozenset({"shop"}), frozenset({"support"})]),
            st.booleans(),
        ),
        max_size=7,
    ),
    st.sampled_from([None, 1, 3]),
)
def test_lint_finds_the_pairs_that_trying_every_pair_finds(
    specs: list[tuple[list[str], tuple[Action, ...], frozenset[str], bool]], about: int | None
) -> None:
    subjects = [
        subject(
            Rule(id=i + 1, name=f"R{i + 1}", keywords=tuple(kws), match=MatchMode.ANY, actions=acts, channels=ch),
            enabled=on,
        )
        for i, (kws, acts, ch, on) in enumerate(specs)
    ]
    random.Random(len(specs)).shuffle(subjects)  # the order subjects come in does not matter
    active = [s for s in subjects if s.enabled or s.rule.id == about]
    found = [
        (w.kind.value, w.automation_ids, w.keyword)
        for w in lint(subjects, known_channels=["shop", "support"], now=NOW, about=about)
        if w.kind in (Kind.DUPLICATE_KEYWORD, Kind.CONFLICT)
    ]
    assert found == every_pair(active, about)


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
