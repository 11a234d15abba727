"""Automations, tags, topics and resolution reasons: validation, plan gating and changes.

The `/automation` chat command and the JSON API both go through this service; they only parse
and format. Every refusal names the problem and the way out.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bot import plans
from bot.config import Settings
from bot.domain import VALUE_KEY, Action, ActionType, ConversationType, MatchMode
from bot.engine import Evaluation, Rule, RuleSet, keyword_key, parse_keywords
from bot.store import repo

log = logging.getLogger("inbox.admin")

LABEL_KINDS = {"tag": "tag", "topic": "topic", "reason": "resolution reason"}
LABEL_COMMANDS = {"tag": "tags", "topic": "topics", "reason": "reasons"}
MAX_NAME = 100
MAX_KEYWORDS = 100
MAX_KEYWORD_LEN = 200
_QUOTES = str.maketrans({"“": '"', "”": '"', "„": '"'})
MISSING_NAME = 'give the automation a name, e.g. /automation create "Au revoir" keywords="au revoir, bye" resolve'


class AdminError(Exception):
    """A refusal a user sees. `status` is the HTTP status the API answers with."""

    status = 400

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class Invalid(AdminError):
    status = 400


class NotFound(AdminError):
    status = 404


class Conflict(AdminError):
    status = 409


class PlanRefused(AdminError):
    status = 403


# --- conversion between rows and engine rules ------------------------------------------------


def actions_from_json(items: Iterable[Mapping[str, Any]]) -> tuple[Action, ...]:
    return tuple(Action.from_json(item) for item in items)


def rule_from_row(a: repo.Automation) -> Rule:
    return Rule(
        id=a.id,
        name=a.name,
        keywords=tuple(a.keywords),
        match=MatchMode(a.match),
        actions=a.actions,
        channels=frozenset(a.channels or ()),
        types=frozenset(ConversationType(t) for t in a.types or ()),
    )


def editable_fields(a: repo.Automation) -> dict[str, Any]:
    """The fields an admin sets, as the API shows them and PATCH merges into."""
    return {
        "name": a.name,
        "keywords": list(a.keywords),
        "match": a.match.value,
        "actions": [action.to_json() for action in a.actions],
        "channels": list(a.channels or []),
        "types": [t.value for t in a.types],
        "enabled": a.enabled,
    }


def plan_problem(a: repo.Automation, settings: Settings) -> str | None:
    """Why the current plan does not allow this automation (it is skipped at run time), or None."""
    return plans.refusal(settings.organization, a.actions)


class RuleCache:
    """The compiled rules of the enabled automations the plan allows; reloaded when the
    automations revision in the store changes (checked every `interval`, so a change made on any
    worker takes effect everywhere within about a second)."""

    def __init__(self, settings: Settings, *, interval: float = 0.5) -> None:
        self._settings = settings
        self._interval = interval
        self._ruleset = RuleSet([])
        self._revision = -1
        self._lock = asyncio.Lock()
        self._stop = asyncio.Event()
        self.on_reload: list[Any] = []

    def current(self) -> RuleSet:
        return self._ruleset

    async def refresh(self, *, force: bool = False) -> bool:
        async with self._lock:
            revision = await repo.automations_revision()
            if revision == self._revision and not force:
                return False
            rows = await repo.enabled_automations()
            org = self._settings.organization
            allowed = [a for a in rows if plans.refusal(org, a.actions) is None]
            skipped = len(rows) - len(allowed)
            if skipped:
                log.warning("%d enabled automation(s) skipped: the plan no longer allows them", skipped)
            self._ruleset = RuleSet(rule_from_row(a) for a in allowed)
            self._revision = revision
            for cb in self.on_reload:
                cb(len(self._ruleset))
            return True

    def stop(self) -> None:
        self._stop.set()

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
    skipped: tuple[tuple[str, str], ...]  # (automation name, why) for enabled ones the plan refuses


# --- the service -------------------------------------------------------------------------------


class Admin:
    def __init__(self, settings: Settings, rules: RuleCache) -> None:
        self.settings = settings
        self.rules = rules

    async def _changed(self) -> None:
        await repo.bump_automations_revision()
        await self.rules.refresh()

    # --- labels ----------------------------------------------------------------------------
    async def list_labels(self, kind: str) -> list[str]:
        return [lab.name for lab in await repo.list_labels(kind)]

    async def add_label(self, kind: str, name: str) -> str:
        what = LABEL_KINDS[kind]
        name = " ".join(name.split())
        if not name:
            raise Invalid(f"give the {what}'s name, e.g. /automation {LABEL_COMMANDS[kind]} add billing", field="name")
        if len(name) > MAX_NAME:
            raise Invalid(f"{what} names are at most {MAX_NAME} characters", field="name")
        if '"' in name or "," in name:
            raise Invalid(f"{what} names cannot contain commas or double quotes", field="name")
        if kind == "reason" and not self.settings.organization.resolution_reasons:
            raise PlanRefused("resolution reasons are turned off (resolution_reasons = false in [organization])")
        existing = await repo.find_label(kind, name)
        if existing is not None:
            raise Conflict(f'{what} "{existing.name}" already exists', field="name")
        try:
            label = await repo.create_label(kind, name)
        except repo.IntegrityError:
            raise Conflict(f'{what} "{name}" already exists', field="name") from None
        return label.name

    async def delete_label(self, kind: str, name: str) -> str:
        what = LABEL_KINDS[kind]
        label = await repo.find_label(kind, name.strip())
        if label is None:
            raise NotFound(f'unknown {what} "{name.strip()}" — see /automation {LABEL_COMMANDS[kind]}')
        users = await repo.automations_using(kind, label.name)
        if users:
            names = ", ".join(f'"{a.name}" (#{a.id})' for a in users)
            raise Conflict(
                f'{what} "{label.name}" is used by automation {names} — change or delete that automation first'
            )
        await repo.delete_label(label)
        return label.name

    # --- automations -----------------------------------------------------------------------
    async def list_automations(self) -> list[repo.Automation]:
        return await repo.list_automations()

    async def find(self, ref: str | int) -> repo.Automation:
        """An automation by id (int, "#12") or by name (case-insensitive)."""
        if isinstance(ref, int):
            found = await repo.get_automation(ref)
            label = f"#{ref}"
        else:
            ref = ref.strip()
            if ref.startswith("#") and ref[1:].isascii() and ref[1:].isdigit() and len(ref) < 19:
                found = await repo.get_automation(int(ref[1:]))
            else:
                found = await repo.find_automation(ref)
            label = ref if ref.startswith("#") else f'"{ref}"'
        if found is None:
            raise NotFound(f"no automation {label} — see /automation list")
        return found

    async def _validate(
        self, data: Mapping[str, Any], *, current_id: int | None = None, check_plan: bool = True
    ) -> dict[str, Any]:
        """Check every field; returns the row's columns. Raises the first problem found."""
        name = data.get("name")
        if not isinstance(name, str) or not name.strip():
            raise Invalid(MISSING_NAME, field="name")
        name = " ".join(name.split())
        if len(name) > MAX_NAME:
            raise Invalid(f"automation names are at most {MAX_NAME} characters", field="name")
        if name.startswith("#"):
            raise Invalid("automation names cannot start with # (that is how #ID refers to one)", field="name")

        raw_kw = data.get("keywords")
        if raw_kw is None or (
            not isinstance(raw_kw, str) and not (isinstance(raw_kw, list) and all(isinstance(k, str) for k in raw_kw))
        ):
            raise Invalid('keywords: give at least one keyword, e.g. keywords="au revoir, bye"', field="keywords")
        if isinstance(raw_kw, str) and raw_kw.translate(_QUOTES).count('"') % 2:
            raise Invalid('keywords: a quote (") is not closed — close it and send again', field="keywords")
        keywords = parse_keywords(raw_kw)
        if not keywords or not any(keyword_key(k) for k in keywords):
            raise Invalid('keywords: give at least one keyword, e.g. keywords="au revoir, bye"', field="keywords")
        if len(keywords) > MAX_KEYWORDS:
            raise Invalid(f"keywords: at most {MAX_KEYWORDS} keywords (got {len(keywords)})", field="keywords")
        long = next((k for k in keywords if len(k) > MAX_KEYWORD_LEN), None)
        if long is not None:
            raise Invalid(f'keywords: "{long[:40]}…" is longer than {MAX_KEYWORD_LEN} characters', field="keywords")

        match = data.get("match", "any") or "any"
        if match not in ("any", "all"):
            raise Invalid(f'match must be "any" or "all", not "{match}"', field="match")

        actions = await self._validate_actions(data.get("actions"))

        channels = data.get("channels") or []
        if not isinstance(channels, list) or not all(isinstance(c, str) for c in channels):
            raise Invalid("channels must be a list of channel names", field="channels")
        known = [c.name for c in self.settings.channels]
        channels = list(dict.fromkeys(c.strip() for c in channels if c.strip()))
        for c in channels:
            if c not in known:
                raise Invalid(
                    f'unknown channel "{c}" — configured channels: {", ".join(known) or "none"}', field="channels"
                )
        types = data.get("types") or []
        if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
            raise Invalid("types must be a list of direct, group, public", field="types")
        types = list(dict.fromkeys(t.strip().lower() for t in types if t.strip()))
        for t in types:
            if t not in ("direct", "group", "public"):
                raise Invalid(f'unknown conversation type "{t}" — use direct, group or public', field="types")

        enabled = data.get("enabled", True)
        if not isinstance(enabled, bool):
            raise Invalid("enabled must be true or false", field="enabled")

        existing = await repo.find_automation(name)
        if existing is not None and existing.id != current_id:
            raise Conflict(
                f'an automation named "{existing.name}" already exists (#{existing.id}) — pick another name',
                field="name",
            )
        if check_plan and (enabled or current_id is None):  # on create (enabled or not) and on enable
            self._check_plan(actions)
        return {
            "name": name,
            "key": name.casefold(),
            "keywords": keywords,
            "match": match,
            "actions": [a.to_json() for a in actions],
            "channels": channels,
            "types": types,
            "enabled": enabled,
        }

    def _check_plan(self, actions: Sequence[Action]) -> None:
        why = plans.refusal(self.settings.organization, actions)
        if why is not None:
            raise PlanRefused(why)

    async def _validate_actions(self, raw: Any) -> list[Action]:
        if not isinstance(raw, list) or not raw:
            raise Invalid("give at least one action: tags=…, topics=…, resolve or crm=salesforce", field="actions")
        actions: list[Action] = []
        for item in raw:
            if isinstance(item, Action):
                action = item
            elif isinstance(item, Mapping):
                t = item.get("type")
                if t not in ("tag", "topic", "resolve", "crm"):
                    raise Invalid(f'unknown action "{t}" — use tag, topic, resolve or crm', field="actions")
                key = VALUE_KEY[ActionType(t)]
                value = item.get(key)
                if value is not None and not isinstance(value, str):
                    raise Invalid(f"{t} action: {key} must be a string", field="actions")
                action = Action(ActionType(t), value.strip() if isinstance(value, str) and value.strip() else None)
            else:
                raise Invalid("each action must be an object with a type", field="actions")
            actions.append(await self._resolve_action(action))
        # drop duplicates, keep order
        unique: list[Action] = []
        seen: set[tuple[ActionType, str | None]] = set()
        for a in actions:
            k = (a.type, (a.value or "").casefold() or None)
            if k not in seen:
                seen.add(k)
                unique.append(a)
        if sum(1 for a in unique if a.type is ActionType.RESOLVE) > 1:
            raise Invalid("an automation resolves with one reason at most", field="actions")
        return unique

    async def _resolve_action(self, action: Action) -> Action:
        """Check the named tag/topic/reason exists; use its stored spelling."""
        t = action.type
        if t is ActionType.CRM:
            target = action.value or "salesforce"
            if target.lower() != "salesforce":
                raise Invalid(f'unknown CRM "{target}" — the crm action supports salesforce', field="actions")
            return Action(t, "salesforce")
        if t is ActionType.RESOLVE and action.value is None:
            return action
        kind = {ActionType.TAG: "tag", ActionType.TOPIC: "topic", ActionType.RESOLVE: "reason"}[t]
        if action.value is None:
            raise Invalid(f"{t.value} action: name the {LABEL_KINDS[kind]}", field="actions")
        if kind == "reason" and not self.settings.organization.resolution_reasons:
            self._check_plan([action])
        label = await repo.find_label(kind, action.value)
        if label is None:
            v = action.value
            raise Invalid(
                f'unknown {LABEL_KINDS[kind]} "{v}" — create it with /automation {LABEL_COMMANDS[kind]} add {v}',
                field="actions",
            )
        return Action(t, label.name)

    async def create(self, data: Mapping[str, Any], *, actor: str | None = None) -> repo.Automation:
        fields = await self._validate(data)
        try:
            async with repo.transaction():
                created = await repo.create_automation(**fields, created_by=actor)
                await repo.bump_automations_revision()
        except repo.IntegrityError:
            raise Conflict(
                f'an automation named "{fields["name"]}" already exists — pick another name', field="name"
            ) from None
        await self.rules.refresh()
        log.info("automation #%s %r created by %s", created.id, created.name, actor)
        return created

    async def update(self, ref: str | int, changes: Mapping[str, Any]) -> repo.Automation:
        a = await self.find(ref)
        current = editable_fields(a)
        # read-only fields are ignored, so a client may send back what GET gave it
        changes = {k: v for k, v in changes.items() if k not in ("id", "problem", "created_at", "updated_at")}
        unknown = set(changes) - set(current)
        if unknown:
            raise Invalid(f"unknown field(s): {', '.join(sorted(unknown))}", field=sorted(unknown)[0])
        merged = {**current, **changes}
        # renaming an automation the plan no longer allows is fine; enabling it or changing its actions is not
        enabling = merged.get("enabled") is True and not a.enabled
        fields = await self._validate(merged, current_id=a.id, check_plan=enabling or "actions" in changes)
        try:
            async with repo.transaction():
                updated = await repo.update_automation(a.id, **fields)
                await repo.bump_automations_revision()
        except repo.IntegrityError:
            raise Conflict(
                f'an automation named "{fields["name"]}" already exists — pick another name', field="name"
            ) from None
        if updated is None:
            raise NotFound(f"no automation #{a.id} — see /automation list")
        await self.rules.refresh()
        return updated

    async def set_enabled(self, ref: str | int, enabled: bool) -> tuple[repo.Automation, bool]:
        """Returns the automation and whether anything changed."""
        a = await self.find(ref)
        if enabled:
            self._check_plan(a.actions)
        if a.enabled == enabled:
            return a, False
        async with repo.transaction():
            changed = await repo.set_automation_enabled(a.id, enabled)
            await repo.bump_automations_revision()
        if changed is None:
            raise NotFound(f"no automation #{a.id} — see /automation list")
        await self.rules.refresh()
        return changed, True

    async def delete(self, ref: str | int) -> repo.Automation:
        a = await self.find(ref)
        async with repo.transaction():
            await repo.delete_automation(a)
            await repo.bump_automations_revision()
        await self.rules.refresh()
        return a

    async def test(self, text: str, *, channel: str | None = None, type: str | None = None) -> TestResult:
        """What would fire on `text` as a conversation's first message, and do. Changes nothing."""
        if not isinstance(text, str) or not text.strip():
            raise Invalid('give the message to test, e.g. /automation test "Au revoir !"', field="text")
        if channel is not None and self.settings.channel(channel) is None:
            known = ", ".join(c.name for c in self.settings.channels) or "none"
            raise Invalid(f'unknown channel "{channel}" — configured channels: {known}', field="channel")
        if type is not None and type not in ("direct", "group", "public"):
            raise Invalid(f'unknown conversation type "{type}" — use direct, group or public', field="type")
        rows = await repo.enabled_automations()
        org = self.settings.organization
        rules, skipped = [], []
        for a in rows:
            why = plans.refusal(org, a.actions)
            if why is not None:
                skipped.append((a.name, why))
                continue
            r = rule_from_row(a)
            # An omitted channel or type means "any": scope on it is not checked.
            if channel is None and r.channels:
                r = Rule(id=r.id, name=r.name, keywords=r.keywords, match=r.match, actions=r.actions, types=r.types)
            if type is None and r.types:
                r = Rule(
                    id=r.id, name=r.name, keywords=r.keywords, match=r.match, actions=r.actions, channels=r.channels
                )
            rules.append(r)
        ev = RuleSet(rules).evaluate(
            text=text,
            channel=channel or "",
            type=ConversationType(type or "direct"),
            first_message=True,
            seen=frozenset(),
        )
        return TestResult(ev, tuple(skipped))
