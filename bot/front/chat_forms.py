"""The chat forms: what the Slack modal and the list buttons (Slack and Telegram) show and do,
whatever the platform. Platform-independent, like `bot.front.commands`: the connectors turn these
records into Block Kit or inline keyboards and back.

A button carries an automation's id and the version it showed (its `updated_at`), never its name:
a press on a button that is out of date (the automation deleted or changed since) answers so and
changes nothing, and a press repeated does the right thing once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from bot import plans
from bot.domain import Action, ActionType, Automation, ConversationType
from bot.errors import N_, InboxError, Missing, NotFound, PlanRefused, TurnedOff, UnknownLabel
from bot.front import views
from bot.front.commands import CommandRunner, describe
from bot.i18n import Wording
from bot.services.admin import Admin

Verb = Literal["enable", "disable", "delete"]
VERBS: tuple[Verb, ...] = ("enable", "disable", "delete")

# The form's fields, in the order a person reads them (the web form's, in chat).
FIELDS = ("name", "match", "keywords", "tags", "topics", "resolve", "reason", "crm", "channels", "types")
TYPE_LABELS = {
    ConversationType.DIRECT: N_("Direct messages"),
    ConversationType.GROUP: N_("Groups"),
    ConversationType.PUBLIC: N_("Public channels"),
}
LABELS = {
    "name": N_("Name"),
    "match": N_("Match"),
    "keywords": N_("Keywords"),
    "tags": N_("Tags"),
    "topics": N_("Topics"),
    "resolve": N_("Resolve the conversation"),
    "reason": N_("Resolution reason"),
    "crm": N_("Send to Salesforce"),
    "channels": N_("Channels"),
    "types": N_("Conversation types"),
}
HINTS = {
    "keywords": N_("Comma-separated; a phrase in quotes may hold a comma."),
    "channels": N_("None picked: every channel."),
    "types": N_("None picked: every type."),
}


def version_of(a: Automation) -> int:
    """The automation as a button saw it: its last change, in microseconds."""
    return int(a.updated_at.timestamp() * 1_000_000)


@dataclass(frozen=True, slots=True)
class Item:
    """One automation in a chat list: its line of text and what its buttons carry."""

    id: int
    name: str
    line: str
    enabled: bool
    version: int


@dataclass(frozen=True, slots=True)
class Choices:
    """What the automation form offers: existing names to pick from, and what the plan lacks."""

    tags: tuple[str, ...]
    topics: tuple[str, ...]
    reasons: tuple[str, ...]
    channels: tuple[str, ...]
    types: tuple[ConversationType, ...]
    unavailable: Mapping[str, str]  # field → why (in the reader's language)


@dataclass(frozen=True, slots=True)
class Submission:
    """The form as submitted, in platform-independent terms."""

    name: str = ""
    match: str = "any"
    keywords: str = ""
    tags: Sequence[str] = ()
    topics: Sequence[str] = ()
    resolve: bool = False
    reason: str | None = None
    crm: bool = False
    channels: Sequence[str] = ()
    types: Sequence[str] = ()

    def data(self) -> dict[str, Any]:
        """The automation's JSON form, as the admin service takes it."""
        return views.automation_fields(self)


@dataclass(frozen=True, slots=True)
class Saved:
    """The automation the form created, and the sentence that says what it does."""

    automation: Automation
    text: str


