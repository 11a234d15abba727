"""The JSON API's request and response shapes, as pydantic models.

Request models validate every body and query string (unknown fields and parameters refused) and
the OpenAPI document is generated from all of them (`bot/front/openapi.py`). They check shapes
and types only; what the values mean (a tag that must exist, a name already taken) is the admin
service's to check, so every front-end gets the same answer.

`Expect("…")` in a field's annotation says what a valid value is, for the refusal
`<field> must be <that>`. Response models only document what the API sends (the handlers build
the JSON themselves, so no byte of it depends on them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, WithJsonSchema, model_validator
from pydantic.json_schema import SkipJsonSchema

from bot.services.admin import MAX_KEYWORD_LEN, MAX_KEYWORDS, MAX_NAME, READ_ONLY
from bot.services.audit import KINDS as AUDIT_KINDS
from bot.services.people import MAX_NAME as MAX_PERSON_NAME
from bot.services.people import MIN_PASSWORD

MAX_LIMIT = 200


@dataclass(frozen=True, slots=True)
class Expect:
    """What a valid value of a field is, in words: `channels must be <a list of channel names>`."""

    text: str


def _drop_defaults(schema: dict[str, Any]) -> None:
    """A change's fields have no default: what is not sent stays as it is."""
    for prop in schema.get("properties", {}).values():
        prop.pop("default", None)


class Request(BaseModel):
    """A request body or query string: unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")
    # What the body describes, for "give the <of>'s <field>" when a required field is missing.
    of: ClassVar[str] = "request"


# --- fields shared by several models ------------------------------------------------------------------

AgentId = Annotated[
    StrictStr | StrictInt | None,
    Expect("the agent's id (a string)"),
    Field(
        description="Who makes the change, recorded as `agent:<id>` (default: `api`).",
        json_schema_extra={"maxLength": 200},
    ),
]
OldAgentId = Annotated[
    AgentId, Field(description="Same as `agent` (older clients).", json_schema_extra={"deprecated": True})
]
Name = Annotated[
    StrictStr,
    Expect("a string"),
    Field(description=f"Unique regardless of case; at most {MAX_NAME} characters.", examples=["Au revoir"]),
]
Keywords = Annotated[
    StrictStr | list[StrictStr],
    Expect("a list of keywords or one comma-separated string"),
    Field(
        description=(
            "A list, or one comma-separated string in which a phrase in double quotes may hold a comma. "
            f"At most {MAX_KEYWORDS} keywords of at most {MAX_KEYWORD_LEN} characters."
        ),
        examples=["au revoir, bye"],
    ),
]
Match = Annotated[
    StrictStr | None,
    Expect('"any" or "all"'),
    WithJsonSchema({"type": ["string", "null"], "enum": ["any", "all", None]}),
    Field(description="`any`: one keyword is enough; `all`: every keyword across the conversation."),
]
Channels = Annotated[
    list[StrictStr] | None,
    Expect("a list of channel names"),
    Field(description="Configured channel names; empty or absent: every channel."),
]
Types = Annotated[
    list[StrictStr] | None,
    Expect("a list of direct, group, public"),
    WithJsonSchema({"type": ["array", "null"], "items": {"type": "string", "enum": ["direct", "group", "public"]}}),
    Field(description="Conversation types; empty or absent: every type."),
]


class ActionIn(Request):
    """One action: `type` and the value its type takes (`tag`, `topic`, `reason` or `target`)."""

    type: Annotated[
        StrictStr,
        Expect("tag, topic, resolve or crm"),
        WithJsonSchema({"type": "string", "enum": ["tag", "topic", "resolve", "crm"]}),
    ]
    tag: Annotated[StrictStr | None, Expect("a string"), Field(description="The tag (type tag).")] = None
    topic: Annotated[StrictStr | None, Expect("a string"), Field(description="The topic (type topic).")] = None
    reason: Annotated[
        StrictStr | None, Expect("a string"), Field(description="The resolution reason (type resolve), or none.")
    ] = None
    target: Annotated[
        StrictStr | None,
        Expect("salesforce"),
        WithJsonSchema({"type": ["string", "null"], "enum": ["salesforce", None]}),
        Field(description="The CRM (type crm)."),
    ] = None


Actions = Annotated[
    list[ActionIn],
    Expect("a list of actions, each an object with a type"),
    Field(description="What the automation does when it fires.", examples=[[{"type": "resolve"}]]),
]


class AutomationIn(Request):
    """A new automation."""

    of: ClassVar[str] = "automation"
    name: Name
    keywords: Keywords
    match: Match = None
    actions: Actions
    channels: Channels = None
    types: Types = None
    enabled: Annotated[StrictBool, Expect("true or false")] = True


class AutomationChange(Request):
    """Fields to change; the others stay. Read-only fields (`id`, `created_at`, …) are ignored, so a
    client may send back what it read."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_drop_defaults)
    of: ClassVar[str] = "automation"
    name: Name | SkipJsonSchema[None] = None
    keywords: Keywords | SkipJsonSchema[None] = None
    match: Match = None
    actions: Actions | SkipJsonSchema[None] = None
    channels: Channels = None
    types: Types = None
    enabled: Annotated[StrictBool | SkipJsonSchema[None], Expect("true or false")] = None

    @model_validator(mode="before")
    @classmethod
    def _ignore_read_only(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if k not in READ_ONLY}
        return data


