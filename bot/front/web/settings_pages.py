"""The admins' pages: automations (list, add, edit, enable, disable, delete, test), labels (tags,
topics with priority and team, resolution reasons, teams), users and the audit log.

Every page is for admins (`require_admin`: an agent gets 403 with a page that says so) and every
form POST carries the CSRF token. Changes go through the admin and people services, the one write
path; a refusal is shown on the form, next to the field it names, with what was typed kept.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from aiohttp import web

from bot import plans
from bot.config import OrganizationSettings
from bot.domain import Action, ActionType, Automation, Role, User
from bot.engine.lint import UNSAVED
from bot.engine.normalize import format_keywords
from bot.errors import (
    Conflict,
    Forbidden,
    InboxError,
    Invalid,
    Missing,
    NotFound,
    PlanRefused,
    TurnedOff,
    UnknownLabel,
    UnknownTeam,
)
from bot.front import views
from bot.front.commands import warning_lines
from bot.front.web.auth import current_user, require_admin
from bot.front.web.context import WEB_KEY, WebContext
from bot.front.web.marks import segments
from bot.front.web.render import flash, render, wording_for
from bot.i18n import LANGUAGES, Wording
from bot.services.insight import Preview, parse_since

ID = r"{id:\d{1,18}}"  # longer ids do not exist (and would not fit the store's integers)
LABEL_PAGE_KINDS = ("tag", "topic", "reason", "team")
LANGUAGE_NAMES = {"en": "English", "fr": "Français"}  # each language in its own words
PREVIEW_SINCE = ("24h", "7d", "30d")  # the form's choices; 7 days unless another is picked


# --- wording shared by the pages --------------------------------------------------------------------


def describe(exc: InboxError, _: Wording) -> str:
    """A refusal in the page's language where we have the words; else the service's own
    description (which names the value and the way out)."""
    if isinstance(exc, Missing):
        return _("This is required.")
    if isinstance(exc, PlanRefused):
        return _("Your plan ({plan}) does not include this: it needs {needs}.", plan=exc.plan, needs=exc.needs)
    if isinstance(exc, TurnedOff):
        return _("Resolution reasons are turned off (resolution_reasons = false in [organization]).")
    if isinstance(exc, UnknownLabel | UnknownTeam):
        return _("“{name}” does not exist: add it under Labels first.", name=exc.name)
    if isinstance(exc, Conflict) and exc.field in ("name", "email"):
        return _("This name is taken: pick another one.") if exc.field == "name" else _("This email is taken.")
    return str(exc)


def status_of(exc: InboxError) -> int:
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, Conflict):
        return 409
    if isinstance(exc, Forbidden):
        return 403
    return 400


def type_names(_: Wording) -> dict[str, str]:
    return {"direct": _("Direct"), "group": _("Group"), "public": _("Public")}


def priority_names(_: Wording) -> dict[str, str]:
    return {"urgent": _("Urgent"), "high": _("High"), "normal": _("Normal"), "low": _("Low")}


def role_names(_: Wording) -> dict[str, str]:
    return {"admin": _("Admin"), "agent": _("Agent")}


def actions_in_words(actions: Iterable[Action], _: Wording) -> list[str]:
    """`tag closing`, `resolve the conversation (reason: Contact left)`, … in the page's language."""
    actions = list(actions)
    words: list[str] = []
    tags = [a.value for a in actions if a.type is ActionType.TAG and a.value]
    topics = [a.value for a in actions if a.type is ActionType.TOPIC and a.value]
    if tags:
        words.append(_("tag {names}", names=", ".join(tags)))
    if topics:
        words.append(_("apply topics {names}", names=", ".join(topics)))
    for a in actions:
        if a.type is ActionType.RESOLVE:
            words.append(
                _("resolve the conversation (reason: {reason})", reason=a.value)
                if a.value
                else _("resolve the conversation")
            )
        elif a.type is ActionType.CRM:
            words.append(_("send to Salesforce"))
    return words


def needs_plan(org: OrganizationSettings, action_type: ActionType) -> str | None:
    """The plan an action needs when the organization's plan does not include it, else None."""
    why = plans.refusal(org, [Action(action_type)])
    return why.needs if isinstance(why, PlanRefused) else None


