"""`GET /api/conversations?q=`: words found through the database's own full-text index, with the
matcher's normalization, whole words, every word somewhere in the conversation (both stores)."""

from __future__ import annotations

import pytest

from bot.engine.search import document, terms
from tests.conftest import STORES, Bot


def test_documents_and_terms_use_the_matchers_normal_form() -> None:
    assert document("Remboursement, SVP !") == "remboursement svp"
    assert terms("  REMBOURSEMENT  svp svp") == ["remboursement", "svp"]
    assert document("退款请求 ok") == "退 款 请 求 ok"
    assert terms("退款") == ["退 款"]
    assert terms("!!!") == []


async def found(bot: Bot, q: str, extra: str = "") -> list[int]:
    from urllib.parse import quote

    data = await bot.api("GET", f"/api/conversations?q={quote(q)}{extra}")
    return sorted(c["id"] for c in data["items"])


@pytest.mark.parametrize("db_url", STORES, indirect=True)
async def test_search_finds_whole_normalized_words_across_the_conversation(bot: Bot) -> None:
    a = (await bot.webhook("Demande de Remboursement", contact="c-1"))["conversation_id"]
    await bot.webhook("pour la commande 42, merci", contact="c-1")
    b = (await bot.webhook("an innocent bystander", contact="c-2"))["conversation_id"]
    c = (await bot.webhook("退款请求", contact="c-3"))["conversation_id"]
    d = (await bot.webhook("Crème brûlée à l'ŒUF", contact="c-4"))["conversation_id"]

    assert await found(bot, "remboursement") == [a]
    assert await found(bot, "REMBOURSEMENT commande") == [a]  # words in different messages
    assert await found(bot, "remboursement bystander") == []  # all words in one conversation
    assert await found(bot, "by") == []  # whole words only
    assert await found(bot, "bystander") == [b]
    assert await found(bot, "退款") == [c]
    assert await found(bot, "creme brulee") == [d]
    assert await found(bot, "œuf") == [d]  # the matcher folds case, not ligatures of letters
    assert await found(bot, "42") == [a]
    assert await found(bot, "'; DROP TABLE messages; --") == []
    assert await found(bot, 'x" OR "1') == []
    assert await found(bot, "remboursement", "&status=resolved") == []


@pytest.mark.parametrize("db_url", STORES, indirect=True)
async def test_replies_are_searchable_too(bot: Bot) -> None:
    cid = (await bot.webhook("hello"))["conversation_id"]
    await bot.api("POST", f"/api/conversations/{cid}/messages", json={"text": "Votre colis arrive demain"}, expect=201)
    assert await found(bot, "colis") == [cid]