class AutomationTest(Request):
    """A message to test the automations on."""

    of: ClassVar[str] = "test"
    text: Annotated[StrictStr, Expect("a string"), Field(description="The message.", examples=["Merci, au revoir !"])]
    channel: Annotated[
        StrictStr | None, Expect("a string"), Field(description="Test as on this channel (default: any).")
    ] = None
    type: Annotated[
        StrictStr | None,
        Expect("a string"),
        WithJsonSchema({"type": ["string", "null"], "enum": ["direct", "group", "public", None]}),
        Field(description="Test as in this type of conversation (default: any)."),
    ] = None


class Rollback(Request):
    """The revision to restore."""

    of: ClassVar[str] = "rollback"
    revision: Annotated[
        StrictInt,
        Expect("a revision number (see GET /api/automations/{id}/revisions)"),
        Field(description="Its name, keywords, match, actions and scope come back; `enabled` stays.", examples=[2]),
    ]


class LabelIn(Request):
    """A tag, topic or resolution reason to create."""

    name: Annotated[
        StrictStr,
        Expect("a string"),
        Field(description=f"Unique regardless of case; at most {MAX_NAME} characters, no comma or double quote."),
    ]


PriorityName = Annotated[
    StrictStr,
    Expect("urgent, high, normal or low"),
    WithJsonSchema({"type": "string", "enum": ["urgent", "high", "normal", "low"]}),
    Field(description="Where the topic's conversations stand in the queue (urgent first)."),
]
TeamName = Annotated[
    StrictStr | None,
    Expect("a team's name, or null for none"),
    Field(description="The team its conversations are routed to (an existing team, any case); null: none."),
]


class TopicIn(Request):
    """A topic to create: `normal` and routed to no team unless said."""

    of: ClassVar[str] = "topic"
    name: Annotated[
        StrictStr,
        Expect("a string"),
        Field(description=f"Unique regardless of case; at most {MAX_NAME} characters, no comma or double quote."),
    ]
    priority: PriorityName | SkipJsonSchema[None] = None
    team: TeamName = None


