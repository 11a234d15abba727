"""The OpenAPI 3.0 document served at GET /api/openapi.json."""

from __future__ import annotations

from typing import Any

_ERR = {"$ref": "#/components/responses/Error"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _list_of(name: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["items", "next_cursor"],
        "properties": {
            "items": {"type": "array", "items": _ref(name)},
            "next_cursor": {"type": "string", "nullable": True},
        },
    }


def _ok(schema: dict[str, Any], code: str = "200") -> dict[str, Any]:
    return {code: {"description": "OK", "content": {"application/json": {"schema": schema}}}}


def _body(schema: dict[str, Any], required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": schema}}}


_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}}
_PAGE = [
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 200}},
    {"name": "cursor", "in": "query", "schema": {"type": "string"}},
]
_ERRS = {"400": _ERR, "401": _ERR, "403": _ERR, "404": _ERR, "409": _ERR, "413": _ERR}


def _op(summary: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"summary": summary, "responses": {**responses, **_ERRS}, **extra}


def _labels(kind: str) -> dict[str, Any]:
    return {
        f"/api/{kind}": {
            "get": _op(f"List {kind}", _ok(_list_of("Label"))),
            "post": _op(
                f"Create one of {kind}",
                _ok(_ref("Label"), "201"),
                requestBody=_body(_ref("Label")),
            ),
        },
        f"/api/{kind}/{{name}}": {
            "delete": _op(
                f"Delete one of {kind}",
                _ok({"type": "object"}),
                parameters=[{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
            )
        },
    }


_ACTION = {
    "type": "object",
    "required": ["type"],
    "properties": {
        "type": {"type": "string", "enum": ["tag", "topic", "resolve", "crm"]},
        "tag": {"type": "string"},
        "topic": {"type": "string"},
        "reason": {"type": "string", "nullable": True},
        "target": {"type": "string", "enum": ["salesforce"]},
    },
}

_AUTOMATION_IN = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 100},
        "keywords": {
            "oneOf": [
                {"type": "string"},
                {"type": "array", "items": {"type": "string", "maxLength": 200}, "minItems": 1, "maxItems": 100},
            ]
        },
        "match": {"type": "string", "enum": ["any", "all"]},
        "actions": {"type": "array", "items": _ACTION, "minItems": 1},
        "channels": {"type": "array", "items": {"type": "string"}},
        "types": {"type": "array", "items": {"type": "string", "enum": ["direct", "group", "public"]}},
        "enabled": {"type": "boolean"},
    },
}