@dataclass(frozen=True, slots=True)
class Refused:
    """Per-field errors: field (one of FIELDS) → what is wrong, in the reader's language."""

    errors: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a button press did (`changed`) and what to tell the presser."""

    text: str
    changed: bool


_ACTION_FIELD = {
    ActionType.TAG: "tags",
    ActionType.TOPIC: "topics",
    ActionType.RESOLVE: "resolve",
    ActionType.CRM: "crm",
}
_LABEL_FIELD = {"tag": "tags", "topic": "topics", "reason": "reason"}


def field_of(exc: InboxError) -> str:
    """The form field an error of the service belongs to (the first field when it names none)."""
    match exc:
        case UnknownLabel(kind=kind) if kind in _LABEL_FIELD:
            return _LABEL_FIELD[kind]
        case Missing(field="actions"):
            return "tags"
        case PlanRefused(feature=feature):
            return next((f for t, f in _ACTION_FIELD.items() if t.value == feature), "name")
        case TurnedOff():
            return "reason"
    if exc.field == "actions":
        return "tags"
    return exc.field if exc.field in FIELDS else "name"


class ChatForms:
    """The chat forms' reads and changes, through the admin service (the one write path)."""

    def __init__(self, admin: Admin, commands: CommandRunner) -> None:
        self.admin = admin
        self.commands = commands

    def wording(self, lang: str | None) -> Wording:
        """The catalogue in `lang`, else in the organization's language."""
        return self.commands.wording(lang)

    # --- the list with buttons ---------------------------------------------------------------
    async def items(self, _: Wording) -> list[Item]:
        """Every automation, with the line `/automation list` shows for it."""
        return [self._item(a, _) for a in await self.admin.list_automations()]

    def _item(self, a: Automation, _: Wording) -> Item:
        return Item(a.id, a.name, self.commands.line(a, _), a.enabled, version_of(a))

    async def press(self, verb: str, automation_id: int, version: int, *, actor: str, _: Wording) -> Outcome:
        """Enable, disable or delete from a button that showed `version` of the automation."""
        if verb not in VERBS:
            return Outcome(_("This button is no longer supported — see /automation list"), False)
        try:
            a = await self.admin.find(automation_id)
        except NotFound:
            return Outcome(_("Automation #{id} no longer exists — see /automation list", id=automation_id), False)
        name = f'"{a.name}"'
        if verb == "enable" and a.enabled:
            return Outcome(_("#{id} {name} is already enabled.", id=a.id, name=name), False)
        if verb == "disable" and not a.enabled:
            return Outcome(_("#{id} {name} is already disabled.", id=a.id, name=name), False)
        if version_of(a) != version:
            return Outcome(
                _(
                    "#{id} {name} changed since this list was shown; nothing was done — see /automation list",
                    id=a.id,
                    name=name,
                ),
                False,
            )
        try:
            if verb == "delete":
                await self.admin.delete(a.id, actor=actor)
                return Outcome(_("Deleted automation #{id} {name}. Its past runs are kept.", id=a.id, name=name), True)
            saved, changed = await self.admin.set_enabled(a.id, verb == "enable", actor=actor)
        except NotFound:
            return Outcome(_("Automation #{id} no longer exists — see /automation list", id=automation_id), False)
        except InboxError as exc:
            return Outcome(describe(exc, _), False)
        if verb == "enable":
            return Outcome(_("Enabled automation #{id} {name}.", id=saved.id, name=name), changed)
        return Outcome(_("Disabled automation #{id} {name}.", id=saved.id, name=name), changed)

    async def confirm_text(self, automation_id: int, _: Wording) -> str | None:
        """The question before a delete; None when the automation no longer exists."""
        try:
            a = await self.admin.find(automation_id)
        except NotFound:
            return None
        return _('Delete automation #{id} "{name}"? Its past runs are kept.', id=a.id, name=a.name)

    # --- the form ----------------------------------------------------------------------------
    async def choices(self, _: Wording) -> Choices:
        """What the form offers now; options the plan lacks are named with what they need."""
        settings = self.admin.settings
        org = settings.organization
        unavailable: dict[str, str] = {}
        gated = (
            (Action(ActionType.TOPIC, "x"), "topics"),
            (Action(ActionType.RESOLVE), "resolve"),
            (Action(ActionType.CRM, "salesforce"), "crm"),
        )
        for action, fld in gated:
            why = plans.refusal(org, [action])
            if why is not None:
                unavailable[fld] = _unavailable(why, _)
        if "resolve" in unavailable:
            unavailable["reason"] = unavailable["resolve"]
        else:
            why = plans.refusal(org, [Action(ActionType.RESOLVE, "x")])
            if why is not None:
                unavailable["reason"] = _unavailable(why, _)
        return Choices(
            tags=tuple(await self.admin.list_labels("tag")),
            topics=tuple(t.name for t in await self.admin.list_topics()) if "topics" not in unavailable else (),
            reasons=tuple(await self.admin.list_labels("reason")) if "reason" not in unavailable else (),
            channels=tuple(c.name for c in settings.channels),
            types=tuple(ConversationType),
            unavailable=unavailable,
        )

    async def submit(self, form: Submission, *, actor: str, _: Wording) -> Saved | Refused:
        """Save the form as a new automation (enabled), or say what is wrong, field by field."""
        try:
            a = await self.admin.create(form.data(), actor=actor)
        except InboxError as exc:
            return Refused({field_of(exc): describe(exc, _)})
        return Saved(a, self.commands.created(a, _))


def _unavailable(why: InboxError, _: Wording) -> str:
    if isinstance(why, PlanRefused):
        return _("not in your plan (needs {needs})", needs=why.needs)
    if isinstance(why, TurnedOff):
        return _("turned off ({setting} = false)", setting=why.setting)
    return describe(why, _)