class TopicChange(Request):
    """What to change of a topic; what is not sent stays. Every open conversation with the topic
    follows at once."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_drop_defaults)
    of: ClassVar[str] = "topic"
    priority: PriorityName | SkipJsonSchema[None] = None
    team: TeamName = None


TopicNames = Annotated[list[StrictStr], Expect("a list of topic names")]


class TopicsChange(Request):
    """Topics an agent adds to and removes from a conversation; its priority and team follow."""

    of: ClassVar[str] = "topics"
    add: Annotated[TopicNames, Field(description="Existing topics (any case).", examples=[["Refunds"]])] = []
    remove: Annotated[
        TopicNames, Field(description="Topics on the conversation (any case).", examples=[["Sales"]])
    ] = []
    agent: AgentId = None


class Resolve(Request):
    """Resolve, with a reason when the organization uses them."""

    reason: Annotated[
        StrictStr | None, Expect("a string"), Field(description="An existing resolution reason (any case).")
    ] = None
    agent: AgentId = None
    by: OldAgentId = None


class Reopen(Request):
    """Reopen a resolved conversation."""

    agent: AgentId = None
    by: OldAgentId = None


class Assign(Request):
    """Who holds the conversation from now on."""

    of: ClassVar[str] = "assignment"
    user: Annotated[
        StrictInt | None,
        Expect("a user id (a number) or null"),
        Field(
            description="An active user's id, or null to unassign. An agent (X-Inbox-User) may take a "
            "conversation only for themselves, and not one someone else holds (409 naming them); an "
            "admin or a bearer token may assign anyone.",
            examples=[3],
        ),
    ]
    agent: AgentId = None


class Reply(Request):
    """A reply sent through the conversation's channel."""

    of: ClassVar[str] = "reply"
    text: Annotated[StrictStr, Expect("a non-empty string"), Field(min_length=1, examples=["How can we help?"])]
    agent: AgentId = None
    by: OldAgentId = None


# --- people ---------------------------------------------------------------------------------------------

Role = Annotated[
    StrictStr,
    Expect("admin or agent"),
    WithJsonSchema({"type": "string", "enum": ["admin", "agent"]}),
    Field(description="`admin`: everything; `agent`: conversations, not settings."),
]
TeamNames = Annotated[
    list[StrictStr],
    Expect("a list of team names"),
    Field(description="Names of existing teams (any case).", examples=[["Billing"]]),
]
Password = Annotated[
    StrictStr,
    Expect("a string"),
    Field(description=f"At least {MIN_PASSWORD} characters. Never read back.", json_schema_extra={"writeOnly": True}),
]
PersonName = Annotated[
    StrictStr,
    Expect("a string"),
    Field(description=f"The name shown in the inbox; at most {MAX_PERSON_NAME} characters."),
]


class UserIn(Request):
    """A person who signs in to the web inbox. Without `password`, a strong one is generated and
    answered once, as `password`."""

    of: ClassVar[str] = "user"
    email: Annotated[
        StrictStr,
        Expect("an email address"),
        Field(description="Unique regardless of case; what the person signs in with.", examples=["ana@example.com"]),
    ]
    role: Role
    name: Annotated[
        StrictStr | SkipJsonSchema[None],
        Expect("a string"),
        Field(
            description="The name shown in the inbox (default: the email's local part); "
            f"at most {MAX_PERSON_NAME} characters."
        ),
    ] = None
    teams: TeamNames | SkipJsonSchema[None] = None
    password: Password | SkipJsonSchema[None] = None


