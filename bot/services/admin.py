"""Automations, tags, topics and resolution reasons: validation, plan gating and changes. A topic's
priority and team route its conversations: changing them moves every open conversation with it.

The one write path for automations and labels: the `/automation` chat command, the JSON API, the
CLI (`serve --demo` seeding) and `check` all come here; they only parse and format. Refusals are
errors of `bot.errors` saying what is wrong; each front-end words them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bot import plans
from bot.config import Settings
from bot.domain import (
    VALUE_KEY,
    Action,
    ActionType,
    Automation,
    AutomationRevision,
    ConversationType,
    MatchMode,
    Priority,
    RevisionChange,
    Topic,
)
from bot.engine import Evaluation, Rule, RuleSet, keyword_key, parse_keywords
from bot.engine.normalize import unclosed_quote
from bot.errors import (
    N_,
    Conflict,
    Forbidden,
    Invalid,
    Missing,
    NotFound,
    RevisionNotFound,
    Term,
    UnknownField,
    UnknownLabel,
    UnknownTeam,
)
from bot.services import audit
from bot.services import live as changes
from bot.services.live import Hub
from bot.services.retry import when_busy
from bot.store import automations, repo
from bot.store import labels as label_store
from bot.store import people as people_store
from bot.store import queue as queue_store

log = logging.getLogger("inbox.admin")

MAX_NAME = 100
MAX_KEYWORDS = 100
MAX_KEYWORD_LEN = 200
MAX_CHANNEL = 64  # the longest channel name a message holds
# Read-only fields of an automation as the API shows it: ignored in a change, so a client may send
# back what it read.
READ_ONLY = frozenset({"id", "problem", "created_at", "updated_at", "revision", "warnings"})
# What a rollback restores of a revision (`enabled` stays as it is).
RESTORED = ("name", "keywords", "match", "actions", "channels", "types")


# --- labels: the one map of their kinds ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LabelKind:
    """A kind of admin-managed name."""

    kind: str  # as stored: tag, topic, reason
    noun: Term  # as people say it: "resolution reason" (a word the chat translates)
    plural: str  # the chat subcommand and the API collection: "reasons"
    action: ActionType  # the automation action that names one


LABEL_KINDS: dict[str, LabelKind] = {
    k.kind: k
    for k in (
        LabelKind("tag", Term(N_("tag")), "tags", ActionType.TAG),
        LabelKind("topic", Term(N_("topic")), "topics", ActionType.TOPIC),
        LabelKind("reason", Term(N_("resolution reason")), "reasons", ActionType.RESOLVE),
    )
}
_KIND_OF_ACTION = {k.action: k for k in LABEL_KINDS.values()}


# --- automations as records, rules and the JSON form -------------------------------------------------


def rule_of(a: Automation) -> Rule:
    """The engine's compiled form of an automation."""
    return Rule(
        id=a.id,
        name=a.name,
        keywords=a.keywords,
        match=a.match,
        actions=a.actions,
        channels=frozenset(a.channels),
        types=frozenset(a.types),
        revision=a.revision,
    )


def editable_fields(a: Automation) -> dict[str, Any]:
    """The fields an admin sets, in their JSON form: as the API shows them and a change merges into."""
    return {
        "name": a.name,
        "keywords": list(a.keywords),
        "match": a.match.value,
        "actions": [x.to_json() for x in a.actions],
        "channels": list(a.channels),
        "types": [t.value for t in a.types],
        "enabled": a.enabled,
    }


def plan_problem(a: Automation, settings: Settings) -> Forbidden | None:
    """Why the current plan does not allow this automation (it is skipped at run time), or None."""
    return plans.refusal(settings.organization, a.actions)


