"""The agents' pages in a real browser against the real server: the queue (order, tabs, filters,
search, paging), a conversation (reply, resolve with a reason, reopen, assign, topics), contacts'
text shown as text, CSRF, and the French pages. Controls are found by their accessible names."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp import ClientSession
from playwright.async_api import Page

from tests.browser import WebInbox
from tests.conftest import STORES

both_stores = pytest.mark.parametrize("db_url", STORES, indirect=True)


async def queue_names(page: Page) -> list[str]:
    """The contacts' names of the queue's conversations, top to bottom."""
    return await page.locator("#queue").get_by_role("link").all_inner_texts()


async def topic(web: WebInbox, name: str, priority: str = "normal") -> None:
    await web.bot.state.admin.add_topic(name, priority=priority, actor="api")


async def conversation(web: WebInbox, cid: int) -> dict[str, Any]:
    return await web.bot.conversation(cid)


@both_stores
async def test_the_open_queue_is_in_queue_order_and_resolved_ones_have_their_tab(web: WebInbox) -> None:
    await topic(web, "Outage", "urgent")
    await topic(web, "Billing", "high")
    waits_longest = await web.bot.webhook("hello", contact="c-1", name="Alice")
    billing = await web.bot.webhook("my invoice", contact="c-2", name="Bruno")
    outage = await web.bot.webhook("nothing works", contact="c-3", name="Chloé")
    done = await web.bot.webhook("bye", contact="c-4", name="Dora")
    await web.bot.api("POST", f"/api/conversations/{billing['conversation_id']}/topics", json={"add": ["Billing"]})
    await web.bot.api("POST", f"/api/conversations/{outage['conversation_id']}/topics", json={"add": ["Outage"]})
    await web.bot.api("POST", f"/api/conversations/{done['conversation_id']}/resolve", json={})
    assert waits_longest["conversation_id"]

    page = await web.page(web.agent)
    await page.goto("/inbox")
    assert await queue_names(page) == ["Chloé", "Bruno", "Alice"]  # urgent, high, then the longest wait
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name="Bruno"))
    for shown in ("shop", "direct", "my invoice", "Billing", "high"):
        assert shown in await row.inner_text()
    await page.get_by_role("link", name="Resolved").click()
    await page.wait_for_url("**/inbox?status=resolved")
    assert await queue_names(page) == ["Dora"]
    await page.get_by_role("link", name="Open").click()
    assert await queue_names(page) == ["Chloé", "Bruno", "Alice"]


@both_stores
async def test_an_agent_replies_resolves_with_a_reason_reopens_and_takes_a_conversation(web: WebInbox) -> None:
    await web.bot.state.admin.add_label("reason", "Contact left", actor="api")
    cid = (await web.bot.webhook("Où est ma commande ?", contact="c-9", name="Marie"))["conversation_id"]
    me = f"user:{web.agent.user.id}"
    page = await web.page(web.agent)
    await page.goto("/inbox")
    await page.get_by_role("link", name="Marie").click()
    await page.wait_for_url(f"**/inbox/{cid}")

    await page.get_by_label("Reply").fill("Elle part demain.")
    await page.get_by_role("button", name="Send").click()
    await page.wait_for_url(f"**/inbox/{cid}")
    await page.locator("#conversation").get_by_text("Elle part demain.").wait_for()
    reply = (await conversation(web, cid))["messages"][-1]
    assert (reply["direction"], reply["text"], reply["author"]) == ("outbound", "Elle part demain.", me)
    assert "Agent replied" in await page.locator("#conversation").inner_text()

    await page.get_by_label("Resolution reason").select_option("Contact left")
    await page.get_by_role("button", name="Resolve").click()
    await page.get_by_role("button", name="Reopen").wait_for()
    data = await conversation(web, cid)
    assert (data["status"], data["resolution_reason"], data["resolved_by"]) == ("resolved", "Contact left", me)
    facts = await page.locator("dl.facts").inner_text()
    assert "Contact left" in facts and "Agent" in facts

    await page.get_by_role("button", name="Reopen").click()
    await page.get_by_role("button", name="Resolve").wait_for()
    assert (await conversation(web, cid))["status"] == "open"

    await page.get_by_role("button", name="Assign to me").click()
    await page.get_by_role("status").filter(has_text="Assigned to you").wait_for()
    assert (await conversation(web, cid))["assignee"] == {"id": web.agent.user.id, "name": "Agent"}
    assert await page.get_by_role("button", name="Assign to me").count() == 0


async def test_taking_a_conversation_someone_else_holds_is_refused_in_words(web: WebInbox) -> None:
    cid = (await web.bot.webhook("hi", name="Marie"))["conversation_id"]
    await web.bot.state.inbox.assign(cid, web.admin.user.id, by=None, actor="api")
    page = await web.page(web.agent)
    await page.goto(f"/inbox/{cid}")
    await page.get_by_role("button", name="Assign to me").click()
    note = await page.get_by_role("status").inner_text()
    assert "Not done" in note and "assigned to Admin" in note
    assert (await conversation(web, cid))["assignee"]["id"] == web.admin.user.id


async def test_topics_are_added_and_removed_by_hand(web: WebInbox) -> None:
    await topic(web, "Refunds", "high")
    cid = (await web.bot.webhook("money back", name="Marie"))["conversation_id"]
    page = await web.page(web.agent)
    await page.goto(f"/inbox/{cid}")
    await page.get_by_label("Add a topic").select_option("Refunds")
    await page.get_by_role("button", name="Add topic").click()
    await page.get_by_role("button", name="Remove the topic Refunds").wait_for()
    data = await conversation(web, cid)
    assert (data["topics"], data["priority"]) == (["Refunds"], "high")
    await page.get_by_role("button", name="Remove the topic Refunds").click()
    await page.get_by_text("No topics yet.").wait_for()
    assert (await conversation(web, cid))["topics"] == []


async def test_runs_are_told_in_words_and_the_previous_conversation_is_linked(web: WebInbox) -> None:
    await web.bot.state.admin.add_label("tag", "closing", actor="api")
    await web.bot.state.admin.add_label("reason", "Contact left", actor="api")
    await web.bot.state.admin.create(
        {
            "name": "Au revoir",
            "keywords": ["au revoir"],
            "actions": [{"type": "tag", "tag": "closing"}, {"type": "resolve", "reason": "Contact left"}],
        },
        actor="test",
    )
    await web.bot.state.rules.refresh(force=True)
    first = (await web.bot.webhook("Au revoir !", name="Marie"))["conversation_id"]
    second = (await web.bot.webhook("Au revoir encore", name="Marie"))["conversation_id"]
    assert first != second
    page = await web.page(web.agent)
    await page.goto(f"/inbox/{second}")
    runs = await page.locator("ul.runs").inner_text()
    assert (
        "Au revoir tagged the message “closing”, resolved this conversation (“Contact left”): found “au revoir”" in runs
    )
    assert "Au revoir" in await page.locator("dl.facts").inner_text()  # resolved by the automation
    await page.get_by_role("link", name="Previous conversation").click()
    await page.wait_for_url(f"**/inbox/{first}")


async def test_filters_and_search_narrow_the_queue(web: WebInbox) -> None:
    await web.bot.state.people.add_team("Money", actor="api")
    await web.bot.state.admin.add_topic("Billing", priority="high", team="Money", actor="api")
    refund = await web.bot.webhook("I want a refund for my order", contact="c-1", name="Alice")
    await web.bot.webhook("Hello there", contact="c-2", name="Bruno")
    await web.bot.webhook("Other channel", contact="c-3", name="Chloé", channel="support")
    await web.bot.api("POST", f"/api/conversations/{refund['conversation_id']}/topics", json={"add": ["Billing"]})
    page = await web.page(web.agent)
    await page.goto("/inbox")
    assert sorted(await queue_names(page)) == ["Alice", "Bruno", "Chloé"]

    await page.get_by_label("Search").fill("refund")
    await page.get_by_role("button", name="Filter").click()
    await page.wait_for_url("**q=refund*")
    assert await queue_names(page) == ["Alice"]

    await page.goto("/inbox")
    await page.get_by_label("Channel").select_option("support")
    await page.get_by_role("button", name="Filter").click()
    await page.wait_for_url("**channel=support*")
    assert await queue_names(page) == ["Chloé"]

    await page.goto("/inbox")
    await page.get_by_label("Priority").select_option("high")
    await page.get_by_role("button", name="Filter").click()
    await page.wait_for_url("**priority=high*")
    assert await queue_names(page) == ["Alice"]

    await page.goto("/inbox")
    await page.get_by_label("Topic").select_option("Billing")
    await page.get_by_role("button", name="Filter").click()
    await page.wait_for_url("**topic=Billing*")
    assert await queue_names(page) == ["Alice"]

    await web.bot.state.inbox.assign(refund["conversation_id"], web.agent.user.id, by=None, actor="api")
    await page.goto("/inbox")
    await page.get_by_label("Assignee").select_option("me")
    await page.get_by_role("button", name="Filter").click()
    await page.wait_for_url("**assignee=me*")
    assert await queue_names(page) == ["Alice"]
    await page.get_by_label("Assignee").select_option("none")
    await page.get_by_role("button", name="Filter").click()
    await page.wait_for_url("**assignee=none*")
    assert sorted(await queue_names(page)) == ["Bruno", "Chloé"]
    await page.get_by_label("Assignee").select_option(label="Agent")
    await page.get_by_role("button", name="Filter").click()
    await page.wait_for_url(f"**assignee={web.agent.user.id}*")
    assert await queue_names(page) == ["Alice"]

    await page.goto("/inbox")
    await page.get_by_label("Team").select_option("Money")
    await page.get_by_role("button", name="Filter").click()
    await page.wait_for_url("**team=Money*")
    assert await queue_names(page) == ["Alice"]


async def test_the_queue_pages_through_every_conversation(web: WebInbox) -> None:
    for i in range(52):
        await web.bot.webhook(f"message {i}", contact=f"c-{i}", name=f"Contact {i:02d}")
    page = await web.page(web.agent)
    await page.goto("/inbox")
    first = await queue_names(page)
    assert len(first) == 50
    await page.get_by_role("link", name="Next").click()
    second = await queue_names(page)
    assert len(second) == 2
    assert sorted(first + second) == sorted(f"Contact {i:02d}" for i in range(52))
    assert await page.get_by_role("link", name="Next").count() == 0
    await page.get_by_role("link", name="First page").click()
    assert await queue_names(page) == first


async def test_a_contacts_markup_is_shown_as_text_and_runs_nothing(web: WebInbox) -> None:
    attack = "<img src=x onerror=alert(1)><script>alert(2)</script>"
    cid = (await web.bot.webhook(attack, name="<b>Mallory</b>"))["conversation_id"]
    page = await web.page(web.agent)
    dialogs: list[str] = []
    page.on("dialog", lambda d: dialogs.append(d.message))
    await page.goto("/inbox")
    assert await page.locator("#queue").get_by_text(attack).count() == 1
    await page.get_by_role("link", name="<b>Mallory</b>").click()
    await page.wait_for_url(f"**/inbox/{cid}")
    assert await page.locator("#conversation").get_by_text(attack).count() == 1
    assert await page.locator("img, #conversation script, b").count() == 0
    assert dialogs == []


async def test_a_reply_posted_without_the_csrf_token_is_refused_and_stores_nothing(web: WebInbox) -> None:
    cid = (await web.bot.webhook("hello", name="Marie"))["conversation_id"]
    page = await web.page(web.agent)
    cookies = {c["name"]: c["value"] for c in await page.context.cookies()}
    async with ClientSession(cookies=cookies) as client:
        for path, form in (("reply", {"text": "forged"}), ("resolve", {}), ("assign", {})):
            resp = await client.post(f"{web.url}/inbox/{cid}/{path}", data=form, allow_redirects=False)
            assert resp.status == 403, path
    data = await conversation(web, cid)
    assert [m["text"] for m in data["messages"]] == ["hello"]
    assert (data["status"], data["assignee"]) == ("open", None)


async def test_the_pages_speak_french_to_a_french_browser(web: WebInbox) -> None:
    await web.bot.state.admin.add_label("reason", "Contact left", actor="api")
    cid = (await web.bot.webhook("Bonjour", name="Marie"))["conversation_id"]
    await web.bot.api(
        "POST",
        f"/api/conversations/{(await web.bot.webhook('Salut', contact='c-2', name='Zoé'))['conversation_id']}/resolve",
        json={},
    )
    page = await web.page(locale="fr-FR")
    await page.goto("/inbox")
    assert await page.locator("html").get_attribute("lang") == "fr"
    await page.get_by_label("E-mail").fill(web.agent.email)
    await page.get_by_label("Mot de passe").fill(web.agent.password)
    await page.get_by_role("button", name="Se connecter").click()
    await page.wait_for_url("**/inbox")
    await page.get_by_role("link", name="Résolues").click()
    assert await queue_names(page) == ["Zoé"]
    await page.get_by_role("link", name="Ouvertes").click()
    await page.get_by_role("link", name="Marie").click()
    await page.wait_for_url(f"**/inbox/{cid}")
    await page.get_by_label("Répondre").fill("Bonjour Marie")
    await page.get_by_role("button", name="Envoyer").click()
    await page.get_by_role("button", name="M'attribuer").click()
    await page.get_by_label("Motif de résolution").select_option("Contact left")
    await page.get_by_role("button", name="Résoudre").click()
    await page.get_by_role("button", name="Rouvrir").wait_for()
    data = await conversation(web, cid)
    assert data["status"] == "resolved" and data["assignee"]["id"] == web.agent.user.id
    assert data["messages"][-1]["text"] == "Bonjour Marie"


async def test_a_users_own_language_wins_over_the_browsers(web: WebInbox) -> None:
    await web.bot.state.people.update_user(web.agent.user.id, language="fr", actor="api")
    page = await web.page(web.agent, locale="en-US")  # signs in on the English form
    await page.goto("/inbox")
    assert await page.locator("html").get_attribute("lang") == "fr"
    assert await page.get_by_role("link", name="Ouvertes").count() == 1


async def test_an_unknown_conversation_is_a_404_page(web: WebInbox) -> None:
    page = await web.page(web.agent)
    for path in ("/inbox/999999", "/inbox/abc"):
        answer = await page.goto(path)
        assert answer is not None and answer.status == 404, path
        assert urlsplit(page.url).path == path
        assert "no conversation" in (await page.get_by_role("alert").inner_text()).casefold() or path.endswith("abc")


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_a_wait_is_worded_as_babel_words_it(lang: str) -> None:
    """The queue words each wait once per unit and count: always Babel's words for that wait."""
    from datetime import UTC, datetime, timedelta

    from babel.dates import format_timedelta

    from bot.front.web.inbox_pages import waited

    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    hour, day = 3600, 86400
    edges = [0, 0.4, 0.6, 1, 44.5, 59.5, 60, 89, 90, 91, hour - 31, hour * 23.4, hour * 23.6, day * 6.5, day * 6.6]
    edges += [day * 29.5, day * 30.5, day * 364, day * 366, day * 800]
    for seconds in [*edges, *(s * 1.37 for s in range(0, 3 * day, 997))]:
        expected = format_timedelta(timedelta(seconds=round(seconds, 6)), locale=lang, threshold=1.0)
        assert waited(now - timedelta(seconds=seconds), lang, now) == expected, seconds
    assert waited(None, lang, now) == ""
    assert waited(now + timedelta(hours=1), lang, now) == format_timedelta(0, locale=lang, threshold=1.0)


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_rows_written_in_python_escape_everything_a_person_wrote(lang: str) -> None:
    """The queue's rows and a conversation's messages are written outside the template (a page
    holds hundreds): names, texts, topics and tags stay text there too, in both languages."""
    from datetime import UTC, datetime

    from bot.domain import Contact, Conversation, ConversationType, Direction, Message, Status
    from bot.front.web.inbox_pages import _queue_rows, message_items
    from bot.i18n import wording

    _ = wording(lang)
    at = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    evil = "<img src=x onerror=alert(1)>&\"'"
    safe = "&lt;img src=x onerror=alert(1)&gt;&amp;&#34;&#39;"

    def message(mid: int, direction: Direction, author: str | None) -> Message:
        return Message(mid, 1, "shop", None, None, direction, evil, author, at, None, at, "sent" if author else None)

    items = str(
        message_items(
            _,
            [message(1, Direction.INBOUND, None), message(2, Direction.OUTBOUND, "user:1")],
            {1: [evil], 2: []},
            contact=evil,
            who=lambda actor: evil if actor else "",
        )
    )
    assert "<img" not in items
    assert items.count(safe) == 5  # the contact's name, both texts, the tag, the agent's name
    assert _("{name} replied", name=safe) in items
    assert f'<time datetime="2026-12-01T10:00:00Z">2026-12-01 10:00 UTC</time> · {_("sent")}' in items

    conv = Conversation(
        1, "shop", "t", ConversationType.DIRECT, Status.OPEN, 7, None, None, None, None, (), {}, None, None, None,
        None, None, None, None, at, at, priority=0, assignee_id=3, waiting_since=at,
    )  # fmt: skip
    rows = str(
        _queue_rows(
            _,
            [conv],
            contacts={7: Contact(7, "shop", "c-7", evil, at)},
            topics={1: [evil]},
            tags={1: [evil]},
            lasts={1: message(5, Direction.INBOUND, None)},
            users={3: evil},
            lang=lang,
        )
    )
    assert "<img" not in rows
    assert rows.count(safe) == 5  # the contact, the assignee, the last line, the topic, the tag
    assert '<a href="/inbox/1">' in rows and 'class="priority-urgent"' in rows