class UserChange(Request):
    """Fields to change; the others stay. A new password or `active: false` ends the user's sessions."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_drop_defaults)
    of: ClassVar[str] = "user"
    name: PersonName | SkipJsonSchema[None] = None
    role: Role | SkipJsonSchema[None] = None
    teams: TeamNames | SkipJsonSchema[None] = None
    active: Annotated[StrictBool | SkipJsonSchema[None], Expect("true or false")] = None
    language: Annotated[
        StrictStr | None,
        Expect('"en", "fr" or null'),
        WithJsonSchema({"type": ["string", "null"], "enum": ["en", "fr", None]}),
        Field(description="The web inbox's language for this user; null: the organization's."),
    ] = None
    password: Password | SkipJsonSchema[None] = None


class TeamIn(Request):
    """A team to create."""

    of: ClassVar[str] = "team"
    name: Annotated[
        StrictStr,
        Expect("a string"),
        Field(
            description=f"Unique regardless of case; at most {MAX_NAME} characters, no comma or double quote.",
            examples=["Billing"],
        ),
    ]


# --- query strings (every value arrives as text; the API parses and words them) -----------------------------

Limit = Annotated[
    str | None,
    WithJsonSchema({"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "description": "Page size (default 50)."}),
]
Cursor = Annotated[
    str | None,
    WithJsonSchema({"type": "string", "description": "`next_cursor` of the previous page."}),
]
Text = Annotated[str | None, WithJsonSchema({"type": "string"})]


class Page(Request):
    limit: Limit = None
    cursor: Cursor = None


class ConversationQuery(Page):
    status: Annotated[str | None, WithJsonSchema({"type": "string", "enum": ["open", "resolved"]})] = None
    channel: Annotated[Text, Field(description="Only this channel's conversations.")] = None
    topic: Annotated[Text, Field(description="Only conversations with this topic (any case).")] = None
    tag: Annotated[Text, Field(description="Only conversations with a message tagged so (any case).")] = None
    q: Annotated[
        Text,
        Field(
            description="Words searched in the text of all the conversation's messages: whole words, "
            "case and accents ignored, every word somewhere in the conversation."
        ),
    ] = None
    sort: Annotated[
        str | None,
        WithJsonSchema({"type": "string", "enum": ["queue"]}),
        Field(
            description="`queue`: priority (urgent first), then the longest wait (not waiting last), then id. "
            "Absent: newest first."
        ),
    ] = None
    team: Annotated[Text, Field(description="Only conversations routed to this team (any case).")] = None
    assignee: Annotated[
        Text,
        Field(
            description="A user id, `none` (nobody holds it) or `me` (the user of X-Inbox-User; with a bare "
            "bearer token `me` is refused)."
        ),
    ] = None
    priority: Annotated[str | None, WithJsonSchema({"type": "string", "enum": ["urgent", "high", "normal", "low"]})] = (
        None
    )
    contact: Annotated[
        Text,
        Field(description="The contact's platform id exactly, or part of the contact's name (any case, any script)."),
    ] = None


class AuditQuery(Page):
    actor: Annotated[
        Text, Field(description="Only this actor's entries: `user:<id>`, `api`, `slack:<id>`, `telegram:<id>` …")
    ] = None
    kind: Annotated[
        str | None,
        WithJsonSchema({"type": "string", "enum": list(AUDIT_KINDS)}),
        Field(description="Only entries of this kind."),
    ] = None


class OutboxQuery(Page):
    status: Annotated[
        str | None, WithJsonSchema({"type": "string", "enum": ["pending", "running", "done", "failed"]})
    ] = None
    conversation_id: Annotated[str | None, WithJsonSchema({"type": "integer", "minimum": 0})] = None


# --- responses (documentation of what the handlers send) ------------------------------------------------------


class Response(BaseModel):
    model_config = ConfigDict(extra="forbid")


Timestamp = Annotated[str, Field(description="ISO 8601, UTC (`…Z`).")]


class Error(Response):
    """A refusal: what is wrong and the way out; `field` names the input at fault."""

    error: str
    field: str | SkipJsonSchema[None] = None


class Action(Response):
    """An action: `type` and the key of its value (`tag`, `topic`, `reason` or `target`)."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["tag", "topic", "resolve", "crm"]
    tag: str | SkipJsonSchema[None] = None
    topic: str | SkipJsonSchema[None] = None
    reason: str | None = None
    target: str | SkipJsonSchema[None] = None


class Automation(Response):
    id: int
    name: str
    keywords: list[str]
    match: Literal["any", "all"]
    actions: list[Action]
    channels: list[str]
    types: list[Literal["direct", "group", "public"]]
    enabled: bool
    created_at: Timestamp
    updated_at: Timestamp


class Run(Response):
    """One automation fired on one message, and what it did (kept after the automation's deletion)."""

    id: int
    automation_id: int
    automation_name: str
    conversation_id: int
    message_id: int
    keywords: list[str]
    actions: list[Action]
    revision: int | None = Field(
        description="The automation's revision that fired (null for runs stored before revisions were kept)."
    )
    created_at: Timestamp


RevisionChange = Literal["created", "updated", "enabled", "disabled", "deleted", "rolled_back"]


