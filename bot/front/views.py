"""JSON shapes of the API, built from the store's records: conversations (with their place in the
queue and their history), messages, automations, runs, outbox jobs."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from bot.domain import (
    PRIORITY_ORDER,
    AuditEntry,
    Automation,
    AutomationRevision,
    AutomationRun,
    Contact,
    Conversation,
    ConversationEvent,
    Delivery,
    Direction,
    Message,
    OutboxJob,
    Team,
    Topic,
    User,
)
from bot.engine import Evaluation
from bot.engine.lint import Kind as LintKind
from bot.engine.lint import Warning as LintWarning
from bot.engine.offsets import Found
from bot.engine.why import WhyEntry
from bot.services.insight import Preview
from bot.store import queue, repo


def iso(dt: datetime | None) -> str | None:
    """An instant as the API (and a page's `<time datetime>`) writes it: `2026-11-24T10:00:00Z`."""
    return dt.isoformat().replace("+00:00", "Z") if dt else None


def message_json(m: Message, tags: list[str]) -> dict[str, Any]:
    """A message; `author` and `delivery` only for ours (a contact's message has neither)."""
    outbound = m.direction is Direction.OUTBOUND
    return {
        "id": m.id,
        "direction": m.direction.value,
        "text": m.text,
        "tags": tags,
        "sent_at": iso(m.sent_at),
        "author": m.author if outbound else None,
        "delivery": delivery_state(m) if outbound else None,
    }


def delivery_state(m: Message) -> str:
    """How our reply fared: stored, pending, sent or failed."""
    if m.delivery is not None:
        return m.delivery
    # a reply stored before deliveries were recorded: delivered when the platform gave it an id
    return Delivery.SENT.value if m.external_id else Delivery.PENDING.value


# How each stored action reads in a conversation's history.
EVENT_KINDS = {"resolve": "resolved", "reopen": "reopened", "assign": "assigned"}


def events_json(conv: Conversation, stored: list[ConversationEvent], messages: list[Message]) -> list[dict[str, Any]]:
    """The conversation's history, oldest first: its opening and each of our replies (derived
    from the conversation and its messages: nothing is written for them) with what was recorded
    (resolved, reopened, assigned, topics changed)."""
    events: list[tuple[datetime, int, dict[str, Any]]] = [
        (conv.created_at, 0, {"kind": "opened", "by": None, "detail": None, "at": iso(conv.created_at)})
    ]
    for e in stored:
        kind = EVENT_KINDS.get(e.action, e.action)
        events.append((e.created_at, 1, {"kind": kind, "by": e.actor, "detail": e.reason, "at": iso(e.created_at)}))
    for m in messages:
        if m.direction is Direction.OUTBOUND:
            at = m.sent_at or m.created_at
            events.append((at, 1, {"kind": "replied", "by": m.author, "detail": None, "at": iso(at)}))
    events.sort(key=lambda item: (item[0], item[1]))  # stable: same instant keeps the order above
    return [e for _, _, e in events]


def automation_json(a: Automation) -> dict[str, Any]:
    return {
        "id": a.id,
        "name": a.name,
        "keywords": list(a.keywords),
        "match": a.match.value,
        "actions": [action.to_json() for action in a.actions],
        "channels": list(a.channels),
        "types": [t.value for t in a.types],
        "enabled": a.enabled,
        "created_at": iso(a.created_at),
        "updated_at": iso(a.updated_at),
    }


def test_json(ev: Evaluation, skipped: list[tuple[str, str]]) -> dict[str, Any]:
    """What would fire on a message, and do; `skipped`: (automation name, why) the plan refuses."""
    return {
        "matches": [
            {
                "automation_id": f.rule.id,
                "automation_name": f.rule.name,
                "keywords": list(f.keywords),
                "actions": [a.to_json() for a in f.actions],
            }
            for f in ev.firings
        ],
        "tags": list(ev.tags),
        "topics": list(ev.topics),
        "resolve": ev.resolve,
        "resolution_reason": ev.resolve_reason,
        "crm": list(ev.crm_targets),
        "skipped": [{"automation_name": name, "reason": why} for name, why in skipped],
    }


def run_json(r: AutomationRun) -> dict[str, Any]:
    return {
        "id": r.id,
        "automation_id": r.automation_id,
        "automation_name": r.automation_name,
        "conversation_id": r.conversation_id,
        "message_id": r.message_id,
        "keywords": list(r.keywords),
        "actions": [action.to_json() for action in r.actions],
        "revision": r.revision,
        "created_at": iso(r.created_at),
    }


def revision_json(r: AutomationRevision) -> dict[str, Any]:
    """One revision: what changed, by whom, and the automation as it stood after it."""
    return {
        "revision": r.revision,
        "at": iso(r.at),
        "by": r.by,
        "change": r.change.value,
        "automation": dict(r.automation),
    }


def audit_json(e: AuditEntry) -> dict[str, Any]:
    return {"id": e.id, "at": iso(e.at), "actor": e.actor, "kind": e.kind, "target": e.target, "summary": e.summary}


def user_json(u: User) -> dict[str, Any]:
    """A user as the API shows it: never the password (nor its hash), nor the session epoch."""
    return {
        "id": u.id,
        "email": u.email,
        "name": u.name,
        "role": u.role.value,
        "teams": list(u.teams),
        "active": u.active,
        "language": u.language,
        "created_at": iso(u.created_at),
    }


def team_json(t: Team) -> dict[str, Any]:
    return {"name": t.name}


def job_json(j: OutboxJob) -> dict[str, Any]:
    return {
        "id": j.id,
        "kind": j.kind,
        "status": j.status,
        "attempts": j.attempts,
        "conversation_id": j.conversation_id,
        "message_id": j.payload.get("message_id"),  # the reply a `reply` job sends
        "last_error": j.last_error,
        "run_after": iso(j.run_after),
        "created_at": iso(j.created_at),
        "updated_at": iso(j.updated_at),
    }


def conversation_json(
    c: Conversation,
    contact: Contact | None,
    *,
    topics: list[str],
    tags: list[str],
    team: str | None = None,
    assignee: str | None = None,
) -> dict[str, Any]:
    """One conversation as the list shows it (the detail adds messages, runs and events);
    `team` and `assignee`: the names of its team and of who holds it."""
    return {
        "id": c.id,
        "channel": c.channel,
        "type": c.type.value,
        "status": c.status.value,
        "thread": c.thread_key,
        "contact": {"id": contact.platform_id if contact else None, "name": contact.name if contact else None},
        "topics": topics,
        "tags": tags,
        "resolution_reason": c.resolution_reason,
        "resolved_by": c.resolved_by,
        "resolved_at": iso(c.resolved_at),
        "previous_id": c.previous_id,
        "created_at": iso(c.created_at),
        "crm": {"case_id": c.crm_case_id, "case_number": c.crm_case_number} if c.crm_case_id else None,
        "priority": PRIORITY_ORDER[c.priority].value,
        "team": team,
        "assignee": {"id": c.assignee_id, "name": assignee} if c.assignee_id is not None else None,
        "waiting_since": iso(c.waiting_since),
    }


async def conversations_json(convs: list[Conversation]) -> list[dict[str, Any]]:
    """Conversations with their contacts, topics, tags, teams and assignees (a handful of queries
    for the whole page)."""
    ids = [c.id for c in convs]
    topics, tags = await repo.conversation_labels(ids)
    contacts = await repo.get_contacts([c.contact_id for c in convs])
    teams, users = await queue.names([c.team_id for c in convs], [c.assignee_id for c in convs])
    return [
        conversation_json(
            c,
            contacts.get(c.contact_id),
            topics=topics[c.id],
            tags=tags[c.id],
            team=teams.get(c.team_id) if c.team_id is not None else None,
            assignee=users.get(c.assignee_id) if c.assignee_id is not None else None,
        )
        for c in convs
    ]


async def conversation_detail_json(conversation_id: int) -> dict[str, Any] | None:
    """The conversation with its messages (and their tags) and automation runs, or None."""
    conv = await repo.get_conversation(conversation_id)
    if conv is None:
        return None
    (data,) = await conversations_json([conv])
    messages, tags = await repo.conversation_messages(conversation_id)
    data["messages"] = [message_json(m, tags.get(m.id, [])) for m in messages]
    data["runs"] = [run_json(r) for r in await repo.conversation_runs(conversation_id)]
    data["events"] = events_json(conv, await repo.conversation_events(conversation_id), messages)
    return data


def topic_json(t: Topic) -> dict[str, Any]:
    return {"name": t.name, "priority": t.priority.value, "team": t.team}


# --- why, preview, lint ---------------------------------------------------------------------------


def _named(ids: tuple[int, ...], names: tuple[str, ...]) -> list[str]:
    return [f'"{n}" (#{i})' for i, n in zip(ids, names, strict=True)]


def warning_message(w: LintWarning) -> str:
    """A lint warning in the API's words (English)."""
    who = _named(w.automation_ids, w.names)
    match w.kind:
        case LintKind.GENERIC_RESOLVE_KEYWORD if w.share is not None:
            return (
                f'resolve keyword "{w.keyword}" is in {w.share:.0%} of the first messages in scope over the last '
                "30 days: it may close conversations that have just begun"
            )
        case LintKind.GENERIC_RESOLVE_KEYWORD:
            return (
                f'resolve keyword "{w.keyword}" is a greeting or thanks: it may close conversations that have '
                "just begun"
            )
        case LintKind.DUPLICATE_KEYWORD:
            return f'keyword "{w.keyword}" is in several automations with an overlapping scope: {", ".join(who)}'
        case LintKind.CONFLICT:
            return (
                f'keyword "{w.keyword}" resolves the conversation in one automation and sends it to Salesforce '
                f"in another, with an overlapping scope: {', '.join(who)}"
            )
        case LintKind.UNKNOWN_CHANNEL:
            return f'channel "{w.channel}" is not configured: the automation acts there once it is'
        case LintKind.NEVER_FIRED:
            return f"enabled for {w.days} days without firing"
    return w.kind.value  # pragma: no cover - every kind is worded above


def warning_json(w: LintWarning) -> dict[str, Any]:
    return {"kind": w.kind.value, "message": warning_message(w), "automation_ids": list(w.automation_ids)}


def warnings_json(warnings: Sequence[LintWarning]) -> list[dict[str, Any]]:
    return [warning_json(w) for w in warnings]


def found_json(found: Sequence[Found]) -> list[dict[str, Any]]:
    return [{"keyword": f.keyword, "start": f.start, "end": f.end} for f in found]


def why_json(entries: Sequence[WhyEntry]) -> dict[str, Any]:
    return {
        "items": [
            {
                "message_id": e.message_id,
                "automation_id": e.automation_id,
                "automation_name": e.automation_name,
                "revision": e.revision,
                "outcome": e.outcome.value,
                "found": found_json(e.found),
                "missing": list(e.missing),
                "actions": [a.to_json() for a in e.actions],
                "not_applied": [{"type": n.type.value, "why": n.why} for n in e.not_applied],
            }
            for e in entries
        ]
    }


def preview_json(p: Preview) -> dict[str, Any]:
    c = p.counts
    return {
        "since": iso(p.since),
        "messages_scanned": c.messages_scanned,
        "conversations_scanned": p.conversations_scanned,
        "would_fire": {"messages": c.would_fire_messages, "conversations": c.would_fire_conversations},
        "would_tag": c.would_tag,
        "would_apply_topics": c.would_apply_topics,
        "would_resolve": c.would_resolve,
        "would_send_to_crm": c.would_send_to_crm,
        "examples": [
            {
                "conversation_id": x.conversation_id,
                "message_id": x.message_id,
                "text": x.text,
                "found": found_json(x.found),
            }
            for x in c.examples
        ],
        "warnings": warnings_json(p.warnings),
    }


class AutomationAnswers(Protocol):
    """An automation form's answers, as the web page and the Slack modal both hold them."""

    @property
    def name(self) -> str: ...
    @property
    def keywords(self) -> str: ...
    @property
    def match(self) -> str: ...
    @property
    def tags(self) -> Sequence[str]: ...
    @property
    def topics(self) -> Sequence[str]: ...
    @property
    def resolve(self) -> bool: ...
    @property
    def reason(self) -> str | None: ...
    @property
    def crm(self) -> bool: ...
    @property
    def channels(self) -> Sequence[str]: ...
    @property
    def types(self) -> Sequence[str]: ...


def automation_fields(form: AutomationAnswers) -> dict[str, Any]:
    """An automation form's answers (the web page's, the Slack modal's) as the JSON form the admin
    service takes: the ticked actions become the action list."""
    actions: list[dict[str, str | None]] = [{"type": "tag", "tag": t} for t in form.tags]
    actions += [{"type": "topic", "topic": t} for t in form.topics]
    if form.resolve or form.reason:  # a reason implies resolving
        actions.append({"type": "resolve", "reason": form.reason or None})
    if form.crm:
        actions.append({"type": "crm", "target": "salesforce"})
    return {
        "name": form.name,
        "keywords": form.keywords,
        "match": form.match,
        "actions": actions,
        "channels": list(form.channels),
        "types": list(form.types),
    }