class RuleCache:
    """The compiled rules of the enabled automations the plan allows; reloaded when the
    automations revision in the store changes (checked every `interval`, so a change made on any
    worker takes effect everywhere within about a second).

    Off the hot path: a change reloads only the automations that changed (their `updated_at`
    differs; one light query of ids and stamps) and derives the new rule set from the current one
    in a thread; a full compile (start-up) and the occasional compaction of the keyword index run
    in a thread too. The new set is swapped in whole, so a message sees the old or the new rules,
    never a mix. A change this worker made is applied without the query when no other change came
    in between (`applied`)."""

    def __init__(self, settings: Settings, *, interval: float = 0.5) -> None:
        self._settings = settings
        self._interval = interval
        self._ruleset = RuleSet([])
        self._revision = -1
        self._stamps: dict[int, object] = {}  # enabled automation id → updated_at as last loaded
        self._refused: set[int] = set()  # enabled automations the plan does not allow
        self._lock = asyncio.Lock()
        self._stop = asyncio.Event()
        self._compaction: asyncio.Task[None] | None = None
        self.on_reload: list[Callable[[int], object]] = []

    def current(self) -> RuleSet:
        return self._ruleset

    def _allowed(self, found: Sequence[Automation]) -> tuple[list[Rule], list[int]]:
        """(rules of the automations the plan allows, ids of those it refuses)."""
        org = self._settings.organization
        rules, refused = [], []
        for a in found:
            if plans.refusal(org, a.actions) is None:
                rules.append(rule_of(a))
            else:
                refused.append(a.id)
        return rules, refused

    def _compile_all(self, found: Sequence[Automation]) -> tuple[RuleSet, list[int]]:
        rules, refused = self._allowed(found)
        return RuleSet(rules), refused

    async def refresh(self, *, force: bool = False) -> bool:
        """Catch up with the store's automations; `force` recompiles all of them."""
        async with self._lock:
            revision = await repo.automations_revision()
            if revision == self._revision and not force:
                return False
            stamps = await automations.enabled_stamps()
            if force or self._revision < 0:
                ruleset, refused = await asyncio.to_thread(self._compile_all, await repo.enabled_automations())
                self._refused = set(refused)
            else:
                changed = [i for i, stamp in stamps.items() if self._stamps.get(i, self) != stamp]
                gone = {i for i in self._stamps if i not in stamps}
                loaded = await automations.automations_by_ids(changed)
                rules, refused = self._allowed([a for a in loaded if a.enabled])
                gone |= set(changed) - {r.id for r in rules}
                self._refused = (self._refused - gone - {r.id for r in rules}) | set(refused)
                ruleset = await asyncio.to_thread(self._ruleset.changed, rules, gone)
            if self._refused:
                log.warning("%d enabled automation(s) skipped: the plan no longer allows them", len(self._refused))
            self._swap(ruleset, revision, stamps)
            return True

    async def applied(self, revision: int, *, upsert: Sequence[Automation] = (), remove: Sequence[int] = ()) -> None:
        """This worker committed a change to `upsert` / `remove` that took the automations to
        `revision`: apply it alone when the rules are at the revision before, else catch up."""
        async with self._lock:
            if revision == self._revision + 1:
                rules, refused = self._allowed([a for a in upsert if a.enabled])
                gone = {*remove, *(a.id for a in upsert)} - {r.id for r in rules}
                self._refused = (self._refused - gone - {r.id for r in rules}) | set(refused)
                stamps = {i: s for i, s in self._stamps.items() if i not in gone}
                # the stamp of a rule applied here is unknown: the next reload re-reads that one row
                stamps.update((r.id, None) for r in rules)
                stamps.update((i, None) for i in refused)
                self._swap(await asyncio.to_thread(self._ruleset.changed, rules, gone), revision, stamps)
                return
        await self.refresh()

    def _swap(self, ruleset: RuleSet, revision: int, stamps: dict[int, object]) -> None:
        self._ruleset = ruleset
        self._revision = revision
        self._stamps = stamps
        for cb in self.on_reload:
            cb(len(ruleset))
        if ruleset.wants_compaction and (self._compaction is None or self._compaction.done()):
            self._compaction = asyncio.create_task(self._compact(ruleset), name="rules-compaction")

    async def _compact(self, source: RuleSet) -> None:
        """Fold the keys added since the last full index into one index, in a thread."""
        compact = await asyncio.to_thread(source.compacted)
        async with self._lock:
            current = self._ruleset
            self._ruleset = compact if current is source else await asyncio.to_thread(current.with_index_of, compact)

    def stop(self) -> None:
        self._stop.set()
        if self._compaction is not None:
            self._compaction.cancel()

    async def watch(self) -> None:
        """Poll the revision until stop(); never cancelled mid-query (see Outbox.stop)."""
        while not self._stop.is_set():
            try:
                await asyncio.wait_for(self._stop.wait(), timeout=self._interval)
                return
            except TimeoutError:
                pass
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("could not reload automations; keeping the previous rules")