class Revision(Response):
    """One change to an automation, and the automation as it stood after it."""

    revision: int = Field(description="From 1, per automation.")
    at: Timestamp
    by: str = Field(description="`user:<id>`, `slack:<user id>`, `telegram:<user id>`, `api` or `cli`.")
    change: RevisionChange
    automation: Automation


class RevisionPage(Response):
    items: list[Revision]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last.")


class AuditEntry(Response):
    """One change made by a person or a token (never a secret or a password)."""

    id: int
    at: Timestamp
    actor: str
    kind: Annotated[str, WithJsonSchema({"type": "string", "enum": list(AUDIT_KINDS)})]
    target: str = Field(description="What changed: `automation:<id>`, `tag:<name>`, `user:<id>`, `conversation:<id>` …")
    summary: str


class AuditPage(Response):
    items: list[AuditEntry]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last.")


class Message(Response):
    id: int
    direction: Literal["inbound", "outbound"]
    text: str
    tags: list[str]
    sent_at: str | None
    author: str | None = Field(
        description="Who wrote our message: `user:<id>`, `agent:<id>` or `salesforce`; null for the contact's."
    )
    delivery: Literal["stored", "pending", "sent", "failed"] | None = Field(
        description="Our message's delivery: `stored` (the channel sends no replies), `pending`, `sent`, `failed` "
        "(for good; POST /api/outbox/{id}/retry tries again); null for the contact's."
    )


class Contact(Response):
    id: str
    name: str | None


class CrmCase(Response):
    case_id: str
    case_number: str | None


class Assignee(Response):
    id: int
    name: str | None


class Event(Response):
    """One step of a conversation's history."""

    kind: Literal["opened", "resolved", "reopened", "assigned", "topics_changed", "replied"]
    by: str | None = Field(
        description="`user:<id>`, `agent:<id>`, `automation:<id>`, `salesforce`; null for the opening."
    )
    detail: str | None = Field(
        description="resolved: the reason; assigned: the new assignee (`user:<id>`, null: unassigned); "
        "topics_changed: what changed."
    )
    at: Timestamp


class Conversation(Response):
    id: int
    channel: str
    type: Literal["direct", "group", "public"]
    status: Literal["open", "resolved"]
    thread: str
    contact: Contact
    topics: list[str]
    tags: list[str]
    priority: Literal["urgent", "high", "normal", "low"] = Field(
        description="The highest priority among its topics (normal with none)."
    )
    team: str | None = Field(
        description="The team of its highest-priority topic that names one (ties: the topic applied first)."
    )
    resolution_reason: str | None
    resolved_by: str | None
    resolved_at: str | None
    previous_id: int | None
    created_at: Timestamp
    crm: CrmCase | None
    assignee: Assignee | None
    waiting_since: str | None = Field(
        description="Since when the contact waits for an answer: their first message after our last one; null "
        "when resolved or when our message came last."
    )


class ConversationDetail(Conversation):
    messages: list[Message]
    runs: list[Run]
    events: list[Event] = Field(description="The conversation's history, oldest first.")


class Job(Response):
    """Durable external work: a reply to send, a CRM sync."""

    id: int
    kind: str
    status: Literal["pending", "running", "done", "failed"]
    attempts: int
    conversation_id: int | None
    message_id: Any = Field(description="The reply a `reply` job sends.")
    last_error: str | None
    run_after: Timestamp
    created_at: Timestamp
    updated_at: Timestamp


class Label(Response):
    name: str


class User(Response):
    """A person who signs in to the web inbox. The password is never read back."""

    id: int
    email: str
    name: str
    role: Literal["admin", "agent"]
    teams: list[str]
    active: bool
    language: Literal["en", "fr"] | None
    created_at: Timestamp


class NewUser(User):
    """The created user; with the generated password, shown this once, when none was given."""

    password: str | SkipJsonSchema[None] = Field(
        default=None, description="Only when generated (no `password` was sent): shown this once."
    )


class UserPage(Response):
    items: list[User]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last.")


