"""The agents' pages: the queue (`/inbox`) and one conversation (`/inbox/{id}`), and the forms a
conversation page posts (reply, resolve, reopen, assign to me, topics). Every change goes through
the inbox service as the signed-in user (`user:<id>`); each form POST answers with a redirect back
to the page (POST → redirect → GET)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from babel.dates import TIMEDELTA_UNITS, format_timedelta
from markupsafe import Markup, escape

from bot.domain import PRIORITY_ORDER, Contact, Conversation, Direction, Message, Priority, User
from bot.errors import InboxError, Invalid, NotFound
from bot.front import views
from bot.front.api import decode_cursor, decode_queue_cursor, encode_cursor, encode_queue_cursor
from bot.front.views import delivery_state, iso
from bot.front.web.auth import current_user, require_user
from bot.front.web.context import WEB_KEY, WebContext
from bot.front.web.render import flash, page_language, render, wording_for
from bot.front.web.why_view import why_items
from bot.i18n import Wording
from bot.store import repo

PAGE_SIZE = 50
FILTERS = ("status", "channel", "topic", "team", "assignee", "priority", "q")
MAX_FILTER = 200  # longer than any name or search a person types
MAX_REPLY = 20_000
FIRST_LINE = 140
PRIORITIES = tuple(p.value for p in Priority)
ACTOR = re.compile(r"(user|agent|automation):(.+)")


# --- wording shared by both pages ---------------------------------------------------------------------


def priority_words(_: Wording) -> dict[str, str]:
    return {"urgent": _("urgent"), "high": _("high"), "normal": _("normal"), "low": _("low")}


def type_words(_: Wording) -> dict[str, str]:
    return {"direct": _("direct"), "group": _("group"), "public": _("public")}


def delivery_words(_: Wording) -> dict[str, str]:
    return {
        "stored": _("stored (this channel does not send replies)"),
        "pending": _("sending"),
        "sent": _("sent"),
        "failed": _("not delivered"),
    }


def when(iso: str | None) -> str:
    """An instant as the pages show it: `2026-11-24 10:00 UTC`."""
    return f"{iso[:16].replace('T', ' ')} UTC" if iso else ""


def waited(since: datetime | None, lang: str, now: datetime) -> str:
    """How long the contact has waited since `since`, in words of the page's language (`3 hours`),
    or ''."""
    if since is None:
        return ""
    seconds = max((now - since).total_seconds(), 0.0)
    # Babel words the largest unit that holds at least one (`threshold=1.0`), its count rounded:
    # those two say the words, so each is worded once (a queue page words 50 waits per view).
    for unit, per_unit in TIMEDELTA_UNITS:
        if seconds / per_unit >= 1.0 or unit == "second":
            count = max(1, round(seconds / per_unit)) if seconds else 0
            return _waited_words(lang, unit, count, seconds)
    return ""  # pragma: no cover - the last unit always words it


_WAITED_WORDS: dict[tuple[str, str, int], str] = {}


def _waited_words(lang: str, unit: str, count: int, seconds: float) -> str:
    key = (lang, unit, count)
    words = _WAITED_WORDS.get(key)
    if words is None:
        words = format_timedelta(timedelta(seconds=seconds), locale=lang, threshold=1.0)
        if len(_WAITED_WORDS) < 10_000:
            _WAITED_WORDS[key] = words
    return words


def first_line(text: str) -> str:
    lines = text.splitlines()
    line = lines[0].strip() if len(lines) == 1 else next((ln.strip() for ln in lines if ln.strip()), "")
    return line if len(line) <= FIRST_LINE else line[: FIRST_LINE - 1] + "…"


# --- the queue -------------------------------------------------------------------------------------


def _filters(request: web.Request) -> dict[str, str]:
    return {k: request.query.get(k, "").strip()[:MAX_FILTER] for k in FILTERS}


def _query(filters: dict[str, str], **changes: str) -> str:
    """The query string of the queue with `filters` (blank ones left out) and `changes`."""
    values = {k: v for k, v in {**filters, **changes}.items() if v}
    return "?" + urlencode(values) if values else ""


@require_user
async def queue_page(request: web.Request) -> web.StreamResponse:
    """Open conversations in the queue's order (priority, then the longest wait), or the resolved
    ones newest first; filtered, searched, a page at a time."""
    ctx = request.app[WEB_KEY]
    user = current_user(request)
    f = _filters(request)
    status = "resolved" if f["status"] == "resolved" else "open"
    f["status"] = "" if status == "open" else status
    in_queue_order = status == "open"
    cursor = request.query.get("cursor", "")
    problem: str | None = None
    convs = []
    try:
        convs = await ctx.inbox.conversations(
            status=status,
            channel=f["channel"] or None,
            topic=f["topic"] or None,
            team=f["team"] or None,
            assignee=f["assignee"] or None,
            priority=f["priority"] or None,
            q=f["q"] or None,
            me=user,
            queue_order=in_queue_order,
            after=decode_queue_cursor(cursor) if in_queue_order else None,
            before_id=None if in_queue_order else decode_cursor(cursor),
            limit=PAGE_SIZE + 1,
        )
    except Invalid as exc:
        problem = _filter_problem(wording_for(request), exc)
    more = len(convs) > PAGE_SIZE
    convs = convs[:PAGE_SIZE]
    _ = wording_for(request)
    people = await ctx.people.list_users(limit=USERS_LISTED)
    names = {u.id: u.name for u in people}  # whom rows are assigned to: among them, nearly always
    missing = {c.assignee_id for c in convs if c.assignee_id is not None and c.assignee_id not in names}
    names.update(await _user_names(ctx, missing) if missing else {})
    topics, tags = await repo.conversation_labels([c.id for c in convs])
    rows = _queue_rows(
        _,
        convs,
        contacts=await repo.get_contacts([c.contact_id for c in convs]),
        topics=topics,
        tags=tags,
        lasts=await repo.last_messages([c.id for c in convs]),
        users=names,
        lang=page_language(request, user),
    )
    next_url = None
    if more:
        last_conv = convs[-1]
        token = encode_queue_cursor(last_conv.queue_key) if in_queue_order else encode_cursor(last_conv.id)
        next_url = "/inbox" + _query(f, cursor=token)
    return await render(
        request,
        "inbox.html",
        {
            "status": status,
            "filters": f,
            "rows": rows,
            "problem": problem,
            "next_url": next_url,
            "first_url": ("/inbox" + _query(f)) if cursor else None,
            "open_url": "/inbox" + _query({**f, "status": ""}),
            "resolved_url": "/inbox" + _query({**f, "status": "resolved"}),
            "choices": await _choices(ctx, people),
            "priorities": priority_words(_),
        },
        status=400 if problem else 200,
    )


def _queue_rows(
    _: Wording,
    convs: list[Conversation],
    *,
    contacts: Mapping[int, Contact],
    topics: Mapping[int, list[str]],
    tags: Mapping[int, list[str]],
    lasts: Mapping[int, Message],
    users: Mapping[int, str],
    lang: str,
) -> Markup:
    """The queue's table rows (`<tr>`), worded once from the store's records.

    Written here rather than in the template for the reason `message_items` gives (ten `{{ }}` a
    row, fifty rows): what a person wrote (contact names, last lines, topics, tags, names) is
    escaped here, each once; the words a page repeats (channels, types, priorities, waits) once a
    page; ids and priority values are ours."""
    now = datetime.now(UTC)
    types, priorities = type_words(_), priority_words(_)
    repeated: dict[str, Markup] = {}

    def once(text: str) -> Markup:
        if text not in repeated:
            repeated[text] = escape(text)
        return repeated[text]

    out = []
    for c in convs:
        last = lasts.get(c.id)
        contact = contacts.get(c.contact_id)
        name = (contact.name or contact.platform_id or "") if contact is not None else ""
        assigned = ""
        if c.assignee_id is not None:
            assigned = once(_("assigned to {name}", name=users.get(c.assignee_id) or ""))
            assigned = f"<br><small>{assigned}</small>"
        priority = PRIORITY_ORDER[c.priority].value
        out.append(
            f'<tr>\n<td><a href="/inbox/{c.id}">{escape(name)}</a>{assigned}</td>\n'
            f"<td>{once(c.channel)}</td>\n<td>{once(types.get(c.type.value, c.type.value))}</td>\n"
            f'<td class="first-line">{escape(first_line(last.text)) if last is not None else ""}</td>\n'
            f"<td>{_chips(topics.get(c.id, []))}</td>\n<td>{_chips(tags.get(c.id, []))}</td>\n"
            f'<td class="priority-{priority}">{once(priorities.get(priority, priority))}</td>\n'
            f"<td>{once(waited(c.waiting_since, lang, now))}</td>\n</tr>\n"
        )
    return Markup("".join(out))


def _chips(names: Iterable[str]) -> str:
    """Topics or tags as the pages show them, each name escaped (an admin or an automation wrote it)."""
    return "".join(f'<span class="chip">{escape(n)}</span>' for n in names)


def _filter_problem(_: Wording, exc: Invalid) -> str:
    field = {
        "team": _("Team"),
        "assignee": _("Assignee"),
        "priority": _("Priority"),
        "status": _("Status"),
        "cursor": _("Page"),
    }.get(exc.field or "", exc.field or "")
    return _("{field}: {problem}", field=field, problem=str(exc))


USERS_LISTED = 500  # the assignee filter's choices


async def _choices(ctx: WebContext, users: list[User]) -> dict[str, Any]:
    """What the filters offer: every channel, topic, team and active user (of `users`)."""
    return {
        "channels": [c.name for c in ctx.settings.channels],
        "topics": await ctx.admin.list_labels("topic"),
        "teams": [t.name for t in await ctx.people.list_teams()],
        "users": [(str(u.id), u.name) for u in users if u.active],
    }


# --- one conversation ---------------------------------------------------------------------------------


def _conversation_id(request: web.Request) -> int:
    raw = request.match_info["id"]
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        raise NotFound("conversation", raw)
    return int(raw)


async def _user_names(ctx: WebContext, ids: Iterable[int]) -> dict[int, str]:
    return {user_id: u.name for user_id, u in (await ctx.people.users_by_id(list(ids))).items()}


def actor_words(_: Wording, actor: str | None, *, users: dict[int, str], automations: dict[int, str]) -> str:
    """Who did something, as a person reads it: a user's name, an automation's, Salesforce."""
    if actor is None:
        return ""
    if actor == "salesforce":
        return "Salesforce"
    match = ACTOR.fullmatch(actor)
    if match is None:
        return actor
    kind, ref = match.groups()
    if kind == "user" and ref.isdigit():
        return users.get(int(ref), _("user #{id}", id=ref))
    if kind == "automation" and ref.isdigit():
        return automations.get(int(ref), _("automation #{id}", id=ref))
    return ref  # an agent named by an integration (`agent:<id>`)


def run_words(_: Wording, run: dict[str, Any]) -> str:
    """What one automation run did and why, after its name: `resolved this conversation: found
    “au revoir”`."""
    done = []
    for action in run["actions"]:
        match action.get("type"):
            case "tag":
                done.append(_("tagged the message “{tag}”", tag=action.get("tag", "")))
            case "topic":
                done.append(_("applied the topic “{topic}”", topic=action.get("topic", "")))
            case "resolve" if action.get("reason"):
                done.append(_("resolved this conversation (“{reason}”)", reason=action["reason"]))
            case "resolve":
                done.append(_("resolved this conversation"))
            case "crm":
                done.append(_("sent this conversation to Salesforce"))
    keywords = ", ".join(f"“{k}”" for k in run["keywords"])
    return _("{actions}: found {keywords}", actions=", ".join(done), keywords=keywords)


def event_kinds(_: Wording) -> dict[str, str]:
    """Each kind of event in a conversation's history, in words."""
    return {
        "opened": _("opened"),
        "resolved": _("resolved"),
        "reopened": _("reopened"),
        "assigned": _("assigned"),
        "topics_changed": _("topics changed"),
        "replied": _("replied"),
    }