class Posted(Protocol):
    """A posted form (aiohttp's multidict): one value per name, or all of them."""

    def __contains__(self, key: object, /) -> bool: ...
    def get(self, key: str, /) -> object: ...
    def getall(self, key: str, /) -> Sequence[object]: ...


def _texts(form: Posted, name: str) -> list[str]:
    """Every text value posted under `name` (a checkbox group, a multi-select), blanks dropped."""
    values = form.getall(name) if name in form else []
    return [v.strip() for v in values if isinstance(v, str) and v.strip()]


def _text(form: Posted, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _web(request: web.Request) -> WebContext:
    return request.app[WEB_KEY]


# --- automations ---------------------------------------------------------------------------------


@dataclass
class AutomationForm:
    """What the automation form shows: an automation's fields, or what an admin typed."""

    name: str = ""
    keywords: str = ""
    match: str = "any"
    tags: list[str] = field(default_factory=list)
    topics: list[str] = field(default_factory=list)
    resolve: bool = False
    reason: str = ""
    crm: bool = False
    channels: list[str] = field(default_factory=list)
    types: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, a: Automation) -> AutomationForm:
        resolve = next((x for x in a.actions if x.type is ActionType.RESOLVE), None)
        return cls(
            name=a.name,
            keywords=format_keywords(a.keywords),
            match=a.match.value,
            tags=[x.value for x in a.actions if x.type is ActionType.TAG and x.value],
            topics=[x.value for x in a.actions if x.type is ActionType.TOPIC and x.value],
            resolve=resolve is not None,
            reason=(resolve.value or "") if resolve is not None else "",
            crm=any(x.type is ActionType.CRM for x in a.actions),
            channels=list(a.channels),
            types=[t.value for t in a.types],
        )

    @classmethod
    def posted(cls, form: Posted) -> AutomationForm:
        reason = _text(form, "reason").strip()
        return cls(
            name=_text(form, "name"),
            keywords=_text(form, "keywords"),
            match=_text(form, "match") or "any",
            tags=_texts(form, "tags"),
            topics=_texts(form, "topics"),
            resolve=bool(_text(form, "resolve")) or bool(reason),  # a reason implies resolving
            reason=reason,
            crm=bool(_text(form, "crm")),
            channels=_texts(form, "channels"),
            types=_texts(form, "types"),
        )

    def fields(self) -> dict[str, Any]:
        """The automation's JSON form, as the admin service takes it."""
        return views.automation_fields(self)


async def _form_page(
    request: web.Request,
    form: AutomationForm,
    *,
    automation: Automation | None,
    error: InboxError | None = None,
    preview: dict[str, Any] | None = None,
    since: str = "7d",
) -> web.Response:
    """The add/edit form, with the refusal next to the field it names (the actions, for a plan),
    a preview's answer when one was asked, and a saved automation's lint warnings under it."""
    ctx = _web(request)
    org = ctx.settings.organization
    _ = wording_for(request)
    errors: dict[str, str] = {}
    if error is not None:
        at = error.field if error.field in ("name", "keywords", "match", "channels", "types", "since") else "actions"
        errors[at] = describe(error, _)
    warnings = warning_lines(await ctx.insight.lint_saved(automation), _) if automation is not None else []
    data = {
        "preview": preview,
        "since": since,
        "since_choices": since_choices(_),
        "warnings": warnings,
        "automation": automation,
        "form": form,
        "errors": errors,
        "tags": await ctx.admin.list_labels("tag"),
        "topics": [t.name for t in await ctx.admin.list_topics()],
        "reasons": await ctx.admin.list_labels("reason") if org.resolution_reasons else [],
        "channels": [c.name for c in ctx.settings.channels],
        "types": type_names(_),
        "needs": {t.value: needs_plan(org, t) for t in ActionType},
    }
    return await render(
        request, "settings/automation_form.html", data, status=status_of(error) if error is not None else 200
    )


