"""The OpenAPI document: generated from the request models and the route table, and exactly the
API the app serves."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import schemathesis
from aiohttp import web

from bot.app import build_app
from bot.front import api
from bot.front.openapi import OPENAPI, OPERATIONS
from tests.conftest import Bot, make_settings

METHODS = {"get", "post", "put", "patch", "delete"}


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def _app(tmp_path: Path) -> web.Application:
    return build_app(make_settings(f"sqlite://{tmp_path}/inbox.sqlite3"))  # built, never started


def _api_routes(app: web.Application) -> set[tuple[str, str]]:
    """(method, path) of every route the app serves that the API module registered."""
    handlers = set(api.HANDLERS.values())
    served = set()
    for route in app.router.routes():
        handler = getattr(route.handler, "__wrapped__", route.handler)
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter")
        if handler in handlers and route.method.lower() in METHODS:
            served.add((route.method.lower(), path))
    return served


def test_every_route_is_documented_and_every_documented_route_is_served(tmp_path: Path) -> None:
    app = _app(tmp_path)
    documented = {(method, path) for path, ops in OPENAPI["paths"].items() for method in ops}
    assert _api_routes(app) == documented
    # and every /api/ route of the whole app (connectors' routes are theirs) is an API route
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter") or ""
        if path.startswith("/api/") and route.method.lower() in METHODS:
            assert (route.method.lower(), path) in documented, (route.method, path)


def test_operations_have_ids_tags_summaries_and_parameters() -> None:
    ids = [op["operationId"] for ops in OPENAPI["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids)) == len(OPERATIONS)
    for path, ops in OPENAPI["paths"].items():
        for method, op in ops.items():
            assert op["tags"] and op["summary"], (method, path)
            names = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert names == set(re.findall(r"{(\w+)}", path)), (method, path)
            assert any(code.startswith("2") for code in op["responses"]), (method, path)


def test_schemas_come_from_the_models_with_required_lists() -> None:
    schemas = OPENAPI["components"]["schemas"]
    assert "$defs" not in json.dumps(OPENAPI)
    for ref in _refs(OPENAPI):
        assert ref.startswith(("#/components/schemas/", "#/components/responses/")), ref
        kind, name = ref.split("/")[2:]
        assert name in OPENAPI["components"][kind], ref
    assert set(schemas["AutomationIn"]["required"]) == {"name", "keywords", "actions"}
    assert schemas["AutomationIn"]["additionalProperties"] is False
    assert "required" not in schemas["AutomationChange"]  # a change names only what changes
    assert schemas["Reply"]["required"] == ["text"]
    assert schemas["ActionIn"]["properties"]["type"]["enum"] == ["tag", "topic", "resolve", "crm"]
    body = OPENAPI["paths"]["/api/automations"]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/AutomationIn"}
    ok = OPENAPI["paths"]["/api/automations/{id}"]["get"]["responses"]["200"]
    assert ok["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Automation"}
    params = OPENAPI["paths"]["/api/conversations"]["get"]["parameters"]
    assert {p["name"] for p in params if p["in"] == "query"} == {
        "status", "channel", "topic", "tag", "q", "limit", "cursor", "sort", "team", "assignee", "priority", "contact"
    }  # fmt: skip
    # every bearer-token route documents the header that says which user the token holder acts as
    for path, ops in OPENAPI["paths"].items():
        for method, op in ops.items():
            headers = {p["name"] for p in op.get("parameters", []) if p["in"] == "header"}
            assert headers == (set() if op.get("security") == [] else {"X-Inbox-User"}), (method, path)


def test_the_document_loads_as_openapi_3() -> None:
    assert OPENAPI["openapi"].startswith("3.1")
    schema = schemathesis.openapi.from_dict(json.loads(json.dumps(OPENAPI)))
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == len(OPERATIONS)


async def test_served_document_is_readable_utf8(bot: Bot) -> None:
    resp = await bot.client.get("/api/openapi.json")
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "application/json; charset=utf-8"
    raw = await resp.read()
    assert "—".encode() in raw or "…".encode() in raw  # written as is, not as \\u escapes
    assert b"\\u2026" not in raw and b"\\u2014" not in raw
    assert json.loads(raw) == json.loads(json.dumps(OPENAPI))