def message_items(
    _: Wording,
    messages: Sequence[Message],
    tags: Mapping[int, list[str]],
    *,
    contact: str,
    who: Callable[[str | None], str],
) -> Markup:
    """The conversation's messages as the page's `<li>` items, oldest first.

    Written here rather than in the template: a long conversation shows hundreds, and each `{{ }}`
    of a template is an escape call that makes a Markup object (five a message cost more than the
    rest of the page). Whatever a person wrote (the contact's text and name, an agent's name, a
    tag) is escaped here, each text once; our own words once a page; the direction and the
    timestamps are ours and hold nothing to escape."""
    wrote = escape(_("{name} wrote", name=contact))
    replied: dict[str | None, Markup] = {}
    deliveries = {state: f" · {escape(words)}" for state, words in delivery_words(_).items()}
    tags_word = escape(_("Tags"))
    items = []
    for m in messages:
        at = iso(m.sent_at)
        byline, delivery = wrote, ""
        if m.direction is Direction.OUTBOUND:
            if m.author not in replied:
                replied[m.author] = escape(_("{name} replied", name=who(m.author)))
            byline = replied[m.author]
            state = delivery_state(m)
            delivery = deliveries.get(state) or f" · {escape(state)}"
        chips = ""
        if tags.get(m.id):
            chips = f'<p class="meta">{tags_word}: {_chips(tags[m.id])}</p>\n'
        items.append(
            f'<li class="message {m.direction.value}">\n'
            f'<p class="meta">{byline} · <time datetime="{at}">{when(at)}</time>{delivery}</p>\n'
            f'<p class="text">{escape(m.text)}</p>\n{chips}</li>\n'
        )
    return Markup("".join(items))