@require_admin
async def automations_page(request: web.Request) -> web.StreamResponse:
    """The list, and the Test box's answer when it was asked (`?text=`: changes nothing)."""
    ctx = _web(request)
    _ = wording_for(request)
    automations = await ctx.admin.list_automations()
    org = ctx.settings.organization
    rows = [
        {
            "a": a,
            "keywords": format_keywords(a.keywords),
            "actions": actions_in_words(a.actions, _),
            "problem": describe(why, _) if (why := plans.refusal(org, a.actions)) is not None else None,
        }
        for a in automations
    ]
    test: dict[str, Any] = {"text": request.query.get("text"), "channel": "", "type": "", "error": None}
    status = 200
    if test["text"] is not None:
        test["channel"] = request.query.get("channel", "")
        test["type"] = request.query.get("type", "")
        try:
            result = await ctx.admin.test(test["text"], channel=test["channel"] or None, type=test["type"] or None)
        except Invalid as exc:
            test["error"] = describe(exc, _)
            status = 400
        else:
            test["firings"] = [
                {
                    "name": f.rule.name,
                    "keywords": ", ".join(f"“{k}”" for k in f.keywords),
                    "actions": actions_in_words(f.actions, _),
                }
                for f in result.evaluation.firings
            ]
            test["skipped"] = [(name, describe(why, _)) for name, why in result.skipped]
    data = {
        "rows": rows,
        "test": test,
        "channels": [c.name for c in ctx.settings.channels],
        "types": type_names(_),
    }
    return await render(request, "settings/automations.html", data, status=status)


@require_admin
async def new_automation_form(request: web.Request) -> web.StreamResponse:
    return await _form_page(request, AutomationForm(), automation=None)


@require_admin
async def create_automation(request: web.Request) -> web.StreamResponse:
    """Saved = enabled. A refusal shows the form again with what was typed; so does Preview,
    with what the automation would have done (nothing is saved)."""
    posted = await request.post()
    form = AutomationForm.posted(posted)
    if "preview" in posted:
        return await _preview_page(request, form, posted, automation=None)
    try:
        created = await _web(request).admin.create(form.fields(), actor=current_user(request).actor)
    except InboxError as exc:
        return await _form_page(request, form, automation=None, error=exc)
    _ = wording_for(request)
    await flash(request, _("Automation “{name}” saved and enabled.", name=created.name))
    raise web.HTTPSeeOther(await _after_save(request, created))


async def _automation(request: web.Request) -> Automation:
    return await _web(request).admin.find(int(request.match_info["id"]))


@require_admin
async def edit_automation_form(request: web.Request) -> web.StreamResponse:
    a = await _automation(request)
    return await _form_page(request, AutomationForm.of(a), automation=a)


@require_admin
async def update_automation(request: web.Request) -> web.StreamResponse:
    """Saving an edit keeps the automation enabled or disabled as it was."""
    a = await _automation(request)
    posted = await request.post()
    form = AutomationForm.posted(posted)
    if "preview" in posted:
        return await _preview_page(request, form, posted, automation=a)
    try:
        saved = await _web(request).admin.update(a.id, form.fields(), actor=current_user(request).actor)
    except InboxError as exc:
        if isinstance(exc, NotFound):
            raise
        return await _form_page(request, form, automation=a, error=exc)
    _ = wording_for(request)
    await flash(request, _("Automation “{name}” saved.", name=saved.name))
    raise web.HTTPSeeOther(await _after_save(request, saved))


async def _after_save(request: web.Request, saved: Automation) -> str:
    """Where a save leads: back to the list, or to the automation's form when it raises warnings
    (they are shown under the form; they never block the save)."""
    warnings = await _web(request).insight.lint_saved(saved)
    return f"/settings/automations/{saved.id}#warnings" if warnings else "/settings/automations"


def since_choices(_: Wording) -> dict[str, str]:
    return {"24h": _("the last 24 hours"), "7d": _("the last 7 days"), "30d": _("the last 30 days")}