OPENAPI: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "inbox-bot API", "version": "1"},
    "security": [{"bearer": []}],
    "paths": {
        "/api/conversations": {
            "get": _op(
                "List conversations, newest first",
                _ok(_list_of("Conversation")),
                parameters=[
                    {"name": "status", "in": "query", "schema": {"type": "string", "enum": ["open", "resolved"]}},
                    {"name": "channel", "in": "query", "schema": {"type": "string"}},
                    {"name": "topic", "in": "query", "schema": {"type": "string"}},
                    {"name": "tag", "in": "query", "schema": {"type": "string"}},
                    *_PAGE,
                ],
            )
        },
        "/api/conversations/{id}": {
            "get": _op("One conversation with messages and runs", _ok(_ref("Conversation")), parameters=[_ID])
        },
        "/api/conversations/{id}/resolve": {
            "post": _op(
                "Resolve",
                _ok(_ref("Conversation")),
                parameters=[_ID],
                requestBody=_body({"type": "object", "properties": {"reason": {"type": "string"}}}, False),
            )
        },
        "/api/conversations/{id}/reopen": {"post": _op("Reopen", _ok(_ref("Conversation")), parameters=[_ID])},
        "/api/conversations/{id}/messages": {
            "post": _op(
                "Reply through the conversation's channel",
                _ok(_ref("Message"), "201"),
                parameters=[_ID],
                requestBody=_body(
                    {"type": "object", "required": ["text"], "properties": {"text": {"type": "string", "minLength": 1}}}
                ),
            )
        },
        "/api/automations": {
            "get": _op("List automations", _ok(_list_of("Automation")), parameters=_PAGE),
            "post": _op("Create an automation", _ok(_ref("Automation"), "201"), requestBody=_body(_AUTOMATION_IN)),
        },
        "/api/automations/test": {
            "post": _op(
                "What would fire on a message (changes nothing)",
                _ok({"type": "object"}),
                requestBody=_body(
                    {
                        "type": "object",
                        "required": ["text"],
                        "properties": {
                            "text": {"type": "string"},
                            "channel": {"type": "string"},
                            "type": {"type": "string", "enum": ["direct", "group", "public"]},
                        },
                    }
                ),
            )
        },
        "/api/automations/{id}": {
            "get": _op("One automation", _ok(_ref("Automation")), parameters=[_ID]),
            "patch": _op(
                "Change an automation", _ok(_ref("Automation")), parameters=[_ID], requestBody=_body(_AUTOMATION_IN)
            ),
            "delete": _op("Delete an automation (its runs stay)", _ok({"type": "object"}), parameters=[_ID]),
        },
        "/api/automations/{id}/enable": {"post": _op("Enable", _ok(_ref("Automation")), parameters=[_ID])},
        "/api/automations/{id}/disable": {"post": _op("Disable", _ok(_ref("Automation")), parameters=[_ID])},
        "/api/automations/{id}/runs": {
            "get": _op("Runs of an automation, newest first", _ok(_list_of("Run")), parameters=[_ID, *_PAGE])
        },
        "/api/outbox": {
            "get": _op(
                "Outbox jobs (replies, CRM sync)",
                _ok(_list_of("Job")),
                parameters=[
                    {
                        "name": "status",
                        "in": "query",
                        "schema": {"type": "string", "enum": ["pending", "running", "done", "failed"]},
                    },
                    {"name": "conversation_id", "in": "query", "schema": {"type": "integer"}},
                    *_PAGE,
                ],
            )
        },
        "/api/outbox/{id}/retry": {"post": _op("Retry a failed job", _ok(_ref("Job")), parameters=[_ID])},
        **_labels("tags"),
        **_labels("topics"),
        **_labels("reasons"),
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "responses": {
            "Error": {
                "description": "Refused, with what is wrong and the way out",
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["error"],
                            "properties": {"error": {"type": "string"}, "field": {"type": "string"}},
                        }
                    }
                },
            }
        },
        "schemas": {
            "Label": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}},
            "Action": _ACTION,
            "Automation": {
                "type": "object",
                "properties": {
                    "id": {"type": "integer"},
                    "name": {"type": "string"},
                    "keywords": {"type": "array", "items": {"type": "string"}},
                    "match": {"type": "string", "enum": ["any", "all"]},
                    "actions": {"type": "array", "items": _ACTION},
                    "channels": {"type": "array", "items": {"type": "string"}},
                    "types": {"type": "array", "items": {"type": "string"}},
                    "enabled": {"type": "boolean"},
                    "problem": {"type": "string", "nullable": True},
                    "created_at": {"type": "string", "format": "date-time"},
                    "updated_at": {"type": "string", "format": "date-time"},
                },
            },
            "Message": {
                "type": "object",
                "properties": {
                    "id": {"type": "integer"},
                    "direction": {"type": "string", "enum": ["inbound", "outbound"]},
                    "text": {"type": "string"},
                    "tags": {"type": "array", "items": {"type": "string"}},
                    "sent_at": {"type": "string", "nullable": True},
                },
            },
            "Run": {
                "type": "object",
                "properties": {
                    "id": {"type": "integer"},
                    "automation_id": {"type": "integer"},
                    "automation_name": {"type": "string"},
                    "conversation_id": {"type": "integer"},
                    "message_id": {"type": "integer"},
                    "keywords": {"type": "array", "items": {"type": "string"}},
                    "actions": {"type": "array", "items": _ACTION},
                    "created_at": {"type": "string"},
                },
            },
            "Job": {"type": "object", "properties": {"id": {"type": "integer"}, "status": {"type": "string"}}},
            "Conversation": {
                "type": "object",
                "properties": {
                    "id": {"type": "integer"},
                    "channel": {"type": "string"},
                    "type": {"type": "string", "enum": ["direct", "group", "public"]},
                    "status": {"type": "string", "enum": ["open", "resolved"]},
                    "thread": {"type": "string"},
                    "contact": {"type": "object"},
                    "topics": {"type": "array", "items": {"type": "string"}},
                    "tags": {"type": "array", "items": {"type": "string"}},
                    "resolution_reason": {"type": "string", "nullable": True},
                    "resolved_by": {"type": "string", "nullable": True},
                    "resolved_at": {"type": "string", "nullable": True},
                    "previous_id": {"type": "integer", "nullable": True},
                    "created_at": {"type": "string"},
                    "crm": {"type": "object", "nullable": True},
                    "messages": {"type": "array", "items": _ref("Message")},
                    "runs": {"type": "array", "items": _ref("Run")},
                },
            },
        },
    },
}
