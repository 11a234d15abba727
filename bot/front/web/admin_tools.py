"""The admins' tools on the settings pages: the audit log, an automation's history (each revision
with what it changed) and its rollback.

Reads go through the audit and admin services; a rollback is the admin service's, as the signed-in
user (a new revision). Pages are for admins only and every POST carries the CSRF token.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from bot.domain import Action, AutomationRevision
from bot.engine.normalize import format_keywords
from bot.errors import InboxError, Invalid, NotFound
from bot.front.web.auth import current_user, require_admin
from bot.front.web.context import WEB_KEY, WebContext
from bot.front.web.render import flash, render, wording_for
from bot.front.web.settings_pages import ID, actions_in_words, describe, type_names
from bot.i18n import Wording
from bot.services.audit import KINDS, Audit

__all__ = ["AUDIT_PAGE", "HistoryRow", "actor_names", "history_rows", "routes"]

AUDIT_PAGE = 50  # entries per page of the audit log
HISTORY_SHOWN = 50  # revisions listed on an automation's page
USER_ACTOR = re.compile(r"user:(\d{1,18})")
# The fields a revision can change, in the order the form shows them.
FIELDS = ("name", "keywords", "match", "actions", "channels", "types", "enabled")
AUDIT = Audit()


def _web(request: web.Request) -> WebContext:
    return request.app[WEB_KEY]


async def actor_names(ctx: WebContext, actors: Iterable[str]) -> dict[str, str]:
    """`user:<id>` → the user's name, for the actors given that are users still known."""
    names: dict[str, str] = {}
    for actor in set(actors):
        m = USER_ACTOR.fullmatch(actor)
        if m is None:
            continue
        try:
            names[actor] = (await ctx.people.get_user(int(m.group(1)))).name
        except NotFound:
            continue
    return names


def who_words(actor: str, names: Mapping[str, str]) -> str:
    """`Ana (user:3)` for a known user; the actor as recorded otherwise (`slack:U1`, `api`)."""
    name = names.get(actor)
    return f"{name} ({actor})" if name else actor


# --- the audit log -----------------------------------------------------------------------------------


@require_admin
async def audit_page(request: web.Request) -> web.StreamResponse:
    """Newest first, filtered by actor and kind, a page at a time ("Next": older entries)."""
    ctx = _web(request)
    _ = wording_for(request)
    actor = request.query.get("actor", "").strip()
    kind = request.query.get("kind", "").strip()
    before_raw = request.query.get("before", "").strip()
    error: str | None = None
    entries: list[dict[str, Any]] = []
    next_url: str | None = None
    before = int(before_raw) if before_raw.isascii() and before_raw.isdigit() and len(before_raw) < 19 else None
    try:
        if before_raw and before is None:
            raise Invalid("before", _("“before” must be an entry number: follow the Next link."))
        found = await AUDIT.entries(actor=actor or None, kind=kind or None, before_id=before, limit=AUDIT_PAGE + 1)
    except Invalid as exc:
        error = _("Unknown kind “{kind}”: pick one from the list.", kind=kind) if exc.field == "kind" else str(exc)
        found = []
    more = len(found) > AUDIT_PAGE
    found = found[:AUDIT_PAGE]
    names = await actor_names(ctx, (e.actor for e in found))
    for e in found:
        entries.append(
            {
                "id": e.id,
                "at": e.at.isoformat(),
                "when": e.at.strftime("%Y-%m-%d %H:%M:%S UTC"),
                "who": who_words(e.actor, names),
                "kind": e.kind,
                "target": e.target,
                "summary": e.summary,
            }
        )
    if more and found:
        query = {k: v for k, v in (("actor", actor), ("kind", kind)) if v}
        next_url = str(request.rel_url.with_query({**query, "before": str(found[-1].id)}))
    data = {
        "entries": entries,
        "actor": actor,
        "kind": kind,
        "kinds": KINDS,
        "error": error,
        "next_url": next_url,
        "paged": before is not None,
    }
    return await render(request, "settings/audit.html", data, status=400 if error else 200)


# --- an automation's history -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HistoryRow:
    """One revision as the history section shows it."""

    revision: int
    at: str
    when: str
    who: str
    change: str
    diff: tuple[tuple[str, str, str], ...]  # (field, before, after), the fields that changed
    can_roll_back: bool


