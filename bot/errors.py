"""One error tree for every refusal a person sees, whichever front-end they use.

An error says WHAT is wrong, in the terms of the product: the field, the name, the kind of label,
the plan needed. It carries no HTTP status and no front-end's wording: the JSON API maps the tree
to statuses and to its own words (`bot/front/api.py`), the `/automation` chat command to its own
(`bot/front/commands.py`). `str(error)` is a plain description, for logs and for a front-end that
has nothing better to say.

    InboxError
    ├── Invalid(field)            a value cannot be used
    │   ├── TooLarge(limit)       a request larger than the limit
    │   ├── Missing(field, of)    a required value was not given
    │   ├── UnknownLabel(kind)    a tag, topic, resolution reason or team that does not exist
    │   ├── UnknownTeam(name)     a team that does not exist
    │   └── UnknownField(name)    a field or query parameter the request may not hold
    ├── NotFound(what, ref)       nothing of that kind by that id or name
    │   └── ConversationNotFound
    ├── Conflict                  not in the current state (a name taken, a label in use, …)
    │   └── ConversationConflict
    ├── Forbidden                 not allowed by the organization's settings
    │   ├── PlanRefused(feature, plan, needs)
    │   └── TurnedOff(feature, setting)
    └── SignInLocked(until)       too many failed sign-ins for one email
"""

from __future__ import annotations

from datetime import datetime

__all__ = [
    "N_",
    "Conflict",
    "ConversationConflict",
    "ConversationNotFound",
    "Forbidden",
    "InboxError",
    "Invalid",
    "Missing",
    "NotFound",
    "PlanRefused",
    "RevisionNotFound",
    "SignInLocked",
    "Term",
    "TooLarge",
    "TurnedOff",
    "UnknownField",
    "UnknownLabel",
    "UnknownTeam",
]


def N_(message: str) -> str:
    """Marks an English text for the wording catalogue without translating it here: a front-end
    that speaks the reader's language translates it later (`make messages` finds it by this name)."""
    return message


class Term(str):
    """A word from the catalogue used as a value in an error's text ("tag", "resolution reason"):
    a front-end that translates the text translates the word too."""

    __slots__ = ()


class InboxError(Exception):
    """A refusal a person sees. `field` names the input at fault, when there is one.

    `detail` is English; when `values` are given it is a template (`"at most {n} keywords"`)
    filled with them. A front-end that speaks another language translates `template` (marked with
    `N_` where it is written) and fills it with `values` itself."""

    field: str | None = None

    def __init__(self, detail: str, *, field: str | None = None, **values: object) -> None:
        text = detail.format(**values) if values else detail
        super().__init__(text)
        self.detail = text
        self.template = detail
        self.values = values
        self.field = field

    def __str__(self) -> str:
        return self.detail


# --- invalid input ------------------------------------------------------------------------------


class Invalid(InboxError):
    """The value given for `field` (None: the request as a whole) cannot be used; `detail` says why."""

    def __init__(self, field: str | None, detail: str, **values: object) -> None:
        super().__init__(detail, field=field, **values)


class TooLarge(Invalid):
    """The request is larger than `limit` bytes."""

    def __init__(self, limit: int) -> None:
        super().__init__(None, f"the request is larger than {limit} bytes")
        self.limit = limit


class Missing(Invalid):
    """A required value was not given (or was blank): the `field` of `of` ("automation", "tag", …)."""

    def __init__(self, field: str, *, of: str) -> None:
        super().__init__(field, f"give the {of}'s {field}")
        self.of = of


class UnknownLabel(Invalid):
    """A tag, topic, resolution reason or team (`kind`: tag, topic, reason, team) named `name` does
    not exist."""

    def __init__(self, kind: str, name: str, *, field: str) -> None:
        super().__init__(field, f'unknown {kind} "{name}"')
        self.kind = kind
        self.name = name


class UnknownTeam(Invalid):
    """No team is named `name` (compared case-insensitively)."""

    def __init__(self, name: str, *, field: str) -> None:
        super().__init__(field, f'unknown team "{name}"')
        self.name = name


class UnknownField(Invalid):
    """The request holds a field (`where="field"`) or a query parameter (`where="parameter"`) it
    may not hold; `name` is its path, e.g. `tagz` or `actions[0].colour`."""

    def __init__(self, name: str, *, where: str = "field") -> None:
        super().__init__(name.split(".", 1)[0].split("[", 1)[0], f'unknown {where} "{name}"')
        self.name = name
        self.where = where


# --- not found, conflicts --------------------------------------------------------------------------


class NotFound(InboxError):
    """Nothing of kind `what` (automation, conversation, tag, topic, reason, job) is `ref`: an id
    (int) or a name (str)."""

    def __init__(self, what: str, ref: int | str) -> None:
        self.what = what
        self.ref = ref
        super().__init__(f"no {what} {self.shown}")

    @property
    def shown(self) -> str:
        """The reference as a person writes it: `#12` for an id, a name in quotes."""
        if isinstance(self.ref, int):
            return f"#{self.ref}"
        return self.ref if self.ref.startswith("#") else f'"{self.ref}"'


class ConversationNotFound(NotFound):
    def __init__(self, conversation_id: int) -> None:
        super().__init__("conversation", conversation_id)


class RevisionNotFound(NotFound):
    """Automation `automation_id` has no revision `revision`."""

    def __init__(self, automation_id: int, revision: int) -> None:
        super().__init__("revision", revision)
        self.automation_id = automation_id
        self.revision = revision


class Conflict(InboxError):
    """The change cannot be made in the current state: a name taken, a label in use, …"""


class ConversationConflict(Conflict):
    """The change cannot be made in the conversation's current state (already resolved, …)."""


# --- not allowed -------------------------------------------------------------------------------------


class Forbidden(InboxError):
    """The organization's plan or settings do not allow it."""


class PlanRefused(Forbidden):
    """The plan (`plan`, e.g. "business") does not include `feature` (an action type); `needs`
    names the plan that does."""

    def __init__(self, *, feature: str, plan: str, needs: str) -> None:
        super().__init__(f'plan "{plan}" does not include {feature} (needs {needs})')
        self.feature = feature
        self.plan = plan
        self.needs = needs


class TurnedOff(Forbidden):
    """`feature` (e.g. "resolution reasons") is turned off by `setting` = false in `section` of the
    config. `in_action`: refused as part of an automation's action (which can do without it)."""

    def __init__(self, *, feature: str, setting: str, section: str, in_action: bool = False) -> None:
        super().__init__(f"{feature} are turned off ({setting} = false in [{section}])")
        self.feature = feature
        self.setting = setting
        self.section = section
        self.in_action = in_action


# --- sign-in -------------------------------------------------------------------------------------------


class SignInLocked(InboxError):
    """Too many failed sign-ins for this email: sign-in is refused until `until`, even with the
    right password."""

    def __init__(self, until: datetime) -> None:
        super().__init__(f"sign-in is locked until {until:%Y-%m-%d %H:%M} UTC")
        self.until = until
