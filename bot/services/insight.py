"""Explaining automations: why a conversation's automations did what they did, what an automation
would have done to stored messages (preview), and what looks like a mistake (lint).

Reads only: nothing here changes the store. The engine decides (`bot.engine.why`, `.preview`,
`.lint`); this gathers the facts from the store, in chunks where they can be many.
"""

from __future__ import annotations

import bisect
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bot import plans
from bot.config import Settings
from bot.domain import (
    ActionType,
    Automation,
    AutomationRevision,
    AutomationRun,
    Conversation,
    ConversationType,
    Direction,
    Message,
    RevisionChange,
)
from bot.engine.lint import GENERIC_WORDS, UNSAVED, LintSubject, Warning, lint
from bot.engine.matcher import KeywordIndex
from bot.engine.preview import ConversationFacts, PreviewCounts, Replay
from bot.engine.rules import Rule
from bot.engine.why import AsOf, HistoryMessage, PastRun, WhyEntry, explain
from bot.errors import ConversationNotFound, Invalid
from bot.services.admin import Admin, rule_of
from bot.store import StoreError, history, repo

log = logging.getLogger("inbox.insight")

__all__ = ["CHUNK", "Insight", "Preview", "parse_since"]

CHUNK = 5000  # messages read per query by a preview: bounded memory, few round trips, short
# stretches of evaluation between two awaits (other requests are served in between)
DEFAULT_SINCE = timedelta(days=7)
MAX_DAYS = 36_500
SHARE_DAYS = 30  # generic_resolve_keyword looks at the first messages of this many days
SHARE_MIN_MESSAGES = 20  # fewer first messages in scope than this say nothing about a keyword
SHARE_SAMPLE = 10_000  # the newest first messages looked at: a share needs a sample, not them all

_DURATION = re.compile(r"\s*(\d{1,6})\s*([dh])\s*", re.IGNORECASE)
_TYPES = {t.value: t for t in ConversationType}  # a dict lookup per row, not an Enum call
SINCE_FORMS = '"7d" (days), "24h" (hours) or an ISO time such as "2026-11-24T10:00:00Z"'