class Team(Response):
    name: str


class TeamList(Response):
    items: list[Team]
    next_cursor: None = Field(description="Always null: every team is listed.")


class Topic(Response):
    name: str
    priority: Literal["urgent", "high", "normal", "low"]
    team: str | None


class Deleted(Response):
    deleted: Literal[True]
    name: str
    id: int | SkipJsonSchema[None] = None


class Firing(Response):
    automation_id: int
    automation_name: str
    keywords: list[str]
    actions: list[Action]


class Skipped(Response):
    automation_name: str
    reason: str


class TestOutcome(Response):
    """What would fire, and what it would do. Nothing is changed."""

    matches: list[Firing]
    tags: list[str]
    topics: list[str]
    resolve: bool
    resolution_reason: str | None
    crm: list[str]
    skipped: list[Skipped]


class Health(Response):
    status: Literal["ok", "unavailable"]
    store: Literal["ok", "down"]


class AutomationPage(Response):
    items: list[Automation]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last.")


class ConversationPage(Response):
    items: list[Conversation]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last.")


class RunPage(Response):
    items: list[Run]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last.")


class JobPage(Response):
    items: list[Job]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last.")


class LabelList(Response):
    items: list[Label]
    next_cursor: None = Field(description="Always null: every label is listed.")


class TopicList(Response):
    items: list[Topic]
    next_cursor: None = Field(description="Always null: every topic is listed.")


# --- why, preview, lint ---------------------------------------------------------------------------

Since = Annotated[
    StrictStr | None,
    Expect('"7d", "24h" or an ISO time'),
    Field(
        description='Replay the inbound messages sent since then: `"7d"` (days), `"24h"` (hours) or an ISO time '
        "(UTC when it has no offset). Default: 7 days.",
        examples=["7d"],
    ),
]


class AutomationPreview(AutomationIn):
    """An automation's fields (as to create it) and how far back to replay."""

    since: Since = None


class PreviewIn(Request):
    """How far back to replay the stored automation."""

    since: Since = None


class LintWarning(Response):
    """Something that looks like a mistake; never blocks a save."""

    kind: Literal["generic_resolve_keyword", "duplicate_keyword", "conflict", "unknown_channel", "never_fired"]
    message: str
    automation_ids: list[int] = Field(description="The automation itself when saved, and every other one involved.")


class AutomationSaved(Automation):
    """An automation as saved, with the warnings it raises."""

    warnings: list[LintWarning]


class LintList(Response):
    warnings: list[LintWarning]


class FoundKeyword(Response):
    """A keyword found in a message: `start`/`end` are code point offsets (end exclusive) into the stored text."""

    keyword: str
    start: int
    end: int


class NotApplied(Response):
    type: Literal["tag", "topic", "resolve", "crm"]
    why: str


class WhyItem(Response):
    """One automation on one inbound message."""

    message_id: int
    automation_id: int
    automation_name: str
    revision: int | None
    outcome: Literal["fired", "not_in_scope", "keywords_incomplete", "skipped_plan", "disabled"]
    found: list[FoundKeyword]
    missing: list[str] = Field(description="For match=all: the keywords not yet seen in the conversation.")
    actions: list[Action]
    not_applied: list[NotApplied]


class WhyList(Response):
    items: list[WhyItem]


class PreviewCount(Response):
    messages: int
    conversations: int


class PreviewExample(Response):
    conversation_id: int
    message_id: int
    text: str
    found: list[FoundKeyword]


class PreviewOutcome(Response):
    """What the automation would have done to the stored messages since then (nothing is changed)."""

    since: Timestamp
    messages_scanned: int = Field(description="Every inbound message since then, on any channel.")
    conversations_scanned: int
    would_fire: PreviewCount
    would_tag: int = Field(description="Messages.")
    would_apply_topics: int = Field(description="Conversations.")
    would_resolve: int = Field(description="Conversations.")
    would_send_to_crm: int = Field(description="Conversations.")
    examples: list[PreviewExample] = Field(description="Up to 5.")
    warnings: list[LintWarning]