def preview_view(p: Preview, _: Wording) -> dict[str, Any]:
    """A preview's answer as the form shows it: figures with their labels, the examples with the
    found words marked, the warnings."""
    c = p.counts
    return {
        "since": p.since.strftime("%Y-%m-%d %H:%M UTC"),
        "figures": [
            (_("Messages scanned"), c.messages_scanned),
            (_("Conversations scanned"), p.conversations_scanned),
            (_("Messages it would fire on"), c.would_fire_messages),
            (_("Conversations it would fire in"), c.would_fire_conversations),
            (_("Messages it would tag"), c.would_tag),
            (_("Conversations it would give topics"), c.would_apply_topics),
            (_("Conversations it would resolve"), c.would_resolve),
            (_("Conversations it would send to Salesforce"), c.would_send_to_crm),
        ],
        "examples": [
            {"conversation_id": x.conversation_id, "parts": segments(x.text, x.found)} for x in c.examples[:5]
        ],
        "warnings": warning_lines(p.warnings, _),
    }


async def _preview_page(
    request: web.Request, form: AutomationForm, posted: Posted, *, automation: Automation | None
) -> web.Response:
    """What the typed automation would have done to the stored messages since the chosen time,
    checked as a save checks it (the same refusals, on the same fields). Nothing is saved."""
    ctx = _web(request)
    _ = wording_for(request)
    since = _text(posted, "since") or "7d"
    since = since if since in PREVIEW_SINCE else "7d"
    try:
        start = parse_since(since, now=datetime.now(UTC))
        rule = await ctx.admin.candidate(form.fields(), id=automation.id if automation is not None else UNSAVED)
        enabled = automation.enabled if automation is not None else True
        p = await ctx.insight.preview(rule, since=start, enabled=enabled)
    except InboxError as exc:
        return await _form_page(request, form, automation=automation, error=exc, since=since)
    return await _form_page(request, form, automation=automation, preview=preview_view(p, _), since=since)


async def _set_enabled(request: web.Request, enabled: bool) -> web.StreamResponse:
    a = await _automation(request)
    _ = wording_for(request)
    try:
        saved, _changed = await _web(request).admin.set_enabled(a.id, enabled, actor=current_user(request).actor)
    except Forbidden as exc:  # the plan no longer allows it: say so on the list
        await flash(request, _("“{name}” was not enabled: {why}", name=a.name, why=describe(exc, _)))
    else:
        if saved.enabled:
            note = _("Automation “{name}” enabled.", name=saved.name)
        else:
            note = _("Automation “{name}” disabled.", name=saved.name)
        await flash(request, note)
    raise web.HTTPSeeOther("/settings/automations")


@require_admin
async def enable_automation(request: web.Request) -> web.StreamResponse:
    return await _set_enabled(request, True)


@require_admin
async def disable_automation(request: web.Request) -> web.StreamResponse:
    return await _set_enabled(request, False)


@require_admin
async def confirm_delete_automation(request: web.Request) -> web.StreamResponse:
    """Deleting asks first: this page, with the one button that deletes."""
    a = await _automation(request)
    return await render(request, "settings/confirm_delete.html", {"a": a})


@require_admin
async def delete_automation(request: web.Request) -> web.StreamResponse:
    deleted = await _web(request).admin.delete(int(request.match_info["id"]), actor=current_user(request).actor)
    _ = wording_for(request)
    await flash(request, _("Automation “{name}” deleted. Its past runs stay.", name=deleted.name))
    raise web.HTTPSeeOther("/settings/automations")


# --- labels: tags, topics, reasons, teams ------------------------------------------------------------


async def _labels_page(
    request: web.Request,
    *,
    error: InboxError | None = None,
    at: str | None = None,
    typed: str = "",
) -> web.Response:
    """The four lists and their forms; a refusal is shown beside the form (`at`) it came from."""
    ctx = _web(request)
    _ = wording_for(request)
    data = {
        "tags": await ctx.admin.list_labels("tag"),
        "topics": await ctx.admin.list_topics(),
        "reasons": await ctx.admin.list_labels("reason"),
        "reasons_on": ctx.settings.organization.resolution_reasons,
        "teams": [t.name for t in await ctx.people.list_teams()],
        "priorities": priority_names(_),
        "errors": {at: describe(error, _)} if error is not None and at else {},
        "typed": {at: typed} if at else {},
    }
    status = status_of(error) if error is not None else 200
    return await render(request, "settings/labels.html", data, status=status)


