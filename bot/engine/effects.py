"""What an inbound message changes, decided from the rules and its conversation. Pure.

The store takes the message in (`Received`: its conversation as it stands), `plan` turns the
rules' evaluation into `Effects`, and the store applies them: deciding never touches the store.
"""

from __future__ import annotations

from bot import outbox_kinds
from bot.domain import Effects, NewJob, PlannedRun, Received, Resolution
from bot.engine.rules import RuleSet, Scan
from bot.engine.search import document

__all__ = ["crm_sync_job", "plan"]


def crm_sync_job(conversation_id: int) -> NewJob:
    """Bring the conversation's CRM record up to date. One waiting job is enough: it syncs
    everything not yet in the CRM."""
    return NewJob(
        outbox_kinds.CRM_SYNC,
        {"conversation_id": conversation_id},
        conversation_id=conversation_id,
        ordering_key=f"crm:{conversation_id}",
        unless_pending=True,
    )


def plan(
    received: Received, rules: RuleSet, *, scan: Scan | None = None, search_document: str | None = None
) -> Effects:
    """The effects of a newly stored message (`received.conversation` is set) on its conversation.

    Resolve applies to a conversation's first message only (the rules decide that); a conversation
    linked to a CRM gets a sync job for every new message. `scan` (`rules.scan(text)`) and
    `search_document` (`document(text)`): the text's share of the work, done ahead."""
    msg, conv = received.message, received.conversation
    if conv is None:
        raise ValueError("a duplicate message has no effects to plan")
    seen = frozenset(conv.keyword_progress)
    ev = rules.evaluate(
        text=msg.text, channel=msg.channel, type=conv.type, first_message=received.first, seen=seen, scan=scan
    )
    crm_target = ev.crm_targets[0] if ev.crm_targets and conv.crm_target is None else None
    # the conversation is open (the store found it by its open key): a resolve applies
    resolve = Resolution(f"automation:{ev.resolved_by_rule}", ev.resolve_reason) if ev.resolve else None
    # A later message may come from elsewhere on the platform (another Slack thread reply): replies follow.
    moved = bool(msg.reply_to) and not received.first and dict(conv.reply_to) != dict(msg.reply_to)
    return Effects(
        conversation_id=conv.id,
        message_id=received.message_id,
        tags=ev.tags,
        topics=ev.topics,
        runs=tuple(PlannedRun(f.rule.id, f.rule.name, f.keywords, f.actions, f.rule.revision) for f in ev.firings),
        resolve=resolve,
        keyword_progress=tuple(sorted(ev.seen)) if ev.seen != seen else None,
        reply_to=dict(msg.reply_to) if moved else None,
        crm_target=crm_target,
        jobs=(crm_sync_job(conv.id),) if (conv.crm_target or crm_target) is not None else (),
        search_document=document(msg.text) if search_document is None else search_document,
    )
