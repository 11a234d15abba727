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


class LabelIn(Request):
    """A tag, topic or resolution reason to create."""

    name: Annotated[
        StrictStr,
        Expect("a string"),
        Field(description=f"Unique regardless of case; at most {MAX_NAME} characters, no comma or double quote."),
    ]


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


class Reply(Request):
    """A reply sent through the conversation's channel."""

    of: ClassVar[str] = "reply"
    text: Annotated[StrictStr, Expect("a non-empty string"), Field(min_length=1, examples=["How can we help?"])]
    agent: AgentId = None
    by: OldAgentId = None


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
    created_at: Timestamp


class Message(Response):
    id: int
    direction: Literal["inbound", "outbound"]
    text: str
    tags: list[str]
    sent_at: str | None


class Contact(Response):
    id: str
    name: str | None


class CrmCase(Response):
    case_id: str
    case_number: str | None


class Conversation(Response):
    id: int
    channel: str
    type: Literal["direct", "group", "public"]
    status: Literal["open", "resolved"]
    thread: str
    contact: Contact
    topics: list[str]
    tags: list[str]
    resolution_reason: str | None
    resolved_by: str | None
    resolved_at: str | None
    previous_id: int | None
    created_at: Timestamp
    crm: CrmCase | None


class ConversationDetail(Conversation):
    messages: list[Message]
    runs: list[Run]


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