def _field_words(_: Wording) -> dict[str, str]:
    return {
        "name": _("Name"),
        "keywords": _("Keywords"),
        "match": _("Match"),
        "actions": _("Actions"),
        "channels": _("Channels"),
        "types": _("Conversation types"),
        "enabled": _("State"),
    }


def change_words(_: Wording) -> dict[str, str]:
    return {
        "created": _("created"),
        "updated": _("updated"),
        "enabled": _("enabled"),
        "disabled": _("disabled"),
        "deleted": _("deleted"),
        "rolled_back": _("rolled back"),
    }


def _value_words(name: str, value: object, _: Wording) -> str:
    """A field of an automation's JSON form as the form shows it."""
    if name == "keywords" and isinstance(value, list | tuple):
        return format_keywords([str(k) for k in value])
    if name == "match":
        return _("All keywords") if value == "all" else _("Any keyword")
    if name == "actions" and isinstance(value, list | tuple):
        actions = [Action.from_json(a) for a in value if isinstance(a, Mapping)]
        return "; ".join(actions_in_words(actions, _)) or "—"
    if name == "channels" and isinstance(value, list | tuple):
        return ", ".join(map(str, value)) or _("every channel")
    if name == "types" and isinstance(value, list | tuple):
        names = type_names(_)
        return ", ".join(names.get(str(t), str(t)) for t in value) or _("every type")
    if name == "enabled":
        return _("enabled") if value else _("disabled")
    return "" if value is None else str(value)


def history_rows(revisions: Sequence[AutomationRevision], names: Mapping[str, str], _: Wording) -> list[HistoryRow]:
    """Revisions newest first, each with the fields it changed against the one before it (all of
    them for the first); every revision but the newest can be rolled back to."""
    fields = _field_words(_)
    changes = change_words(_)
    rows: list[HistoryRow] = []
    for i, r in enumerate(revisions):
        before = revisions[i + 1].automation if i + 1 < len(revisions) else None
        diff = []
        for f in FIELDS:
            new = _value_words(f, r.automation.get(f), _)
            old = _value_words(f, before.get(f), _) if before is not None else ""
            if before is None or old != new:
                diff.append((fields[f], old, new))
        rows.append(
            HistoryRow(
                revision=r.revision,
                at=r.at.isoformat(),
                when=r.at.strftime("%Y-%m-%d %H:%M UTC"),
                who=who_words(r.by, names),
                change=changes.get(r.change.value, r.change.value),
                diff=tuple(diff),
                can_roll_back=i > 0 and r.change.value != "deleted",
            )
        )
    return rows


@require_admin
async def history_page(request: web.Request) -> web.StreamResponse:
    """An automation's revisions, newest first, each with what it changed and a rollback button."""
    ctx = _web(request)
    _ = wording_for(request)
    a = await ctx.admin.find(int(request.match_info["id"]))
    revisions = await ctx.admin.revisions(a.id, limit=HISTORY_SHOWN)
    rows = history_rows(revisions, await actor_names(ctx, (r.by for r in revisions)), _)
    return await render(request, "settings/history.html", {"a": a, "rows": rows})


@require_admin
async def rollback_automation(request: web.Request) -> web.StreamResponse:
    """Restore a revision's fields as a new revision, as the signed-in user; back to the page."""
    ctx = _web(request)
    _ = wording_for(request)
    automation_id = int(request.match_info["id"])
    raw = (await request.post()).get("revision")
    if not (isinstance(raw, str) and raw.isascii() and raw.isdigit() and len(raw) < 10):
        raise Invalid("revision", _("Pick the revision to roll back to with its button."))
    revision = int(raw)
    try:
        saved = await ctx.admin.rollback(automation_id, revision, actor=current_user(request).actor)
    except InboxError as exc:
        if isinstance(exc, NotFound):
            raise
        await flash(request, _("Not rolled back: {why}", why=describe(exc, _)))
    else:
        await flash(request, _("“{name}” rolled back to revision {n}.", name=saved.name, n=revision))
    raise web.HTTPSeeOther(f"/settings/automations/{automation_id}/history")


def routes() -> list[web.RouteDef]:
    return [
        web.get("/settings/audit", audit_page),
        web.get(f"/settings/automations/{ID}/history", history_page),
        web.post(f"/settings/automations/{ID}/rollback", rollback_automation),
    ]
