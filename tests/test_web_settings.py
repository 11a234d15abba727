"""The admins' pages in a real browser against the real server: automations made, changed,
disabled, enabled and deleted through the form and the list, plan-gated options, the Test box,
labels, users, the French pages, and agents refused."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import pytest
from aiohttp import ClientSession
from playwright.async_api import Browser, Page, expect

from bot.config import Settings
from tests.browser import WebInbox, add_person
from tests.conftest import STORES, Bot, make_settings

both_stores = pytest.mark.parametrize("db_url", STORES, indirect=True)


async def seed_labels(bot: Bot) -> None:
    admin = bot.state.admin
    await admin.add_label("tag", "closing", actor="api")
    await admin.add_label("tag", "vip", actor="api")
    await admin.add_label("reason", "Contact left", actor="api")
    await admin.add_topic("Refunds", priority="high", actor="api")


async def fill_au_revoir(page: Page) -> None:
    await page.get_by_label("Name").fill("Au revoir")
    await page.get_by_label("Keywords", exact=True).fill('au revoir, bye, "see you, later"')
    await page.get_by_role("radio", name="Any keyword").check()
    await page.get_by_role("group", name="Tags").get_by_label("closing").check()
    await page.get_by_label("Resolve the conversation").check()
    await page.get_by_label("Resolution reason").select_option("Contact left")


@both_stores
async def test_an_admin_creates_au_revoir_and_a_contacts_goodbye_is_resolved(web: WebInbox) -> None:
    await seed_labels(web.bot)
    page = await web.page(web.admin)
    await page.goto("/settings/automations")
    await page.get_by_role("link", name="Add an automation").click()
    await fill_au_revoir(page)
    await page.get_by_role("button", name="Save").click()
    await page.wait_for_url("**/settings/automations")
    await expect(page.get_by_role("status").first).to_contain_text("saved and enabled")
    row = page.get_by_role("row", name="Au revoir")
    await expect(row).to_contain_text('au revoir, bye, "see you, later"')
    await expect(row).to_contain_text("tag closing")
    await expect(row).to_contain_text("resolve the conversation (reason: Contact left)")
    await expect(page.get_by_role("button", name="Disable Au revoir")).to_be_visible()

    (saved,) = await web.bot.state.admin.list_automations()
    assert saved.enabled and saved.created_by == web.admin.user.actor
    answer = await web.bot.webhook("Au revoir !", contact="c-7", name="Marie")
    conversation = await web.bot.conversation(answer["conversation_id"])
    assert conversation["status"] == "resolved"
    assert conversation["resolution_reason"] == "Contact left"
    assert conversation["tags"] == ["closing"]


@both_stores
async def test_disable_enable_and_delete_with_confirmation(web: WebInbox) -> None:
    await seed_labels(web.bot)
    await web.bot.state.admin.create(
        {"name": "Au revoir", "keywords": "au revoir", "actions": [{"type": "tag", "tag": "closing"}]}, actor="api"
    )
    page = await web.page(web.admin)
    await page.goto("/settings/automations")

    await page.get_by_role("button", name="Disable Au revoir").click()
    await expect(page.get_by_role("button", name="Enable Au revoir")).to_be_visible()
    assert not (await web.bot.state.admin.find("Au revoir")).enabled
    answer = await web.bot.webhook("au revoir")
    assert (await web.bot.conversation(answer["conversation_id"]))["tags"] == []  # disabled: nothing fired

    await page.get_by_role("button", name="Enable Au revoir").click()
    await expect(page.get_by_role("button", name="Disable Au revoir")).to_be_visible()
    assert (await web.bot.state.admin.find("Au revoir")).enabled

    await page.get_by_role("button", name="Delete Au revoir").click()
    await expect(page.get_by_role("heading", name="Delete “Au revoir”?")).to_be_visible()
    assert len(await web.bot.state.admin.list_automations()) == 1  # asking first changed nothing
    await page.get_by_role("link", name="Cancel").click()
    await expect(page.get_by_role("button", name="Disable Au revoir")).to_be_visible()

    await page.get_by_role("button", name="Delete Au revoir").click()
    await page.get_by_role("button", name="Delete Au revoir").click()
    await page.wait_for_url("**/settings/automations")
    await expect(page.get_by_role("status").first).to_contain_text("deleted")
    assert await page.get_by_role("row", name="Au revoir").count() == 0
    assert await web.bot.state.admin.list_automations() == []


async def test_a_refused_form_shows_the_error_next_to_the_field_and_keeps_the_input(web: WebInbox) -> None:
    await seed_labels(web.bot)
    page = await web.page(web.admin)
    await page.goto("/settings/automations/new")
    await page.get_by_label("Name").fill("Bye <b>now</b>")
    await page.get_by_role("group", name="Tags").get_by_label("vip").check()
    async with page.expect_response(lambda r: r.request.method == "POST") as answer:
        await page.get_by_role("button", name="Save").click()
    assert (await answer.value).status == 400
    keywords = page.get_by_label("Keywords", exact=True)
    await expect(keywords).to_have_attribute("aria-invalid", "true")
    await expect(page.locator("#keywords-error")).to_have_text("This is required.")
    await expect(page.get_by_label("Name")).to_have_value("Bye <b>now</b>")
    await expect(page.get_by_role("group", name="Tags").get_by_label("vip")).to_be_checked()

    # no action at all: said on the actions
    await keywords.fill("bye")
    await page.get_by_role("group", name="Tags").get_by_label("vip").uncheck()
    await page.get_by_role("button", name="Save").click()
    await expect(page.locator("#actions-error")).to_have_text("This is required.")
    assert await web.bot.state.admin.list_automations() == []  # nothing half-written


async def test_editing_an_automation_keeps_it_enabled_or_disabled_as_it_was(web: WebInbox) -> None:
    await seed_labels(web.bot)
    created = await web.bot.state.admin.create(
        {"name": "Bye", "keywords": "bye", "actions": [{"type": "tag", "tag": "closing"}]}, actor="api"
    )
    await web.bot.state.admin.set_enabled(created.id, False, actor="api")
    page = await web.page(web.admin)
    await page.goto("/settings/automations")
    await page.get_by_role("link", name="Bye").click()
    await expect(page.get_by_label("Keywords", exact=True)).to_have_value("bye")
    await page.get_by_label("Keywords", exact=True).fill("bye, ciao")
    await page.get_by_role("group", name="Topics").get_by_label("Refunds").check()
    await page.get_by_role("button", name="Save").click()
    await page.wait_for_url("**/settings/automations")
    saved = await web.bot.state.admin.find(created.id)
    assert saved.keywords == ("bye", "ciao") and not saved.enabled
    assert [a.value for a in saved.actions] == ["closing", "Refunds"]


async def test_the_test_box_says_what_would_fire_and_changes_nothing(web: WebInbox) -> None:
    await seed_labels(web.bot)
    await web.bot.state.admin.create(
        {"name": "Au revoir", "keywords": "au revoir", "actions": [{"type": "tag", "tag": "closing"}]}, actor="api"
    )
    page = await web.page(web.admin)
    await page.goto("/settings/automations")
    await page.get_by_label("Message to test").fill("Merci, au revoir !")
    await page.get_by_role("button", name="Test", exact=True).click()
    result = page.get_by_role("status")
    await expect(result).to_contain_text("“Au revoir” would fire (found “au revoir”): tag closing.")
    await page.get_by_label("Message to test").fill("hello")
    await page.get_by_role("button", name="Test", exact=True).click()
    await expect(page.get_by_role("status")).to_contain_text("Nothing would fire.")
    assert (await web.bot.api("GET", "/api/conversations"))["items"] == []


@pytest.fixture
def business(db_url: str) -> Settings:
    return make_settings(db_url, organization={"plan": "business", "resolution_reasons": False})


async def test_options_the_plan_lacks_are_disabled_with_the_plan_they_need(
    make_bot: Callable[[Settings], Awaitable[Bot]], business: Settings, browser: Browser
) -> None:
    bot = await make_bot(business)
    await bot.state.admin.add_label("tag", "closing", actor="api")
    await bot.state.admin.add_topic("Refunds", actor="api")
    web = WebInbox(bot, browser, await add_person(bot, "admin"), await add_person(bot, "agent"))
    try:
        page = await web.page(web.admin)
        await page.goto("/settings/automations/new")
        await expect(page.get_by_role("group", name="Tags").get_by_label("closing")).to_be_enabled()
        topics = page.get_by_role("group", name="Topics")
        await expect(topics.get_by_label("Refunds")).to_be_disabled()
        await expect(topics).to_contain_text("Needs enterprise.")
        await expect(page.get_by_label("Resolve the conversation")).to_be_disabled()
        await expect(page.get_by_label("Resolve the conversation")).to_have_accessible_description("Needs enterprise.")
        await expect(page.get_by_label("Send to Salesforce")).to_be_disabled()
        await expect(page.get_by_label("Resolution reason")).to_have_count(0)  # reasons are off
        # the tag still works on this plan
        await page.get_by_label("Name").fill("Bye")
        await page.get_by_label("Keywords", exact=True).fill("bye")
        await page.get_by_role("group", name="Tags").get_by_label("closing").check()
        await page.get_by_role("button", name="Save").click()
        await expect(page.get_by_role("button", name="Disable Bye")).to_be_visible()
    finally:
        await web.close()


async def test_an_agent_is_refused_every_settings_page(web: WebInbox) -> None:
    page = await web.page(web.agent)
    for path in (
        "/settings/automations",
        "/settings/automations/new",
        "/settings/labels",
        "/settings/users",
        "/settings/audit",
    ):
        answer = await page.goto(path)
        assert answer is not None and answer.status == 403, path
        await expect(page.get_by_role("alert")).to_contain_text("Only admins")


async def test_a_settings_post_without_the_csrf_token_is_refused_and_changes_nothing(web: WebInbox) -> None:
    await web.bot.state.admin.add_label("tag", "vip", actor="api")
    page = await web.page(web.admin)
    cookies = {c["name"]: c["value"] for c in await page.context.cookies()}
    async with ClientSession(cookies=cookies) as client:
        for path, form in (
            ("/settings/automations/new", {"name": "Bye", "keywords": "bye", "tags": "vip"}),
            ("/settings/labels/tag/add", {"name": "closing"}),
            ("/settings/users/new", {"email": "eve@example.com", "role": "admin"}),
        ):
            resp = await client.post(f"{web.url}{path}", data=form, allow_redirects=False)
            assert resp.status == 403, path
    assert await web.bot.state.admin.list_labels("tag") == ["vip"]
    assert await web.bot.state.admin.list_automations() == []
    assert len(await web.bot.state.people.list_users()) == 2


async def test_the_french_form_under_accept_language_fr(web: WebInbox) -> None:
    await seed_labels(web.bot)
    page = await web.page(locale="fr-FR")
    await web.sign_in(page, web.admin, email_label="E-mail")
    await page.goto("/settings/automations/new")
    await page.get_by_label("Nom", exact=True).fill("Au revoir")
    await page.get_by_label("Mots-clés", exact=True).fill("au revoir")
    await page.get_by_role("radio", name="Tous les mots-clés").check()
    await expect(page.get_by_role("radio", name="N'importe quel mot-clé")).not_to_be_checked()
    await page.get_by_role("group", name="Étiquettes").get_by_label("closing").check()
    await expect(page.get_by_role("group", name="Sujets")).to_be_visible()
    await expect(page.get_by_role("group", name="Canaux")).to_be_visible()
    await expect(page.get_by_role("group", name="Types de conversation")).to_be_visible()
    await expect(page.get_by_label("Envoyer à Salesforce")).to_be_disabled()
    await page.get_by_label("Résoudre la conversation").check()
    await page.get_by_label("Motif de résolution").select_option("Contact left")
    await page.get_by_role("button", name="Enregistrer").click()
    await expect(page.get_by_role("button", name="Désactiver Au revoir")).to_be_visible()
    await page.get_by_role("button", name="Désactiver Au revoir").click()
    await expect(page.get_by_role("button", name="Activer Au revoir")).to_be_visible()
    await expect(page.get_by_role("button", name="Supprimer Au revoir")).to_be_visible()
    assert (await web.bot.state.admin.find("Au revoir")).match.value == "all"


@both_stores
async def test_labels_page_adds_changes_and_deletes_with_the_services_refusals(web: WebInbox) -> None:
    page = await web.page(web.admin)
    await page.goto("/settings/labels")
    await page.get_by_label("New team").fill("Billing")
    await page.locator("#teams").get_by_role("button", name="Add").click()
    await page.get_by_label("New tag").fill("closing")
    await page.locator("#tags").get_by_role("button", name="Add").click()
    await page.get_by_label("New resolution reason").fill("Contact left")
    await page.locator("#reasons").get_by_role("button", name="Add").click()
    await page.get_by_label("New topic").fill("Refunds")
    await page.locator("#topics").get_by_label("Priority", exact=True).select_option("high")
    await page.locator("#topics").get_by_label("Team", exact=True).select_option("Billing")
    await page.locator("#topics").get_by_role("button", name="Add").click()
    (topic,) = await web.bot.state.admin.list_topics()
    assert (topic.name, topic.priority.value, topic.team) == ("Refunds", "high", "Billing")

    # a name taken (any case) is refused beside its form, the input kept
    await page.get_by_label("New tag").fill("CLOSING")
    await page.locator("#tags").get_by_role("button", name="Add").click()
    await expect(page.locator("#add-tag-error")).to_contain_text("This name is taken")
    await expect(page.get_by_label("New tag")).to_have_value("CLOSING")

    # a topic's priority and team change; a team in use cannot go
    await page.get_by_label("Priority of Refunds").select_option("urgent")
    await page.get_by_label("Team of Refunds").select_option("")
    await page.get_by_role("button", name="Change Refunds").click()
    await expect(page.get_by_label("Priority of Refunds")).to_have_value("urgent")
    (topic,) = await web.bot.state.admin.list_topics()
    assert (topic.priority.value, topic.team) == ("urgent", None)
    await page.get_by_label("Team of Refunds").select_option("Billing")
    await page.get_by_role("button", name="Change Refunds").click()
    await page.get_by_role("button", name="Delete Billing").click()
    await expect(page.locator("#list-team-error")).to_contain_text('used by topic "Refunds"')
    assert [t.name for t in await web.bot.state.people.list_teams()] == ["Billing"]

    # a tag an automation uses cannot go either; an unused one can
    await web.bot.state.admin.create(
        {"name": "Bye", "keywords": "bye", "actions": [{"type": "tag", "tag": "closing"}]}, actor="api"
    )
    await page.goto("/settings/labels")
    await page.get_by_role("button", name="Delete closing").click()
    await expect(page.locator("#list-tag-error")).to_contain_text('used by automation "Bye"')
    await page.get_by_role("button", name="Delete Contact left").click()
    await expect(page.get_by_role("status").first).to_contain_text("“Contact left” deleted.")
    assert await web.bot.state.admin.list_labels("reason") == []


@both_stores
async def test_users_page_adds_with_a_password_shown_once_changes_and_deactivates(web: WebInbox) -> None:
    await web.bot.state.people.add_team("Billing", actor="api")
    page = await web.page(web.admin)
    await page.goto("/settings/users")
    await page.get_by_label("Email").fill("ana@example.com")
    await page.get_by_label("Name").fill("Ana Lima")
    await page.get_by_label("Role").select_option("agent")
    await page.get_by_role("group", name="Teams").get_by_label("Billing").check()
    await page.get_by_role("button", name="Add", exact=True).click()
    shown = page.get_by_role("status").locator("code")
    password = await shown.inner_text()
    assert len(password) >= 10
    ana = await web.bot.state.people.find_user("ana@example.com")
    assert ana.teams == ("Billing",) and ana.role.value == "agent"
    assert await web.bot.state.people.password_matches("ana@example.com", password)
    await page.goto("/settings/users")
    assert await page.locator("code").count() == 0  # shown once only

    # a taken email is refused next to the field, what was typed kept
    await page.get_by_label("Email").fill("ANA@example.com")
    await page.get_by_label("Password").fill("short")
    await page.get_by_role("button", name="Add", exact=True).click()
    await expect(page.locator("#user-password-error")).to_be_visible()
    await expect(page.get_by_label("Email")).to_have_value("ANA@example.com")

    # role, teams and language change on the user's page
    await page.goto("/settings/users")
    await page.get_by_role("link", name="Ana Lima").click()
    await page.get_by_label("Role").select_option("admin")
    await page.get_by_role("group", name="Teams").get_by_label("Billing").uncheck()
    await page.get_by_label("Language").select_option("fr")
    await page.get_by_role("button", name="Save").click()
    await page.wait_for_url("**/settings/users")
    ana = await web.bot.state.people.get_user(ana.id)
    assert (ana.role.value, ana.teams, ana.language) == ("admin", (), "fr")

    # deactivating ends their sessions at once
    ana_page = await web.page()
    await ana_page.goto("/login")
    await ana_page.get_by_label("Email").fill("ana@example.com")
    await ana_page.get_by_label("Password").fill(password)
    await ana_page.get_by_role("button", name="Sign in").click()
    await ana_page.wait_for_url("**/inbox")
    await page.get_by_role("button", name="Deactivate Ana Lima").click()
    await expect(page.get_by_role("button", name="Reactivate Ana Lima")).to_be_visible()
    await ana_page.goto("/inbox")
    assert urlsplit(ana_page.url).path == "/login"
    assert await page.get_by_role("button", name=f"Deactivate {web.admin.user.name}").count() == 0  # not oneself


async def test_an_admin_cannot_take_their_own_admin_role_away(web: WebInbox) -> None:
    page = await web.page(web.admin)
    await page.goto(f"/settings/users/{web.admin.user.id}")
    await page.get_by_label("Role").select_option("agent")
    async with page.expect_response(lambda r: r.request.method == "POST") as answer:
        await page.get_by_role("button", name="Save").click()
    assert (await answer.value).status == 400
    await expect(page.get_by_role("alert")).to_contain_text("ask another admin")
    assert (await web.bot.state.people.get_user(web.admin.user.id)).role.value == "admin"


async def test_names_are_shown_as_text_and_run_nothing(web: WebInbox) -> None:
    await web.bot.state.admin.add_label("tag", "closing", actor="api")
    await web.bot.state.admin.create(
        {"name": "<img src=x onerror=alert(1)>", "keywords": "bye", "actions": [{"type": "tag", "tag": "closing"}]},
        actor="api",
    )
    page = await web.page(web.admin)
    dialogs: list[str] = []
    page.on("dialog", lambda d: dialogs.append(d.message))
    await page.goto("/settings/automations")
    await expect(page.get_by_role("link", name="<img src=x onerror=alert(1)>")).to_be_visible()
    await page.goto("/settings/automations?text=bye")
    await expect(page.get_by_role("status")).to_contain_text("“<img src=x onerror=alert(1)>” would fire")
    assert await page.locator("img").count() == 0
    assert dialogs == []