@dataclass(slots=True)
class EventLine:
    """One event of the conversation's history, worded."""

    at: str | None
    when: str
    words: str
    who: str
    detail: str


def case_link(ctx: WebContext, crm: dict[str, Any] | None) -> str | None:
    """Where the Salesforce Case opens, when the instance is known."""
    sf = ctx.settings.crm.salesforce
    if crm is None or sf is None or not crm.get("case_id"):
        return None
    return f"{sf.instance_url.rstrip('/')}/lightning/r/Case/{crm['case_id']}/view"


@require_user
async def conversation_page(request: web.Request) -> web.StreamResponse:
    """One conversation: its messages, automations, history and what can be done to it. Built once
    from the store's records (not from the API's JSON)."""
    ctx = request.app[WEB_KEY]
    cid = _conversation_id(request)
    conv = await repo.get_conversation(cid)
    if conv is None:
        raise NotFound("conversation", cid)
    (data,) = await views.conversations_json([conv])
    messages, tags = await repo.conversation_messages(cid)
    runs = await repo.conversation_runs(cid)
    history = views.events_json(conv, await repo.conversation_events(cid), messages)
    _ = wording_for(request)
    automations = {r.automation_id: r.automation_name for r in runs}
    actors = [conv.resolved_by, *(m.author for m in messages if m.direction is Direction.OUTBOUND)]
    actors += [e["by"] for e in history] + [e["detail"] for e in history if e["kind"] == "assigned"]
    user_ids = [int(m.group(2)) for a in actors if a and (m := ACTOR.fullmatch(a)) and m.group(1) == "user"]
    user_ids += [conv.assignee_id] if conv.assignee_id is not None else []
    users = await _user_names(ctx, {i for i in user_ids if i < 2**62})

    def who(actor: str | None) -> str:
        return actor_words(_, actor, users=users, automations=automations)

    contact = data["contact"]
    data["runs"] = [views.run_json(r) for r in runs]
    for r in data["runs"]:
        r["words"] = run_words(_, r)
    kinds = event_kinds(_)
    events = [
        EventLine(
            at=e["at"],
            when=when(e["at"]),
            words=kinds.get(e["kind"], e["kind"]),
            who=who(e["by"]),
            detail=who(e["detail"]) if e["kind"] == "assigned" else (e["detail"] or ""),
        )
        for e in history
    ]
    me = current_user(request)
    reasons_on = ctx.settings.organization.resolution_reasons
    topics = await ctx.admin.list_labels("topic")
    return await render(
        request,
        "conversation.html",
        {
            "c": data,
            "messages": message_items(_, messages, tags, contact=contact["name"] or "", who=who),
            "events": events,
            "contact": contact["name"] or contact["id"] or "",
            "resolved_by": who(conv.resolved_by),
            "resolved_at": when(data["resolved_at"]),
            "reasons": await ctx.admin.list_labels("reason") if reasons_on else [],
            "reasons_on": reasons_on,
            "addable_topics": [t for t in topics if t.casefold() not in {x.casefold() for x in data["topics"]}],
            "case_url": case_link(ctx, data["crm"]),
            "mine": conv.assignee_id is not None and conv.assignee_id == me.id,
            "priorities": priority_words(_),
            "types": type_words(_),
            "why": await why_items(ctx, _, conv, runs, messages),
        },
    )