@dataclass(frozen=True, slots=True)
class TestResult:
    evaluation: Evaluation
    skipped: tuple[tuple[str, Forbidden], ...]  # (automation name, why) for enabled ones the plan refuses


def _unknown_channel(field: str, name: str, known: Sequence[str]) -> Invalid:
    return Invalid(
        field,
        N_('unknown channel "{name}" — configured channels: {known}'),
        name=name,
        known=", ".join(known) if known else Term(N_("none")),
    )


def _taken(noun: Term, name: str) -> Conflict:
    return Conflict(N_('{noun} "{name}" already exists'), field="name", noun=noun, name=name)


def _name_taken(name: str) -> Conflict:
    return Conflict(N_('an automation named "{name}" already exists — pick another name'), field="name", name=name)


# --- validators, one per field: a value from any front-end in, the stored form out -------------------


def valid_name(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise Missing("name", of="automation")
    name = " ".join(value.split())
    if len(name) > MAX_NAME:
        raise Invalid("name", N_("automation names are at most {n} characters"), n=MAX_NAME)
    if name.startswith("#"):
        raise Invalid("name", N_("automation names cannot start with # (that is how #ID refers to one)"))
    return name


def valid_keywords(value: object) -> list[str]:
    """A comma-separated string (a quoted phrase may hold a comma) or a list of strings."""
    if isinstance(value, list) and all(isinstance(k, str) for k in value):
        raw: str | list[str] = value
    elif isinstance(value, str):
        if unclosed_quote(value):
            raise Invalid("keywords", N_('keywords: a quote (") is not closed — close it and send again'))
        raw = value
    else:
        raise Missing("keywords", of="automation")
    keywords = parse_keywords(raw)
    if not keywords or not any(keyword_key(k) for k in keywords):
        raise Missing("keywords", of="automation")
    if len(keywords) > MAX_KEYWORDS:
        raise Invalid("keywords", N_("keywords: at most {n} keywords (got {got})"), n=MAX_KEYWORDS, got=len(keywords))
    long = next((k for k in keywords if len(k) > MAX_KEYWORD_LEN), None)
    if long is not None:
        raise Invalid(
            "keywords", N_('keywords: "{start}…" is longer than {n} characters'), start=long[:40], n=MAX_KEYWORD_LEN
        )
    return keywords


def valid_match(value: object) -> MatchMode:
    """`any` when not given."""
    if value is None or value == "":
        return MatchMode.ANY
    if value not in ("any", "all"):
        raise Invalid("match", N_('match must be "any" or "all", not "{value}"'), value=value)
    return MatchMode(value)


def valid_channels(value: object) -> list[str]:
    """Channel names, each once; empty (every channel) when not given. A name the config does not
    hold is kept (the channel may be configured later): lint warns about it (`unknown_channel`)."""
    if not value:
        return []
    if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
        raise Invalid("channels", N_("channels must be a list of channel names"))
    channels = list(dict.fromkeys(c.strip() for c in value if c.strip()))
    long = next((c for c in channels if len(c) > MAX_CHANNEL), None)
    if long is not None:
        raise Invalid("channels", N_("channel names are at most {n} characters"), n=MAX_CHANNEL)
    return channels


def valid_type(value: str, *, field: str) -> ConversationType:
    try:
        return ConversationType(value)
    except ValueError:
        raise Invalid(
            field, N_('unknown conversation type "{value}" — use direct, group or public'), value=value
        ) from None


def valid_types(value: object) -> list[ConversationType]:
    """Conversation types, each once; empty (every type) when not given."""
    if not value:
        return []
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise Invalid("types", N_("types must be a list of direct, group, public"))
    names = dict.fromkeys(t.strip().lower() for t in value if t.strip())
    return [valid_type(t, field="types") for t in names]


_PRIORITIES = frozenset(p.value for p in Priority)


def valid_priority(value: object) -> Priority:
    """One of urgent, high, normal, low (any case)."""
    word = value.strip().lower() if isinstance(value, str) else None
    if word in _PRIORITIES:
        return Priority(word)
    raise Invalid("priority", N_('unknown priority "{value}" — use urgent, high, normal or low'), value=value)


async def _team_id(value: object) -> int | None:
    """The id of the team named `value` (any case); None for no team (None or blank)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise Invalid("team", N_("team must be a team's name, or null for none"))
    name = " ".join(value.split())
    found = (await people_store.find_teams([name])).get(name.casefold()) if len(name) <= MAX_NAME else None
    if found is None:
        raise UnknownTeam(name, field="team")
    return found.id


def valid_enabled(value: object) -> bool:
    if not isinstance(value, bool):
        raise Invalid("enabled", N_("enabled must be true or false"))
    return value


def _action_of(item: object) -> Action:
    """One action from its JSON form `{"type": "tag", "tag": "closing"}` (or an Action)."""
    if isinstance(item, Action):
        return item
    if not isinstance(item, Mapping):
        raise Invalid("actions", N_("each action must be an object with a type"))
    t = item.get("type")
    if t not in ("tag", "topic", "resolve", "crm"):
        raise Invalid("actions", N_('unknown action "{type}" — use tag, topic, resolve or crm'), type=t)
    action_type = ActionType(t)
    key = VALUE_KEY[action_type]
    value = item.get(key)
    if value is not None and not isinstance(value, str):
        raise Invalid("actions", N_("{type} action: {key} must be a string"), type=t, key=key)
    return Action(action_type, value.strip() if isinstance(value, str) and value.strip() else None)


def _unique(actions: Iterable[Action]) -> list[Action]:
    """Duplicates dropped (names compared case-insensitively), order kept; one resolve at most."""
    unique: list[Action] = []
    seen: set[tuple[ActionType, str | None]] = set()
    for a in actions:
        k = (a.type, (a.value or "").casefold() or None)
        if k not in seen:
            seen.add(k)
            unique.append(a)
    if sum(1 for a in unique if a.type is ActionType.RESOLVE) > 1:
        raise Invalid("actions", N_("an automation resolves with one reason at most"))
    return unique


def _topic_summary(t: Topic) -> str:
    """`"Refunds" (high, team Billing)`."""
    return f'"{t.name}" ({t.priority.value}, ' + (f"team {t.team})" if t.team else "no team)")


# --- the service ---------------------------------------------------------------------------------


class Admin:
    """Automations and labels: the one write path, and the reads the front-ends format."""

    def __init__(self, settings: Settings, rules: RuleCache, *, live: Hub | None = None) -> None:
        self.settings = settings
        self.rules = rules
        # told of the conversations a topic's change reroutes, for the pages open on them
        self.live = live or Hub()

    # --- labels ----------------------------------------------------------------------------
    async def list_labels(self, kind: str) -> list[str]:
        return [lab.name for lab in await repo.list_labels(kind)]

    async def _new_label_name(self, kind: str, name: str) -> str:
        """The name a new label of `kind` is stored under; refused when taken or malformed."""
        noun = LABEL_KINDS[kind].noun
        name = " ".join(name.split())
        if not name:
            raise Missing("name", of=kind)
        if len(name) > MAX_NAME:
            raise Invalid("name", N_("{noun} names are at most {n} characters"), noun=noun, n=MAX_NAME)
        if '"' in name or "," in name:
            raise Invalid("name", N_("{noun} names cannot contain commas or double quotes"), noun=noun)
        if kind == "reason":
            plans.require_reasons(self.settings.organization)
        existing = await repo.find_label(kind, name)
        if existing is not None:
            raise _taken(noun, existing.name)
        return name

    async def add_label(self, kind: str, name: str, *, actor: str) -> str:
        if kind == "topic":
            return (await self.add_topic(name, actor=actor)).name
        name = await self._new_label_name(kind, name)
        try:
            async with repo.transaction():
                label = await repo.create_label(kind, name)
                await audit.note(actor, f"{kind}.created", f"{kind}:{label.name}", f'created {kind} "{label.name}"')
        except repo.IntegrityError:
            raise _taken(LABEL_KINDS[kind].noun, name) from None
        return str(label.name)

    @when_busy
    async def delete_label(self, kind: str, name: str, *, actor: str) -> str:
        noun = LABEL_KINDS[kind].noun
        label = await repo.find_label(kind, name.strip())
        if label is None:
            raise NotFound(kind, name.strip())
        users = await repo.automations_using(kind, label.name)
        if users:
            names = ", ".join(f'"{a.name}" (#{a.id})' for a in users)
            raise Conflict(
                N_('{noun} "{name}" is used by automation {names} — change or delete that automation first'),
                noun=noun,
                name=label.name,
                names=names,
            )
        rerouted: list[int] = []
        async with repo.transaction(topics="change" if kind == "topic" else None):
            await repo.delete_label(label)
            await audit.note(actor, f"{kind}.deleted", f"{kind}:{label.name}", f'deleted {kind} "{label.name}"')
            if kind == "topic":  # its conversations keep the name, but it no longer routes them
                rerouted = await self._reroute(label.name)
        self.live.publish_many(rerouted, changes.TOPICS)
        return str(label.name)

    @staticmethod
    async def _reroute(topic: str) -> list[int]:
        """Route the open conversations with `topic` again (in the caller's transaction); their ids."""
        ids = await queue_store.conversations_with_topic(topic)
        await queue_store.reroute(ids)
        return ids

    # --- topics: labels that also route and prioritize conversations ----------------------------------
    async def list_topics(self) -> list[Topic]:
        return await label_store.list_topics()

    async def find_topic(self, name: str) -> Topic:
        clean = " ".join(name.split())
        topic = await label_store.find_topic(clean) if len(clean) <= MAX_NAME else None  # longer: none is
        if topic is None:
            raise NotFound("topic", name.strip())
        return topic

    @when_busy
    async def add_topic(self, name: str, *, priority: object = None, team: object = None, actor: str) -> Topic:
        """A new topic, `normal` and routed to no team unless said. Open conversations that kept
        the name of a deleted topic of that name follow it."""
        name = await self._new_label_name("topic", name)
        rank = valid_priority(priority) if priority is not None else Priority.NORMAL
        team_id = await _team_id(team)
        try:
            async with repo.transaction(topics="change"):
                created = await label_store.create_topic(name, priority=rank, team_id=team_id)
                await audit.note(
                    actor, "topic.created", f"topic:{created.name}", f"created topic {_topic_summary(created)}"
                )
                rerouted = await self._reroute(name)
        except repo.IntegrityError:
            if await label_store.find_topic(name) is None:  # not the name: the team went meanwhile
                raise UnknownTeam(str(team), field="team") from None
            raise _taken(LABEL_KINDS["topic"].noun, name) from None
        self.live.publish_many(rerouted, changes.TOPICS)
        return created

    @when_busy
    async def change_topic(self, name: str, *, priority: object = None, team: object = ..., actor: str) -> Topic:
        """Change the topic's priority (None: unchanged) and team (a name, or None: no team; `...`:
        unchanged). Every open conversation with the topic follows, in the same transaction."""
        topic = await self.find_topic(name)
        rank = valid_priority(priority) if priority is not None else None
        team_id = await _team_id(team) if team is not ... else None
        try:
            async with repo.transaction(topics="change"):
                changed = await label_store.update_topic(
                    topic.id, priority=rank, team_id=team_id, clear_team=team is not ... and team_id is None
                )
                if changed is None:  # deleted meanwhile
                    raise NotFound("topic", topic.name)
                await audit.note(actor, "topic.updated", f"topic:{changed.name}", f"topic {_topic_summary(changed)}")
                rerouted = await self._reroute(changed.name)
        except repo.IntegrityError:  # the team was deleted meanwhile
            raise UnknownTeam(str(team), field="team") from None
        self.live.publish_many(rerouted, changes.TOPICS)
        return changed

    async def resolution_reason(self, reason: str | None) -> str | None:
        """The stored spelling of the resolution reason an agent gives when resolving (None: no
        reason). Refused when the organization turned reasons off or the reason does not exist."""
        if reason is None:
            return None
        plans.require_reasons(self.settings.organization)
        label = await repo.find_label("reason", reason.strip())
        if label is None:
            raise UnknownLabel("reason", reason, field="reason")
        return str(label.name)

    # --- automations -----------------------------------------------------------------------
    async def list_automations(self, *, after_id: int | None = None, limit: int | None = None) -> list[Automation]:
        """Automations by id; `after_id`/`limit` page through them."""
        return await repo.list_automations(after_id=after_id, limit=limit)

    async def find(self, ref: str | int) -> Automation:
        """An automation by id (int, "#12") or by name (case-insensitive)."""
        if isinstance(ref, int):
            found = await repo.get_automation(ref)
        else:
            ref = ref.strip()
            digits = ref[1:]
            if ref.startswith("#") and digits.isascii() and digits.isdigit() and len(ref) < 19:
                ref = int(digits)
                found = await repo.get_automation(ref)
            else:
                found = await repo.find_automation(ref)
        if found is None:
            raise NotFound("automation", ref)
        return found

    async def _validate(
        self,
        data: Mapping[str, Any],
        *,
        current_id: int | None = None,
        check_plan: bool = True,
        check_name_taken: bool = True,
    ) -> dict[str, Any]:
        """Every field checked, in the order a person reads them; returns the stored columns.
        Raises the first problem found. A preview (nothing saved) skips `check_name_taken`."""
        name = valid_name(data.get("name"))
        keywords = valid_keywords(data.get("keywords"))
        match = valid_match(data.get("match"))
        actions = await self._valid_actions(data.get("actions"))
        channels = valid_channels(data.get("channels"))
        types = valid_types(data.get("types"))
        enabled = valid_enabled(data.get("enabled", True))
        existing = await repo.find_automation(name) if check_name_taken else None
        if existing is not None and existing.id != current_id:
            raise Conflict(
                N_('an automation named "{name}" already exists (#{id}) — pick another name'),
                field="name",
                name=existing.name,
                id=existing.id,
            )
        if check_plan and (enabled or current_id is None):  # on create (enabled or not) and on enable
            plans.require(self.settings.organization, actions)
        return {
            "name": name,
            "key": name.casefold(),
            "keywords": keywords,
            "match": match.value,
            "actions": [a.to_json() for a in actions],
            "channels": channels,
            "types": [t.value for t in types],
            "enabled": enabled,
        }

    async def candidate(self, data: Mapping[str, Any], *, id: int = 0) -> Rule:
        """The engine's form of an automation given in its JSON form, checked as a create checks
        it (the same refusals), except that its name may be taken: nothing is saved."""
        columns = await self._validate(data, check_name_taken=False)
        return Rule(
            id=id,
            name=columns["name"],
            keywords=tuple(columns["keywords"]),
            match=MatchMode(columns["match"]),
            actions=tuple(Action.from_json(a) for a in columns["actions"]),
            channels=frozenset(columns["channels"]),
            types=frozenset(ConversationType(t) for t in columns["types"]),
        )

    async def _valid_actions(self, value: object) -> list[Action]:
        if not isinstance(value, list) or not value:
            raise Missing("actions", of="automation")
        return _unique([await self._label_named(_action_of(item)) for item in value])

    async def _label_named(self, action: Action) -> Action:
        """The action with the stored spelling of the tag/topic/reason it names, which must exist."""
        t = action.type
        if t is ActionType.CRM:
            target = action.value or "salesforce"
            if target.lower() != "salesforce":
                raise Invalid(
                    "actions", N_('unknown CRM "{target}" — the crm action supports salesforce'), target=target
                )
            return Action(t, "salesforce")
        if t is ActionType.RESOLVE and action.value is None:
            return action
        kind = _KIND_OF_ACTION[t]
        if action.value is None:
            raise Invalid("actions", N_("{type} action: name the {noun}"), type=t.value, noun=kind.noun)
        if kind.kind == "reason":
            plans.require(self.settings.organization, [action])
        label = await repo.find_label(kind.kind, action.value)
        if label is None:
            raise UnknownLabel(kind.kind, action.value, field="actions")
        return Action(t, label.name)

    async def create(self, data: Mapping[str, Any], *, actor: str) -> Automation:
        """A new automation from its JSON form (see `editable_fields`); enabled unless said.
        Its revision 1 ("created") and the audit entry commit with it."""
        columns = await self._validate(data)
        try:
            async with repo.transaction():
                created = await repo.create_automation(**columns, created_by=actor)
                await self._record(created, RevisionChange.CREATED, actor, f'created "{created.name}"')
                revision = await repo.bump_automations_revision()
        except repo.IntegrityError:
            raise _name_taken(columns["name"]) from None
        await self.rules.applied(revision, upsert=[created])
        log.info("automation #%s %r created by %s", created.id, created.name, actor)
        return created

    async def _record(self, a: Automation, change: RevisionChange, actor: str, summary: str) -> None:
        """The revision `a` is and its audit entry, in the change's transaction."""
        await repo.record_revision(a, change, actor)
        await audit.note(actor, f"automation.{change.value}", f"automation:{a.id}", summary)

    async def update(self, ref: str | int, changes: Mapping[str, Any], *, actor: str) -> Automation:
        """Merge `changes` (fields of the JSON form; read-only ones ignored) into the automation.
        A change that changes nothing keeps the automation as it is (no new revision); one that
        only flips `enabled` is recorded as enabled/disabled."""
        a = await self.find(ref)
        current = editable_fields(a)
        changes = {k: v for k, v in changes.items() if k not in READ_ONLY}
        unknown = sorted(set(changes) - set(current))
        if unknown:
            raise UnknownField(unknown[0])
        merged = {**current, **changes}
        # renaming an automation the plan no longer allows is fine; enabling it or changing its actions is not
        enabling = merged.get("enabled") is True and not a.enabled
        columns = await self._validate(merged, current_id=a.id, check_plan=enabling or "actions" in changes)
        after = {k: columns[k] for k in current}
        changed = [k for k in current if current[k] != after[k]]
        if not changed:
            return a
        if changed == ["enabled"]:
            change = RevisionChange.ENABLED if after["enabled"] else RevisionChange.DISABLED
            summary = f'{change.value} "{a.name}"'
        else:
            change, summary = RevisionChange.UPDATED, f'updated "{after["name"]}": {", ".join(changed)}'
        return await self._save(a, columns, change, actor, summary)

    async def _save(
        self, a: Automation, columns: Mapping[str, Any], change: RevisionChange, actor: str, summary: str
    ) -> Automation:
        try:
            async with repo.transaction():
                saved = await repo.update_automation(a.id, **columns)
                if saved is None:  # deleted meanwhile
                    raise NotFound("automation", a.id)
                await self._record(saved, change, actor, summary)
                revision = await repo.bump_automations_revision()
        except repo.IntegrityError:
            raise _name_taken(columns["name"]) from None
        await self.rules.applied(revision, upsert=[saved])
        return saved

    async def set_enabled(self, ref: str | int, enabled: bool, *, actor: str) -> tuple[Automation, bool]:
        """Returns the automation and whether anything changed."""
        a = await self.find(ref)
        if enabled:
            plans.require(self.settings.organization, a.actions)
        if a.enabled == enabled:
            return a, False
        change = RevisionChange.ENABLED if enabled else RevisionChange.DISABLED
        async with repo.transaction():
            saved = await repo.set_automation_enabled(a.id, enabled)
            if saved is None:  # deleted meanwhile
                raise NotFound("automation", a.id)
            await self._record(saved, change, actor, f'{change.value} "{saved.name}"')
            revision = await repo.bump_automations_revision()
        await self.rules.applied(revision, upsert=[saved])
        log.info("automation #%s %r %s by %s", saved.id, saved.name, "enabled" if enabled else "disabled", actor)
        return saved, True

    async def delete(self, ref: str | int, *, actor: str) -> Automation:
        """Delete the automation; its runs and revisions stay (the last one: "deleted")."""
        a = await self.find(ref)
        async with repo.transaction():
            gone = await repo.delete_automation(a.id)
            if gone is None:  # deleted meanwhile
                raise NotFound("automation", a.id)
            await self._record(gone, RevisionChange.DELETED, actor, f'deleted "{gone.name}"')
            revision = await repo.bump_automations_revision()
        await self.rules.applied(revision, remove=[a.id])
        log.info("automation #%s %r deleted by %s", a.id, a.name, actor)
        return gone

    async def revisions(
        self, automation_id: int, *, before: int | None = None, limit: int = 50
    ) -> list[AutomationRevision]:
        """Newest first, also for a deleted automation; NotFound for an id that never existed."""
        found = await repo.list_revisions(automation_id, before=before, limit=limit)
        if not found and before is None:
            raise NotFound("automation", automation_id)
        return found

    async def rollback(self, ref: str | int, revision: int, *, actor: str) -> Automation:
        """Restore the name, keywords, match, actions and scope of `revision` as a new revision
        ("rolled_back"); `enabled` stays as it is. Validated as an update (a name taken since, a
        label deleted since: refused, nothing changed). A deleted automation cannot be rolled
        back (NotFound)."""
        a = await self.find(ref)
        old = await repo.get_revision(a.id, revision) if 0 < revision <= a.revision else None
        if old is None:
            raise RevisionNotFound(a.id, revision)
        merged = {**editable_fields(a), **{k: old.automation[k] for k in RESTORED if k in old.automation}}
        columns = await self._validate(merged, current_id=a.id, check_plan=a.enabled)
        return await self._save(
            a, columns, RevisionChange.ROLLED_BACK, actor, f'rolled "{columns["name"]}" back to revision {revision}'
        )

    async def test(self, text: str, *, channel: str | None = None, type: str | None = None) -> TestResult:
        """What would fire on `text` as a conversation's first message, and do. Changes nothing."""
        if not text.strip():
            raise Missing("text", of="test")
        if channel is not None and self.settings.channel(channel) is None:
            raise _unknown_channel("channel", channel, [c.name for c in self.settings.channels])
        conversation_type = valid_type(type, field="type") if type is not None else None
        org = self.settings.organization
        rules, skipped = [], []
        for a in await repo.enabled_automations():
            why = plans.refusal(org, a.actions)
            if why is not None:
                skipped.append((a.name, why))
                continue
            r = rule_of(a)
            # An omitted channel or type means "any": scope on it is not checked.
            if channel is None and r.channels:
                r = Rule(id=r.id, name=r.name, keywords=r.keywords, match=r.match, actions=r.actions, types=r.types)
            if conversation_type is None and r.types:
                r = Rule(
                    id=r.id, name=r.name, keywords=r.keywords, match=r.match, actions=r.actions, channels=r.channels
                )
            rules.append(r)
        compiled = await asyncio.to_thread(RuleSet, rules)  # thousands of rules: not on the event loop
        ev = compiled.evaluate(
            text=text,
            channel=channel or "",
            type=conversation_type or ConversationType.DIRECT,
            first_message=True,
            seen=frozenset(),
        )
        return TestResult(ev, tuple(skipped))