@require_admin
async def labels_page(request: web.Request) -> web.StreamResponse:
    return await _labels_page(request)


def _kind(request: web.Request) -> str:
    kind = request.match_info["kind"]
    if kind not in LABEL_PAGE_KINDS:
        raise web.HTTPNotFound()
    return kind


@require_admin
async def add_label(request: web.Request) -> web.StreamResponse:
    kind = _kind(request)
    form = await request.post()
    name = _text(form, "name")
    ctx = _web(request)
    try:
        if kind == "team":
            added = (await ctx.people.add_team(name, actor=current_user(request).actor)).name
        elif kind == "topic":
            team = _text(form, "team") or None
            priority = _text(form, "priority") or None
            added = (
                await ctx.admin.add_topic(name, priority=priority, team=team, actor=current_user(request).actor)
            ).name
        else:
            added = await ctx.admin.add_label(kind, name, actor=current_user(request).actor)
    except InboxError as exc:
        return await _labels_page(request, error=exc, at=f"add-{kind}", typed=name)
    _ = wording_for(request)
    await flash(request, _("“{name}” added.", name=added))
    raise web.HTTPSeeOther(f"/settings/labels#{kind}s")


@require_admin
async def delete_label(request: web.Request) -> web.StreamResponse:
    kind = _kind(request)
    name = _text(await request.post(), "name")
    ctx = _web(request)
    try:
        if kind == "team":
            deleted = (await ctx.people.delete_team(name, actor=current_user(request).actor)).name
        else:
            deleted = await ctx.admin.delete_label(kind, name, actor=current_user(request).actor)
    except InboxError as exc:
        return await _labels_page(request, error=exc, at=f"list-{kind}")
    _ = wording_for(request)
    await flash(request, _("“{name}” deleted.", name=deleted))
    raise web.HTTPSeeOther(f"/settings/labels#{kind}s")


@require_admin
async def change_topic(request: web.Request) -> web.StreamResponse:
    """A topic's priority and team (blank team: none); its open conversations follow."""
    form = await request.post()
    name = _text(form, "name")
    try:
        changed = await _web(request).admin.change_topic(
            name,
            priority=_text(form, "priority") or None,
            team=_text(form, "team") or None,
            actor=current_user(request).actor,
        )
    except InboxError as exc:
        return await _labels_page(request, error=exc, at="list-topic")
    _ = wording_for(request)
    await flash(request, _("Topic “{name}” changed.", name=changed.name))
    raise web.HTTPSeeOther("/settings/labels#topics")


# --- users ---------------------------------------------------------------------------------------------


async def _users_page(
    request: web.Request,
    *,
    error: InboxError | None = None,
    typed: Mapping[str, Any] | None = None,
    created: tuple[User, str | None] | None = None,
) -> web.Response:
    ctx = _web(request)
    _ = wording_for(request)
    errors: dict[str, str] = {}
    if error is not None:
        at = error.field if error.field in ("email", "name", "role", "teams", "password") else "form"
        errors[at] = describe(error, _)
    data = {
        "users": await ctx.people.list_users(),
        "teams": [t.name for t in await ctx.people.list_teams()],
        "roles": role_names(_),
        "languages": LANGUAGE_NAMES,
        "errors": errors,
        "typed": dict(typed or {}),
        "created": created,
        "me": current_user(request).id,
    }
    status = status_of(error) if error is not None else 201 if created is not None else 200
    return await render(request, "settings/users.html", data, status=status)


@require_admin
async def users_page(request: web.Request) -> web.StreamResponse:
    return await _users_page(request)


@require_admin
async def add_user(request: web.Request) -> web.StreamResponse:
    """A new user; a generated password is shown once, on this answer only (never stored in the
    session, never shown again)."""
    form = await request.post()
    typed = {
        "email": _text(form, "email").strip(),
        "name": _text(form, "name").strip(),
        "role": _text(form, "role") or "agent",
        "teams": _texts(form, "teams"),
    }
    password = _text(form, "password")
    try:
        new = await _web(request).people.add_user(
            actor=current_user(request).actor,
            email=typed["email"],
            role=typed["role"],
            name=typed["name"] or None,
            teams=typed["teams"],
            password=password or None,
        )
    except InboxError as exc:
        return await _users_page(request, error=exc, typed=typed)
    return await _users_page(request, created=(new.user, new.password))


