"""The API's route table, and the OpenAPI 3.1 document generated from it and from the pydantic models
of `bot/front/schemas.py` (served at GET /api/openapi.json).

The table is the one list of the API's routes: `bot/front/api.py` registers a handler for each
operation (by `operationId`), and the document describes the same list, so neither can drift from
the other; the request schemas are those that validate the bodies and query strings.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from bot.front import schemas as s
from bot.services.admin import LABEL_KINDS

TITLE = "inbox-bot API"
VERSION = "1"
_REF = "#/components/schemas/{model}"
# Every refusal an API route may answer with (see api.STATUS).
_ERROR_STATUSES = ("400", "401", "403", "404", "409", "413")


@dataclass(frozen=True, slots=True)
class Operation:
    """One route: method and path, what it takes and what it answers."""

    method: str
    path: str
    id: str  # operationId, also how api.py finds the handler
    tag: str
    summary: str
    body: type[BaseModel] | None = None
    body_required: bool = True
    query: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    public: bool = False  # answered without a bearer token (health, metrics, this document)
    media: str = "application/json"


def _label_operations() -> list[Operation]:
    ops: list[Operation] = []
    for kind in LABEL_KINDS.values():
        word = kind.kind.capitalize()
        # a topic also carries a priority and a team
        listed, body, one = (
            (s.TopicList, s.TopicIn, s.Topic) if kind.kind == "topic" else (s.LabelList, s.LabelIn, s.Label)
        )
        ops += [
            Operation("get", f"/api/{kind.plural}", f"list{word}s", "labels", f"List the {kind.noun}s, by name",
                      response=listed),
            Operation("post", f"/api/{kind.plural}", f"create{word}", "labels", f"Create a {kind.noun}",
                      body=body, response=one, status=201),
            Operation("delete", f"/api/{kind.plural}/{{name}}", f"delete{word}", "labels",
                      f"Delete a {kind.noun} no automation uses", response=s.Deleted),
        ]  # fmt: skip
    return ops


OPERATIONS: tuple[Operation, ...] = (
    Operation("get", "/healthz", "health", "operations", "Whether the bot and its store answer",
              response=s.Health, public=True),
    Operation("get", "/metrics", "metrics", "operations", "Prometheus metrics (text format 0.0.4)",
              public=True, media="text/plain"),
    Operation("get", "/api/openapi.json", "openapi", "operations", "This document", public=True),
    Operation("get", "/api/conversations", "listConversations", "conversations",
              "List conversations, newest first or in the queue's order (sort=queue)",
              query=s.ConversationQuery, response=s.ConversationPage),
    Operation("get", "/api/conversations/{id}", "getConversation", "conversations",
              "One conversation with its messages and automation runs", response=s.ConversationDetail),
    Operation("get", "/api/conversations/{id}/why", "explainConversation", "conversations",
              "Per inbound message, what each automation did or did not do, and why", response=s.WhyList),
    Operation("post", "/api/conversations/{id}/resolve", "resolveConversation", "conversations", "Resolve",
              body=s.Resolve, body_required=False, response=s.ConversationDetail),
    Operation("post", "/api/conversations/{id}/reopen", "reopenConversation", "conversations", "Reopen",
              body=s.Reopen, body_required=False, response=s.ConversationDetail),
    Operation("post", "/api/conversations/{id}/messages", "replyToConversation", "conversations",
              "Reply through the conversation's channel", body=s.Reply, response=s.Message, status=201),
    Operation("post", "/api/conversations/{id}/topics", "changeConversationTopics", "conversations",
              "Add and remove topics by hand (priority and team follow)", body=s.TopicsChange,
              response=s.ConversationDetail),
    Operation("post", "/api/conversations/{id}/assign", "assignConversation", "conversations",
              "Assign to a user, or unassign", body=s.Assign, response=s.ConversationDetail),
    Operation("get", "/api/automations", "listAutomations", "automations", "List automations, oldest first",
              query=s.Page, response=s.AutomationPage),
    Operation("post", "/api/automations", "createAutomation", "automations", "Create an automation",
              body=s.AutomationIn, response=s.AutomationSaved, status=201),
    Operation("post", "/api/automations/test", "testAutomations", "automations",
              "What would fire on a message, and do (changes nothing)", body=s.AutomationTest,
              response=s.TestOutcome),
    Operation("post", "/api/automations/preview", "previewAutomation", "automations",
              "What an automation would have done to the stored messages since a time (changes nothing)",
              body=s.AutomationPreview, response=s.PreviewOutcome),
    Operation("get", "/api/automations/lint", "lintAutomations", "automations",
              "Warnings about the enabled automations (likely mistakes)", response=s.LintList),
    Operation("get", "/api/automations/{id}", "getAutomation", "automations", "One automation",
              response=s.Automation),
    Operation("patch", "/api/automations/{id}", "changeAutomation", "automations",
              "Change some fields of an automation", body=s.AutomationChange, response=s.AutomationSaved),
    Operation("delete", "/api/automations/{id}", "deleteAutomation", "automations",
              "Delete an automation (its runs stay)", response=s.Deleted),
    Operation("post", "/api/automations/{id}/enable", "enableAutomation", "automations", "Enable",
              response=s.AutomationSaved),
    Operation("post", "/api/automations/{id}/disable", "disableAutomation", "automations", "Disable",
              response=s.Automation),
    Operation("post", "/api/automations/{id}/preview", "previewSavedAutomation", "automations",
              "What a stored automation would have done to the stored messages since a time (changes nothing)",
              body=s.PreviewIn, body_required=False, response=s.PreviewOutcome),
    Operation("get", "/api/automations/{id}/runs", "listAutomationRuns", "automations",
              "Runs of an automation, newest first (kept after it is deleted)", query=s.Page, response=s.RunPage),
    Operation("get", "/api/automations/{id}/revisions", "listAutomationRevisions", "automations",
              "Revisions of an automation, newest first (kept after it is deleted)", query=s.Page,
              response=s.RevisionPage),
    Operation("post", "/api/automations/{id}/rollback", "rollbackAutomation", "automations",
              "Restore a revision's name, keywords, match, actions and scope as a new revision (enabled stays)",
              body=s.Rollback, response=s.Automation),
    Operation("get", "/api/audit", "listAudit", "audit",
              "The audit log, newest first: changes to settings and people's actions on conversations "
              "(append-only)", query=s.AuditQuery, response=s.AuditPage),
    Operation("get", "/api/outbox", "listOutbox", "outbox", "Outbox jobs (replies, CRM sync), newest first",
              query=s.OutboxQuery, response=s.JobPage),
    Operation("post", "/api/outbox/{id}/retry", "retryOutboxJob", "outbox", "Retry a job that failed for good",
              response=s.Job),
    *_label_operations(),
    Operation("get", "/api/users", "listUsers", "people", "List users, oldest first (never their passwords)",
              query=s.Page, response=s.UserPage),
    Operation("post", "/api/users", "createUser", "people",
              "Add a user; without a password one is generated and answered once", body=s.UserIn,
              response=s.NewUser, status=201),
    Operation("get", "/api/users/{id}", "getUser", "people", "One user", response=s.User),
    Operation("patch", "/api/users/{id}", "changeUser", "people",
              "Change some fields of a user (a new password or deactivation ends their sessions)",
              body=s.UserChange, response=s.User),
    Operation("get", "/api/teams", "listTeams", "people", "List the teams, by name", response=s.TeamList),
    Operation("post", "/api/teams", "createTeam", "people", "Create a team", body=s.TeamIn, response=s.Team,
              status=201),
    Operation("delete", "/api/teams/{name}", "deleteTeam", "people",
              "Delete a team no topic routes to (its members leave it)", response=s.Deleted),
    Operation("patch", "/api/topics/{name}", "changeTopic", "labels",
              "Change a topic's priority or team (its open conversations follow)", body=s.TopicChange,
              response=s.Topic),
)  # fmt: skip


def _path_parameters(path: str) -> list[dict[str, Any]]:
    params = []
    for name in re.findall(r"{(\w+)}", path):
        schema = {"type": "integer", "minimum": 1} if name == "id" else {"type": "string"}
        params.append({"name": name, "in": "path", "required": True, "schema": schema})
    return params


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = model.model_json_schema()
    required = set(schema.get("required", ()))
    params = []
    for name, prop in schema["properties"].items():
        prop = {k: v for k, v in prop.items() if k not in ("title", "default")}
        description = prop.pop("description", None)
        param: dict[str, Any] = {"name": name, "in": "query", "required": name in required, "schema": prop}
        if description:
            param["description"] = description
        params.append(param)
    return params


# Every bearer-token route may act as one user (bot/front/api.py, `acting_user`).
USER_PARAMETER: dict[str, Any] = {
    "name": "X-Inbox-User",
    "in": "header",
    "required": False,
    "schema": {"type": "integer", "minimum": 1},
    "description": "Act as this user (their id): the change is recorded as `user:<id>` (and `agent` may not be "
    "given), `assignee=me` means them, and their role applies — an agent may use only the conversation routes "
    "(403 on the others) and may assign a conversation only to themselves. Unknown or deactivated: 400.",
}


def _content(media: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {media: {"schema": schema}}


def document(operations: Sequence[Operation]) -> dict[str, Any]:
    """The OpenAPI 3.1 document of `operations`; models' `$defs` become `components/schemas`."""
    wanted: list[tuple[type[BaseModel], JsonSchemaMode]] = [(s.Error, "serialization")]
    for op in operations:
        if op.body is not None:
            wanted.append((op.body, "validation"))
        if op.response is not None:
            wanted.append((op.response, "serialization"))
    refs, defs = models_json_schema(list(dict.fromkeys(wanted)), ref_template=_REF)

    def ref(model: type[BaseModel], mode: JsonSchemaMode) -> dict[str, Any]:
        return dict(refs[model, mode])

    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        ok: dict[str, Any] = {"description": "OK"}
        if op.response is not None:
            ok["content"] = _content(op.media, ref(op.response, "serialization"))
        elif op.media != "application/json":
            ok["content"] = _content(op.media, {"type": "string"})
        else:
            ok["content"] = _content(op.media, {"type": "object"})
        responses: dict[str, Any] = {str(op.status): ok}
        if op.id == "health":
            responses["503"] = {"description": "The store does not answer", "content": ok["content"]}
        if not op.public:
            responses.update({code: {"$ref": "#/components/responses/Error"} for code in _ERROR_STATUSES})
        entry: dict[str, Any] = {"operationId": op.id, "tags": [op.tag], "summary": op.summary}
        params = _path_parameters(op.path) + (_query_parameters(op.query) if op.query is not None else [])
        if not op.public:
            params.append(USER_PARAMETER)
        if params:
            entry["parameters"] = params
        if op.body is not None:
            entry["requestBody"] = {
                "required": op.body_required,
                "content": _content("application/json", ref(op.body, "validation")),
            }
        entry["responses"] = responses
        if op.public:
            entry["security"] = []
        paths.setdefault(op.path, {})[op.method] = entry

    return {
        "openapi": "3.1.0",
        "info": {
            "title": TITLE,
            "version": VERSION,
            "description": "Conversations, automations, labels, people and the outbox of inbox-bot. Every "
            "`/api/` route "
            "but this document needs `Authorization: Bearer <token>`; with the header `X-Inbox-User: <user id>` "
            "the token holder acts as that user, with that user's role. Refusals answer "
            '`{"error": "…", "field": "…"}` naming what is wrong and the way out.',
        },
        "tags": [{"name": t} for t in _tags(operations)],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "responses": {
                "Error": {
                    "description": "Refused, with what is wrong and the way out",
                    "content": _content("application/json", ref(s.Error, "serialization")),
                }
            },
            "schemas": defs.get("$defs", {}),
        },
    }


def _tags(operations: Iterable[Operation]) -> list[str]:
    return list(dict.fromkeys(op.tag for op in operations))


OPENAPI: dict[str, Any] = document(OPERATIONS)