# --- what a conversation page posts -----------------------------------------------------------------


async def _act(request: web.Request, done: str | None = None) -> web.StreamResponse:
    """Back to the conversation (POST → redirect → GET), with a note when there is one."""
    if done:
        await flash(request, done)
    raise web.HTTPSeeOther(f"/inbox/{_conversation_id(request)}")


async def _refused(request: web.Request, exc: InboxError) -> web.StreamResponse:
    _ = wording_for(request)
    return await _act(request, _("Not done: {why}", why=str(exc)))


def _field(form: Any, name: str) -> str:
    value = form.get(name, "")
    return value if isinstance(value, str) else ""


@require_user
async def reply(request: web.Request) -> web.StreamResponse:
    ctx, user, _ = request.app[WEB_KEY], current_user(request), wording_for(request)
    text = _field(await request.post(), "text")
    if not text.strip():
        return await _act(request, _("Write a reply before sending it."))
    if len(text) > MAX_REPLY or "\x00" in text:
        return await _act(request, _("A reply has at most {n} characters.", n=MAX_REPLY))
    try:
        await ctx.inbox.reply(_conversation_id(request), text=text, author=user.actor)
    except InboxError as exc:
        return await _refused(request, exc)
    return await _act(request, _("Reply sent."))


@require_user
async def resolve(request: web.Request) -> web.StreamResponse:
    ctx, user, _ = request.app[WEB_KEY], current_user(request), wording_for(request)
    given = _field(await request.post(), "reason").strip()
    try:
        reason = await ctx.admin.resolution_reason(given or None)
        await ctx.inbox.resolve(_conversation_id(request), actor=user.actor, reason=reason)
    except InboxError as exc:
        return await _refused(request, exc)
    return await _act(request, _("Conversation resolved."))


