"""The topics on a conversation, as agents change them by hand (automations add theirs in
`ingest.apply`). A conversation keeps the topic names it was given even after a topic is deleted;
the order they were applied in is the order of their rows."""

from __future__ import annotations

from collections.abc import Sequence

from bot.store import models
from bot.store.base import boundary


@boundary
async def topics_of(conversation_id: int) -> list[str]:
    """The conversation's topic names, in the order they were applied."""
    rows = await models.ConversationTopic.filter(conversation_id=conversation_id).order_by("id").values_list("name")
    return [str(name) for (name,) in rows]


@boundary
async def change_topics(
    conversation_id: int, *, add: Sequence[str], remove: Sequence[str]
) -> tuple[list[str], list[str]]:
    """Remove the topics named in `remove` (any case) that the conversation has, then add those of
    `add` (their stored spelling) it has not, after the others. Returns (added, removed), as named
    on the conversation. Call it with the conversation locked (`get_conversation(for_update=True)`):
    two changes of one conversation's topics then never interleave."""
    current = {
        str(key): str(name)
        for key, name in await models.ConversationTopic.filter(conversation_id=conversation_id).values_list(
            "key", "name"
        )
    }
    gone = [key for key in dict.fromkeys(n.casefold() for n in remove) if key in current]
    if gone:
        await models.ConversationTopic.filter(conversation_id=conversation_id, key__in=gone).delete()
    kept = set(current) - set(gone)
    new: dict[str, str] = {}
    for name in add:
        key = name.casefold()
        if key not in kept and key not in new:
            new[key] = name
    if new:
        await models.ConversationTopic.bulk_create(
            [models.ConversationTopic(conversation_id=conversation_id, name=n, key=k) for k, n in new.items()]
        )
    return list(new.values()), [current[key] for key in gone]