def parse_since(value: object, *, now: datetime) -> datetime:
    """The start of a preview: `7d`, `24h` or an ISO time (UTC when it has no offset); 7 days ago
    when not given."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return now - DEFAULT_SINCE
    if isinstance(value, str):
        m = _DURATION.fullmatch(value)
        if m is not None:
            n, unit = int(m.group(1)), m.group(2).lower()
            if (n if unit == "d" else n / 24) <= MAX_DAYS:
                return now - (timedelta(days=n) if unit == "d" else timedelta(hours=n))
        else:
            try:
                at = datetime.fromisoformat(value.strip().replace("z", "Z"))
                return at.astimezone(UTC) if at.tzinfo is not None else at.replace(tzinfo=UTC)
            except (ValueError, OverflowError):  # unreadable, or out of UTC's range
                pass
    raise Invalid("since", f"since must be {SINCE_FORMS}")


@dataclass(frozen=True, slots=True)
class Preview:
    """A preview's answer: the replay's figures, the conversations scanned, and the warnings."""

    since: datetime
    counts: PreviewCounts
    conversations_scanned: int
    warnings: tuple[Warning, ...]


class Insight:
    """Why, preview and lint over the stored conversations and automations."""

    def __init__(self, settings: Settings, admin: Admin) -> None:
        self.settings = settings
        self.admin = admin

    # --- automations as they stood ------------------------------------------------------------
    async def automations_as_of(self, times: Sequence[datetime]) -> list[list[AsOf]]:
        """For each time given, the automations as they stood then: each one's latest revision
        made by that time (none once deleted). An automation stored before revisions were kept
        got its first revision when the store was upgraded: from its creation until then, that
        first revision stands for it."""
        if not times:
            return []
        history_ = await repo.revisions_until(max(times))
        by_automation: dict[int, list[AutomationRevision]] = {}
        for r in history_:
            by_automation.setdefault(r.automation_id, []).append(r)
        timelines = [(revisions, repo.automation_of(revisions[0]).created_at) for revisions in by_automation.values()]
        # A long conversation asks for every message's time. What stands changes only at these
        # instants: the times between two of them share one answer (the same list, read only),
        # and each revision is compiled once.
        changes = sorted({r.at for r in history_} | {created for _, created in timelines})
        compiled: dict[tuple[int, int], AsOf] = {}
        answers: dict[int, list[AsOf]] = {}
        out: list[list[AsOf]] = []
        for at in times:
            interval = bisect.bisect_right(changes, at)
            if interval not in answers:
                answers[interval] = [self._as_of(r, compiled) for r in self._standing(at, timelines)]
            out.append(answers[interval])
        return out

    @staticmethod
    def _standing(
        at: datetime, timelines: Sequence[tuple[list[AutomationRevision], datetime]]
    ) -> list[AutomationRevision]:
        """Each automation's revision that stood at `at` (see `automations_as_of`)."""
        standing: list[AutomationRevision] = []
        for revisions, first_created in timelines:
            made = [r for r in revisions if r.at <= at]
            if made:
                last = made[-1]
            else:  # the backfilled first revision, for an automation created before it
                if revisions[0].revision != 1 or first_created > at:
                    continue
                last = revisions[0]
            if last.change is not RevisionChange.DELETED:
                standing.append(last)
        return standing

    def _as_of(self, r: AutomationRevision, compiled: dict[tuple[int, int], AsOf]) -> AsOf:
        key = (r.automation_id, r.revision)
        if key not in compiled:
            a = repo.automation_of(r)
            allowed = plans.refusal(self.settings.organization, a.actions) is None
            compiled[key] = AsOf(rule_of(a), enabled=a.enabled, plan_allows=allowed, revision=r.revision)
        return compiled[key]

    # --- why ----------------------------------------------------------------------------------
    async def why(
        self,
        conversation_id: int,
        *,
        read: tuple[Conversation, Sequence[AutomationRun], Sequence[Message]] | None = None,
    ) -> list[WhyEntry]:
        """Per inbound message of the conversation, each automation that fired on it or found one
        of its keywords in it, and what it did or why not. `read`: the conversation, its runs and
        its messages when the caller has just read them (a conversation page): not read again."""
        if read is None:
            conv = await repo.get_conversation(conversation_id)
            if conv is None:
                raise ConversationNotFound(conversation_id)
            stored_runs: Sequence[AutomationRun] = await repo.conversation_runs(conversation_id)
        else:
            conv, stored_runs, _ = read
        runs = [
            PastRun(r.automation_id, r.automation_name, r.message_id, r.keywords, r.actions, revision=r.revision)
            for r in stored_runs
        ]
        if not runs and not await repo.has_revisions():
            return []  # no automation ever existed (each has revisions), none fired here: nothing to say
        if read is None:
            stored = await history.inbound_messages(conversation_id)
        else:
            stored = [(m.id, m.text, m.created_at) for m in read[2] if m.direction is Direction.INBOUND]
        messages = [HistoryMessage(mid, text, i == 0) for i, (mid, text, _) in enumerate(stored)]
        subjects = dict(
            zip((m.id for m in messages), await self.automations_as_of([at for *_, at in stored]), strict=True)
        )
        return explain(
            messages, channel=conv.channel, type=conv.type, automations_at=lambda m: subjects[m.id], runs=runs
        )

    async def inbound_texts(self, conversation_id: int) -> list[tuple[int, str]]:
        """The conversation's inbound messages (id, text), oldest first."""
        return [(mid, text) for mid, text, _ in await history.inbound_messages(conversation_id)]

    # --- preview ------------------------------------------------------------------------------
    async def preview(self, rule: Rule, *, since: datetime, enabled: bool = True) -> Preview:
        """Replay the inbound messages sent since `since` through `rule` as live ingest would,
        streaming them from the store in chunks. Changes nothing."""
        replay = Replay(rule)
        after = 0
        # (reading the next chunk while evaluating this one was slower: the driver's thread and
        # the evaluation contend for the interpreter)
        while rows := await history.inbound_since(since, after_id=after, limit=CHUNK):
            after = rows[-1][0]
            candidates = replay.sift(rows)
            if not candidates:
                continue
            stored = await history.conversation_facts({r[1] for r in candidates})
            facts = {
                cid: ConversationFacts(_TYPES[kind], first)
                for cid, (kind, first) in stored.items()
                if first is not None
            }
            prime = replay.to_prime(candidates, facts)
            if prime:
                earlier = await history.earlier_inbound(prime)
                for cid in prime:
                    replay.prime(cid, earlier.get(cid, ()))
            replay.feed(candidates, facts)
        scanned = await history.count_conversations_since(since)
        warnings = await self.lint_about(rule, enabled=enabled)
        return Preview(since, replay.counts(), scanned, tuple(warnings))

    # --- lint ---------------------------------------------------------------------------------
    async def lint_all(self) -> list[Warning]:
        """The warnings of every enabled automation."""
        # the last change stands for "enabled since" until automations keep a history of their changes
        stored = [(rule_of(a), a.enabled, a.updated_at) for a in await repo.list_automations()]
        return lint(
            await self._subjects(stored),
            known_channels=[c.name for c in self.settings.channels],
            now=datetime.now(UTC),
        )

    async def lint_saved(self, a: Automation) -> list[Warning]:
        """The warnings that involve a stored automation (enabled or not), for the answer to its
        save. The save is done: a store that fails to answer here costs the warnings, not the
        answer (the client would otherwise retry a save that succeeded)."""
        try:
            return await self.lint_about(rule_of(a), enabled=a.enabled, since=a.updated_at)
        except StoreError:
            log.warning("could not lint automation #%s after its save", a.id, exc_info=True)
            return []

    async def lint_about(self, rule: Rule, *, enabled: bool, since: datetime | None = None) -> list[Warning]:
        """The warnings that involve `rule` (stored, or `UNSAVED` for one being previewed): its own,
        and those with the enabled automations that hold one of its keywords — taken from the
        compiled rules this worker runs (the automations its plan allows), so an automation's
        save or edit page costs its keywords, not every automation."""
        partners = [r for r in self.admin.rules.current().holding(rule.keys) if r.id != rule.id]
        subjects = await self._subjects([(rule, enabled, since)], about=rule.id)
        return lint(
            [*subjects, *(LintSubject(rule=r, enabled=True) for r in partners)],
            known_channels=[c.name for c in self.settings.channels],
            now=datetime.now(UTC),
            about=rule.id,
        )

    async def _subjects(
        self, items: Sequence[tuple[Rule, bool, datetime | None]], *, about: int | None = None
    ) -> list[LintSubject]:
        """The enabled ones among (rule, enabled, enabled since), and `about` even if disabled,
        with the facts their own warnings need (last run, shares among first messages)."""
        live = [(r, e, s) for r, e, s in items if e or r.id == about]
        last = await history.last_runs([r.id for r, _, _ in live if r.id != UNSAVED])
        shares = await self._first_message_shares([r for r, _, _ in live])
        return [
            LintSubject(
                rule=r,
                enabled=e,
                enabled_since=s,
                last_run_at=last.get(r.id),
                first_message_share=shares.get(r.id, {}),
            )
            for r, e, s in live
        ]

    async def _first_message_shares(self, rules: Sequence[Rule]) -> dict[int, dict[str, float]]:
        """For each resolving rule, the share of the first messages in its scope over the last
        30 days (the newest `SHARE_SAMPLE` conversations) that hold each of its keywords (not the
        built-in generic ones: no need)."""
        resolving = [r for r in rules if any(a.type is ActionType.RESOLVE for a in r.actions)]
        keys = {k for r in resolving for k in r.keys if k and k not in GENERIC_WORDS}
        if not keys:
            return {}
        index = KeywordIndex(keys)
        since = datetime.now(UTC) - timedelta(days=SHARE_DAYS)
        totals: dict[int, int] = dict.fromkeys((r.id for r in resolving), 0)
        hits: dict[int, dict[str, int]] = {r.id: {} for r in resolving}
        for row in await history.recent_first_messages(since, limit=SHARE_SAMPLE):
            found = index.find(row.text)
            conv_type = _TYPES[row.type]
            for r in resolving:
                if not r.in_scope(channel=row.channel, type=conv_type):
                    continue
                totals[r.id] += 1
                for k in found.intersection(r.keys):
                    hits[r.id][k] = hits[r.id].get(k, 0) + 1
        return {
            r.id: {k: n / totals[r.id] for k, n in hits[r.id].items()}
            for r in resolving
            if totals[r.id] >= SHARE_MIN_MESSAGES
        }