@require_user
async def reopen(request: web.Request) -> web.StreamResponse:
    ctx, user, _ = request.app[WEB_KEY], current_user(request), wording_for(request)
    try:
        await ctx.inbox.reopen(_conversation_id(request), actor=user.actor)
    except InboxError as exc:
        return await _refused(request, exc)
    return await _act(request, _("Conversation reopened."))


@require_user
async def assign_to_me(request: web.Request) -> web.StreamResponse:
    ctx, user, _ = request.app[WEB_KEY], current_user(request), wording_for(request)
    try:
        await ctx.inbox.assign(_conversation_id(request), user.id, by=user, actor=user.actor)
    except InboxError as exc:
        return await _refused(request, exc)
    return await _act(request, _("Assigned to you."))


@require_user
async def topics(request: web.Request) -> web.StreamResponse:
    """Add one topic (`add`) or remove one (`remove`) by hand."""
    ctx, user, _ = request.app[WEB_KEY], current_user(request), wording_for(request)
    form = await request.post()
    add, remove = _field(form, "add").strip(), _field(form, "remove").strip()
    try:
        added, removed = await ctx.inbox.change_topics(
            _conversation_id(request), add=[add] if add else [], remove=[remove] if remove else [], actor=user.actor
        )
    except InboxError as exc:
        return await _refused(request, exc)
    if added:
        return await _act(request, _("Topic “{name}” added.", name=added[0]))
    if removed:
        return await _act(request, _("Topic “{name}” removed.", name=removed[0]))
    return await _act(request)


def routes() -> list[web.RouteDef]:
    return [
        web.get("/inbox", queue_page),
        web.get(r"/inbox/{id}", conversation_page),
        web.post(r"/inbox/{id}/reply", reply),
        web.post(r"/inbox/{id}/resolve", resolve),
        web.post(r"/inbox/{id}/reopen", reopen),
        web.post(r"/inbox/{id}/assign", assign_to_me),
        web.post(r"/inbox/{id}/topics", topics),
    ]