async def _user(request: web.Request) -> User:
    return await _web(request).people.get_user(int(request.match_info["id"]))


async def _user_form(request: web.Request, user: User, *, error: InboxError | None = None) -> web.Response:
    ctx = _web(request)
    _ = wording_for(request)
    data = {
        "u": user,
        "teams": [t.name for t in await ctx.people.list_teams()],
        "roles": role_names(_),
        "languages": LANGUAGE_NAMES,
        "error": describe(error, _) if error is not None else None,
        "me": current_user(request).id,
    }
    return await render(request, "settings/user_form.html", data, status=status_of(error) if error else 200)


@require_admin
async def edit_user_form(request: web.Request) -> web.StreamResponse:
    return await _user_form(request, await _user(request))


@require_admin
async def update_user(request: web.Request) -> web.StreamResponse:
    """Role, name, teams (the whole list) and language (blank: the organization's)."""
    user = await _user(request)
    form = await request.post()
    language = _text(form, "language")
    role = _text(form, "role") or None
    if user.id == current_user(request).id and role not in (None, Role.ADMIN.value):
        _ = wording_for(request)
        error = Invalid("role", _("You cannot take the admin role from yourself: ask another admin."))
        return await _user_form(request, user, error=error)
    try:
        saved = await _web(request).people.update_user(
            user.id,
            actor=current_user(request).actor,
            name=_text(form, "name").strip() or None,
            role=role,
            teams=_texts(form, "teams"),
            language=language if language in LANGUAGES else None,
        )
    except InboxError as exc:
        if isinstance(exc, NotFound):
            raise
        return await _user_form(request, user, error=exc)
    _ = wording_for(request)
    await flash(request, _("User {email} saved.", email=saved.email))
    raise web.HTTPSeeOther("/settings/users")


async def _set_active(request: web.Request, active: bool) -> web.StreamResponse:
    user = await _user(request)
    _ = wording_for(request)
    if user.id == current_user(request).id:
        await flash(request, _("You cannot deactivate yourself: ask another admin."))
        raise web.HTTPSeeOther("/settings/users")
    saved = await _web(request).people.update_user(user.id, active=active, actor=current_user(request).actor)
    if saved.active:
        await flash(request, _("User {email} reactivated.", email=saved.email))
    else:
        await flash(request, _("User {email} deactivated: their sessions have ended.", email=saved.email))
    raise web.HTTPSeeOther("/settings/users")


@require_admin
async def deactivate_user(request: web.Request) -> web.StreamResponse:
    return await _set_active(request, False)


@require_admin
async def reactivate_user(request: web.Request) -> web.StreamResponse:
    return await _set_active(request, True)


def routes() -> list[web.RouteDef]:
    """Every admin page, in one place."""
    return [
        web.get("/settings/automations", automations_page),
        web.get("/settings/automations/new", new_automation_form),
        web.post("/settings/automations/new", create_automation),
        web.get(f"/settings/automations/{ID}", edit_automation_form),
        web.post(f"/settings/automations/{ID}", update_automation),
        web.post(f"/settings/automations/{ID}/enable", enable_automation),
        web.post(f"/settings/automations/{ID}/disable", disable_automation),
        web.get(f"/settings/automations/{ID}/delete", confirm_delete_automation),
        web.post(f"/settings/automations/{ID}/delete", delete_automation),
        web.get("/settings/labels", labels_page),
        web.post("/settings/labels/{kind}/add", add_label),
        web.post("/settings/labels/{kind}/delete", delete_label),
        web.post("/settings/labels/topic/change", change_topic),
        web.get("/settings/users", users_page),
        web.post("/settings/users/new", add_user),
        web.get(f"/settings/users/{ID}", edit_user_form),
        web.post(f"/settings/users/{ID}", update_user),
        web.post(f"/settings/users/{ID}/deactivate", deactivate_user),
        web.post(f"/settings/users/{ID}/reactivate", reactivate_user),
    ]
