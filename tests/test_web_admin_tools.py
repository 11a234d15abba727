"""The admin tools on the web pages, in a real browser against the real server: the audit log,
an automation's history with its diff and rollback, the form's Preview button and lint warnings,
and "why" on a conversation with the found words highlighted."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.browser import WebInbox
from tests.conftest import STORES

both_stores = pytest.mark.parametrize("db_url", STORES, indirect=True)


@both_stores
async def test_a_change_on_the_settings_pages_is_in_the_audit_log_with_its_author(web: WebInbox) -> None:
    page = await web.page(web.admin)
    await page.goto("/settings/labels")
    await page.get_by_label("New tag").fill("closing")
    await page.locator('form[action="/settings/labels/tag/add"]').get_by_role("button", name="Add").click()
    await expect(page.get_by_role("status").first).to_contain_text("added")

    await page.goto("/settings/audit")
    row = page.get_by_role("row", name="tag.created")
    await expect(row).to_contain_text(f"Admin ({web.admin.user.actor})")
    await expect(row).to_contain_text("closing")

    # filters: by kind, then by an actor who did nothing
    await page.get_by_label("Kind").select_option("tag.deleted")
    await page.get_by_role("button", name="Filter").click()
    await expect(page.get_by_role("status")).to_contain_text("No entries match")
    await page.get_by_label("Kind").select_option("tag.created")
    await page.get_by_label("Actor").fill(web.admin.user.actor)
    await page.get_by_role("button", name="Filter").click()
    await expect(page.get_by_role("row", name="tag.created")).to_be_visible()
    await page.get_by_label("Actor").fill("api")
    await page.get_by_role("button", name="Filter").click()
    await expect(page.get_by_role("status")).to_contain_text("No entries match")


async def test_the_audit_log_pages_with_next_newest_first(web: WebInbox) -> None:
    admin = web.bot.state.admin
    for i in range(53):
        await admin.add_label("tag", f"t{i:02d}", actor="api")
    page = await web.page(web.admin)
    await page.goto("/settings/audit?kind=tag.created")
    rows = page.get_by_role("row", name="tag.created")
    await expect(rows).to_have_count(50)
    await expect(rows.first).to_contain_text("t52")  # newest first
    await page.get_by_role("link", name="Next").click()
    await expect(rows).to_have_count(3)
    await expect(rows.last).to_contain_text("t00")
    await expect(page.get_by_role("link", name="Next")).to_have_count(0)


async def test_an_unknown_audit_kind_is_refused_on_the_page(web: WebInbox) -> None:
    page = await web.page(web.admin)
    answer = await page.goto("/settings/audit?kind=nonsense")
    assert answer is not None and answer.status == 400
    await expect(page.get_by_role("alert")).to_contain_text("Unknown kind “nonsense”")


@both_stores
async def test_history_shows_the_diff_and_a_rollback_restores_the_keywords(web: WebInbox) -> None:
    admin = web.bot.state.admin
    await admin.add_label("tag", "closing", actor="api")
    a = await admin.create(
        {"name": "Bye", "keywords": "bye, ciao", "actions": [{"type": "tag", "tag": "closing"}]}, actor="api"
    )
    page = await web.page(web.admin)
    await page.goto(f"/settings/automations/{a.id}")
    await page.get_by_label("Keywords", exact=True).fill("goodbye")
    await page.get_by_role("button", name="Save").click()
    await page.wait_for_url("**/settings/automations")
    assert (await admin.find(a.id)).keywords == ("goodbye",)

    await page.goto(f"/settings/automations/{a.id}")
    await page.get_by_role("link", name="History and rollback").click()
    newest = page.get_by_role("listitem", name="Revision 2")
    await expect(newest).to_contain_text(f"updated by Admin ({web.admin.user.actor})")
    await expect(newest.get_by_role("row", name="Keywords")).to_contain_text("bye, ciao")
    await expect(newest.get_by_role("row", name="Keywords")).to_contain_text("goodbye")
    await expect(newest.get_by_role("row", name="Name")).to_have_count(0)  # unchanged: not in the diff
    await expect(page.get_by_role("button", name="Roll back to revision 2")).to_have_count(0)  # the current one

    await page.get_by_role("button", name="Roll back to revision 1").click()
    await expect(page.get_by_role("status").first).to_contain_text("rolled back to revision 1")
    restored = await admin.find(a.id)
    assert restored.keywords == ("bye", "ciao") and restored.enabled
    third = page.get_by_role("listitem", name="Revision 3")
    await expect(third).to_contain_text(f"rolled back by Admin ({web.admin.user.actor})")
    await expect(third.get_by_role("row", name="Keywords")).to_contain_text("goodbye")
    (revision,) = [r for r in await admin.revisions(a.id) if r.revision == 3]
    assert revision.by == web.admin.user.actor and revision.change.value == "rolled_back"
    answer = await web.bot.webhook("ciao!")
    assert (await web.bot.conversation(answer["conversation_id"]))["tags"] == ["closing"]


async def test_rollback_needs_the_csrf_token_and_an_admin(web: WebInbox) -> None:
    admin = web.bot.state.admin
    await admin.add_label("tag", "closing", actor="api")
    a = await admin.create(
        {"name": "Bye", "keywords": "bye", "actions": [{"type": "tag", "tag": "closing"}]}, actor="api"
    )
    await admin.update(a.id, {"keywords": "ciao"}, actor="api")
    page = await web.page(web.admin)
    answer = await page.request.post(f"/settings/automations/{a.id}/rollback", form={"revision": "1"})
    assert answer.status == 403
    agent = await web.page(web.agent)
    answer = await agent.goto(f"/settings/automations/{a.id}/history")
    assert answer is not None and answer.status == 403
    assert (await admin.find(a.id)).keywords == ("ciao",)
    assert [r.revision for r in await admin.revisions(a.id)] == [2, 1]


async def test_the_french_history_and_audit_pages(web: WebInbox) -> None:
    admin = web.bot.state.admin
    await admin.add_label("tag", "closing", actor="api")
    a = await admin.create(
        {"name": "Bye", "keywords": "bye", "actions": [{"type": "tag", "tag": "closing"}]}, actor="api"
    )
    await admin.update(a.id, {"keywords": "ciao"}, actor="api")
    page = await web.page(locale="fr-FR")
    await web.sign_in(page, web.admin, email_label="E-mail")
    await page.goto(f"/settings/automations/{a.id}/history")
    await expect(page.get_by_role("button", name="Revenir à la révision 1")).to_be_visible()
    await page.goto("/settings/audit")
    await expect(page.get_by_role("heading", name="Journal d'audit")).to_be_visible()
    await expect(page.get_by_role("button", name="Filtrer")).to_be_visible()


@both_stores
async def test_preview_shows_what_the_typed_automation_would_do_and_saves_nothing(web: WebInbox) -> None:
    await web.bot.state.admin.add_label("tag", "closing", actor="api")
    await web.bot.webhook("ok, bye then", contact="c-1")
    await web.bot.webhook("bye <b>bold</b>", contact="c-2")
    await web.bot.webhook("hello, a question", contact="c-3")
    page = await web.page(web.admin)
    await page.goto("/settings/automations/new")
    await page.get_by_label("Name").fill("Bye")
    await page.get_by_label("Keywords", exact=True).fill("bye")
    await page.get_by_role("group", name="Tags").get_by_label("closing").check()
    await page.get_by_role("button", name="Preview").click()

    preview = page.get_by_role("region", name="nothing was saved")
    await expect(preview).to_be_visible()
    figures = await preview.locator("dl").inner_text()
    assert "Messages scanned\n3" in figures
    assert "Conversations scanned\n3" in figures
    assert "Messages it would fire on\n2" in figures
    assert "Messages it would tag\n2" in figures
    assert "Conversations it would resolve\n0" in figures
    await expect(preview.get_by_role("listitem")).to_have_count(2)  # the examples
    assert await preview.locator("mark").all_inner_texts() == ["bye", "bye"]
    assert await preview.locator("b").count() == 0  # a contact's text stays text
    await expect(preview).to_contain_text("bye <b>bold</b>")
    await expect(page.get_by_label("Name")).to_have_value("Bye")  # what was typed is kept
    assert await web.bot.state.admin.list_automations() == []  # nothing saved


async def test_preview_of_an_edit_changes_nothing_and_refusals_show_on_the_field(web: WebInbox) -> None:
    admin = web.bot.state.admin
    await admin.add_label("tag", "closing", actor="api")
    a = await admin.create(
        {"name": "Bye", "keywords": "bye", "actions": [{"type": "tag", "tag": "closing"}]}, actor="api"
    )
    page = await web.page(web.admin)
    await page.goto(f"/settings/automations/{a.id}")
    await page.get_by_label("Keywords", exact=True).fill("ciao")
    await page.get_by_label("Preview since").select_option("30d")
    await page.get_by_role("button", name="Preview").click()
    await expect(page.get_by_role("region", name="nothing was saved")).to_be_visible()
    await expect(page.get_by_label("Preview since")).to_have_value("30d")
    assert (await admin.find(a.id)).keywords == ("bye",)
    assert [r.revision for r in await admin.revisions(a.id)] == [1]

    await page.get_by_label("Keywords", exact=True).fill("")
    async with page.expect_response(lambda r: r.request.method == "POST") as answer:
        await page.get_by_role("button", name="Preview").click()
    assert (await answer.value).status == 400
    await expect(page.get_by_label("Keywords", exact=True)).to_have_attribute("aria-invalid", "true")
    await expect(page.get_by_role("region", name="nothing was saved")).to_have_count(0)


@both_stores
async def test_a_greeting_resolve_keyword_is_saved_with_a_warning_under_the_form(web: WebInbox) -> None:
    page = await web.page(web.admin)
    await page.goto("/settings/automations/new")
    await page.get_by_label("Name").fill("Hello")
    await page.get_by_label("Keywords", exact=True).fill("hello")
    await page.get_by_label("Resolve the conversation").check()
    await page.get_by_role("button", name="Save").click()
    warnings = page.get_by_role("region", name="Warnings")
    await expect(warnings).to_contain_text('resolve keyword "hello" is a greeting or thanks')
    await expect(page.get_by_role("status").first).to_contain_text("saved and enabled")
    (saved,) = await web.bot.state.admin.list_automations()
    assert saved.name == "Hello" and saved.enabled  # a warning never blocks a save
    assert page.url.endswith(f"/settings/automations/{saved.id}#warnings")


@both_stores
async def test_why_marks_the_found_words_at_their_offsets_and_keeps_contact_text_as_text(web: WebInbox) -> None:
    admin = web.bot.state.admin
    await admin.add_label("tag", "closing", actor="api")
    await admin.create({"name": "Bye", "keywords": "bye", "actions": [{"type": "tag", "tag": "closing"}]}, actor="api")
    await admin.create(
        {
            "name": "Refund order",
            "keywords": "refund, order",
            "match": "all",
            "actions": [{"type": "tag", "tag": "closing"}],
        },
        actor="api",
    )
    first = await web.bot.webhook("ﬁne, bye!", contact="c-1")  # a ligature: normalization lengthens the text
    second = await web.bot.webhook("<img src=x onerror=alert(1)> refund", contact="c-1")
    assert second["conversation_id"] == first["conversation_id"]
    page = await web.page(web.agent)
    dialogs: list[str] = []
    page.on("dialog", lambda d: dialogs.append(d.message))
    await page.goto(f"/inbox/{first['conversation_id']}")

    why = page.get_by_role("region", name="Why the automations acted")
    bye = why.get_by_role("article", name=f"Message #{first['message_id']}")
    assert await bye.locator("blockquote").inner_html() == "ﬁne, <mark>bye</mark>!"
    await expect(bye.get_by_role("listitem")).to_contain_text("Bye (revision 1): fired")
    await expect(bye.get_by_role("listitem")).to_contain_text("found “bye”")

    refund = why.get_by_role("article", name=f"Message #{second['message_id']}")
    await expect(refund.locator("blockquote")).to_have_text("<img src=x onerror=alert(1)> refund")
    assert await refund.locator("mark").all_inner_texts() == ["refund"]
    await expect(refund.get_by_role("listitem")).to_contain_text("Refund order (revision 1): did not fire")
    await expect(refund.get_by_role("listitem")).to_contain_text("missing “order”")
    assert await page.locator("img").count() == 0
    assert dialogs == []


async def test_why_in_french(web: WebInbox) -> None:
    admin = web.bot.state.admin
    await admin.add_label("tag", "closing", actor="api")
    await admin.create({"name": "Bye", "keywords": "bye", "actions": [{"type": "tag", "tag": "closing"}]}, actor="api")
    answer = await web.bot.webhook("bye", contact="c-1")
    page = await web.page(locale="fr-FR")
    await web.sign_in(page, web.admin, email_label="E-mail")
    await page.goto(f"/inbox/{answer['conversation_id']}")
    why = page.get_by_role("region", name="Pourquoi les automatisations ont agi")
    await expect(why).to_contain_text("s’est déclenchée")


async def test_a_refused_rollback_says_why_and_changes_nothing(web: WebInbox) -> None:
    admin = web.bot.state.admin
    await admin.add_label("tag", "closing", actor="api")
    await admin.add_label("tag", "vip", actor="api")
    a = await admin.create(
        {"name": "Bye", "keywords": "bye", "actions": [{"type": "tag", "tag": "closing"}]}, actor="api"
    )
    await admin.update(a.id, {"actions": [{"type": "tag", "tag": "vip"}]}, actor="api")
    await admin.delete_label("tag", "closing", actor="api")  # revision 1's tag is gone
    page = await web.page(web.admin)
    await page.goto(f"/settings/automations/{a.id}/history")
    await page.get_by_role("button", name="Roll back to revision 1").click()
    await expect(page.get_by_role("status").first).to_contain_text("Not rolled back: “closing” does not exist")
    assert [r.revision for r in await admin.revisions(a.id)] == [2, 1]
    assert [x.value for x in (await admin.find(a.id)).actions] == ["vip"]
