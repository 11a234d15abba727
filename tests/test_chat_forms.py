"""The chat forms end to end: Slack's "new automation" modal (views.open, view_submission) and the
list's buttons (block_actions), Telegram's inline keyboards (callback_query); real payload shapes
from the platforms' docs, sent to the running app; the real slack_sdk / python-telegram-bot clients
talk to the local doubles, whose recorded calls and the stored automations are what is checked."""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

import pytest

from bot.config import Settings
from bot.front.commands import NOT_ADMIN
from tests.conftest import STORES, Bot, load_payload
from tests.doubles.slack_api import SlackApiDouble
from tests.doubles.telegram_api import TelegramApiDouble
from tests.test_slack import SlackSender, signed, slack_api, slack_settings  # noqa: F401 (fixture)
from tests.test_telegram import ADMIN_ID, api, make_tg_bot, payload, post  # noqa: F401 (fixtures)

# Buttons compare the version they showed with the stored one: both stores must keep it exactly.
pytestmark = pytest.mark.parametrize("db_url", STORES, indirect=True)

MakeBot = Callable[[Settings], Awaitable[Bot]]
MakeTgBot = Callable[..., Awaitable[Bot]]
FR_FRENCH_NOT_ADMIN = "Seuls les administrateurs de la boîte de réception peuvent gérer les automatisations."


# --- Slack helpers -----------------------------------------------------------------------------------


def settings_for(db_url: str, double: SlackApiDouble, **organization: Any) -> Settings:
    settings = slack_settings(db_url, double)
    return settings.model_copy(
        update={
            "admins": settings.admins.model_copy(update={"slack": ["UADMIN", "UFRADMIN"]}),
            "organization": settings.organization.model_copy(update=organization),
        }
    )


@pytest.fixture
async def slack(slack_api: SlackApiDouble, make_bot: MakeBot, db_url: str) -> SlackSender:  # noqa: F811
    bot = await make_bot(settings_for(db_url, slack_api))
    return SlackSender(bot, slack_api)


async def post_command(slack: SlackSender, text: str, *, user: str = "UADMIN") -> dict[str, Any]:
    """`/automation <text>` as Slack POSTs it, without waiting for an answer; returns the form."""
    form = dict(load_payload("slack/slash_command.json"))
    form.update(text=text, user_id=user, response_url=slack.api.response_url(uuid.uuid4().hex))
    form["trigger_id"] = f"13345224609.738474920.{uuid.uuid4().hex}"
    body = urlencode(form).encode()
    await slack.post(body, signed(body, content_type="application/x-www-form-urlencoded"))
    return form


async def interaction(slack: SlackSender, data: dict[str, Any]) -> Any:
    """An interactivity payload as Slack POSTs it (`payload=<json>`); returns the HTTP answer."""
    body = urlencode({"payload": json.dumps(data)}).encode()
    text = await slack.post(body, signed(body, content_type="application/x-www-form-urlencoded"))
    return json.loads(text) if text else None


async def opened_view(slack: SlackSender, count: int = 1) -> dict[str, Any]:
    call = (await slack.api.wait_for("views.open", count))[-1]
    view = call.get("view")
    return json.loads(view) if isinstance(view, str) else dict(view)


def blocks_by_id(view: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {b["block_id"]: b for b in view["blocks"] if "block_id" in b}


def submitted(view: dict[str, Any], user: str = "UADMIN", **values: Any) -> dict[str, Any]:
    """A view_submission of `view` with these fields filled, in Slack's `state.values` shape."""
    data = copy.deepcopy(load_payload("slack/view_submission.json"))
    data["user"]["id"] = user
    state: dict[str, dict[str, Any]] = {}
    for block_id, block in blocks_by_id(view).items():
        if block["type"] != "input":
            continue
        element = block["element"]
        kind, value = element["type"], values.get(block_id)
        entry: dict[str, Any] = {"type": kind}
        if kind == "plain_text_input":
            entry["value"] = value
        elif kind in ("radio_buttons", "static_select"):
            entry["selected_option"] = (
                next(o for o in element["options"] if o["value"] == value) if value is not None else None
            )
        else:  # multi_static_select, checkboxes
            entry["selected_options"] = [o for o in element["options"] if o["value"] in (value or [])]
        state[block_id] = {"value": entry}
    data["view"].update(
        blocks=view["blocks"],
        private_metadata=view["private_metadata"],
        callback_id=view["callback_id"],
        state={"values": state},
    )
    return data


async def slack_labels(slack: SlackSender) -> None:
    for command in ("tags add closing", "tags add vip", "topics add Sales", 'reasons add "Contact left"'):
        answer = await slack.command(command)
        assert answer["text"].startswith("Added"), answer


async def automations(bot: Bot) -> list[dict[str, Any]]:
    return list((await bot.api("GET", "/api/automations"))["items"])


# --- Slack: the form ---------------------------------------------------------------------------------


async def test_create_alone_opens_the_form_with_the_web_forms_fields(slack: SlackSender) -> None:
    await slack_labels(slack)
    answered = len(slack.api.responses)
    command = await post_command(slack, "create")
    [call] = await slack.api.wait_for("views.open")
    assert call.get("trigger_id") == command["trigger_id"]
    view = await opened_view(slack)
    assert (view["type"], view["callback_id"], view["title"]["text"], view["submit"]["text"]) == (
        "modal",
        "automation_create",
        "New automation",
        "Save",
    )
    blocks = blocks_by_id(view)
    assert list(blocks) == [
        "name",
        "match",
        "keywords",
        "tags",
        "topics",
        "resolve",
        "reason",
        "crm",
        "channels",
        "types",
    ]
    labels = {k: b["label"]["text"] for k, b in blocks.items() if b["type"] == "input"}
    assert labels == {
        "name": "Name",
        "match": "Match",
        "keywords": "Keywords",
        "tags": "Tags",
        "topics": "Topics",
        "resolve": "Resolve",
        "reason": "Resolution reason",
        "channels": "Channels",
        "types": "Conversation types",
    }
    options = {
        k: [o["value"] for o in b["element"].get("options", [])] for k, b in blocks.items() if b["type"] == "input"
    }
    assert options["match"] == ["any", "all"]
    assert options["tags"] == ["closing", "vip"]
    assert options["topics"] == ["Sales"]
    assert options["reason"] == ["Contact left"]
    assert options["channels"] == ["slack", "shop"]
    assert options["types"] == ["direct", "group", "public"]
    assert blocks["resolve"]["element"]["options"][0]["text"]["text"] == "Resolve the conversation"
    # send to Salesforce needs advanced_inbox: shown, as unavailable, with what it needs
    assert blocks["crm"]["type"] == "section"
    assert (
        blocks["crm"]["text"]["text"]
        == "Send to Salesforce: not in your plan (needs enterprise with advanced_inbox = true)"
    )
    await slack.command("help")  # answered after the form was handled (one command after the other)
    assert len(slack.api.responses) == answered + 1  # the form is the answer: no text posted for it


async def test_options_the_plan_lacks_are_shown_unavailable(
    slack_api: SlackApiDouble,  # noqa: F811
    make_bot: MakeBot,
    db_url: str,
) -> None:
    slack = SlackSender(await make_bot(settings_for(db_url, slack_api, plan="business")), slack_api)
    await post_command(slack, "create")
    blocks = blocks_by_id(await opened_view(slack))
    for block_id, label in (("topics", "Topics"), ("resolve", "Resolve the conversation")):
        assert blocks[block_id]["type"] == "section"
        assert blocks[block_id]["text"]["text"] == f"{label}: not in your plan (needs enterprise)"
    assert "reason" not in blocks  # it goes with resolve
    assert blocks["tags"]["type"] == "section"  # no tags yet: the way to add one
    assert blocks["tags"]["text"]["text"] == "Tags: none yet — add one with /automation tags add NAME"


async def test_a_french_admin_gets_the_form_in_french(slack: SlackSender) -> None:
    await slack_labels(slack)
    await post_command(slack, "create", user="UFRADMIN")
    view = await opened_view(slack)
    assert (view["title"]["text"], view["submit"]["text"], view["close"]["text"]) == (
        "Nouvelle automatisation",
        "Enregistrer",
        "Annuler",
    )
    blocks = blocks_by_id(view)
    assert [blocks[k]["label"]["text"] for k in ("name", "keywords", "tags", "topics", "channels", "types")] == [
        "Nom",
        "Mots-clés",
        "Étiquettes",
        "Sujets",
        "Canaux",
        "Types de conversation",
    ]
    assert [o["text"]["text"] for o in blocks["match"]["element"]["options"]] == [
        "N'importe quel mot-clé",
        "Tous les mots-clés",
    ]
    assert blocks["resolve"]["element"]["options"][0]["text"]["text"] == "Résoudre la conversation"


async def test_a_form_slack_refuses_to_open_is_answered_with_the_way_out(slack: SlackSender) -> None:
    slack.api.fail_next("views.open", "expired_trigger_id")
    answer = await slack.command("create")
    assert answer["text"] == (
        "The form did not open (Slack answered expired_trigger_id) — send /automation create again, "
        'or write it out: /automation create NAME keywords="k1, k2" resolve'
    )
    assert await automations(slack.bot) == []


async def test_a_non_admin_gets_the_refusal_not_the_form(slack: SlackSender) -> None:
    answer = await slack.command("create", user="UPLAIN")
    assert answer["text"] == NOT_ADMIN
    assert slack.api.of("views.open") == []


async def test_the_submitted_form_saves_an_enabled_automation(slack: SlackSender) -> None:
    await slack_labels(slack)
    await post_command(slack, "create")
    view = await opened_view(slack)
    answer = await interaction(
        slack,
        submitted(
            view,
            name="Au revoir",
            match="all",
            keywords='au revoir, "bye, now"',
            tags=["closing", "vip"],
            topics=["Sales"],
            resolve=["resolve"],
            reason="Contact left",
            channels=["slack"],
            types=["direct", "group"],
        ),
    )
    assert answer["response_action"] == "update"
    text = answer["view"]["blocks"][0]["text"]["text"]
    assert text == (
        'Created automation #1 "Au revoir": when a message holds all of "au revoir", "bye, now" → '
        'tag "closing", "vip", topic "Sales", resolve (reason "Contact left") '
        "(only channels slack; types direct, group). Enabled."
    )
    [a] = await automations(slack.bot)
    assert (a["name"], a["keywords"], a["match"], a["enabled"]) == ("Au revoir", ["au revoir", "bye, now"], "all", True)
    assert a["actions"] == [
        {"type": "tag", "tag": "closing"},
        {"type": "tag", "tag": "vip"},
        {"type": "topic", "topic": "Sales"},
        {"type": "resolve", "reason": "Contact left"},
    ]
    assert (a["channels"], a["types"]) == (["slack"], ["direct", "group"])


@pytest.mark.parametrize(
    ("values", "errors"),
    [
        (
            {"name": "Bye", "keywords": " , ", "tags": ["closing"]},
            {"keywords": 'keywords: give at least one keyword, e.g. keywords="au revoir, bye"'},
        ),
        (
            {"name": "Bye", "keywords": "bye"},
            {"tags": "give at least one action: tags=…, topics=…, resolve or crm=salesforce"},
        ),
        (
            {"name": "#3", "keywords": "bye", "resolve": ["resolve"]},
            {"name": "automation names cannot start with # (that is how #ID refers to one)"},
        ),
        (
            {"name": "Au revoir", "keywords": "ciao", "resolve": ["resolve"]},
            {"name": 'an automation named "Au revoir" already exists (#1) — pick another name'},
        ),
    ],
)
async def test_a_refused_form_shows_each_problem_under_its_field(
    slack: SlackSender, values: dict[str, Any], errors: dict[str, str]
) -> None:
    await slack_labels(slack)
    await slack.command('create "Au revoir" keywords=bye resolve')
    await post_command(slack, "create")
    answer = await interaction(slack, submitted(await opened_view(slack), **values))
    assert answer == {"response_action": "errors", "errors": errors}
    assert [a["name"] for a in await automations(slack.bot)] == ["Au revoir"]  # nothing half-written


async def test_a_tag_deleted_while_the_form_was_open_is_refused_on_the_tags_field(slack: SlackSender) -> None:
    await slack_labels(slack)
    await post_command(slack, "create")
    view = await opened_view(slack)
    await slack.command("tags delete vip")
    answer = await interaction(slack, submitted(view, name="VIP", keywords="vip", tags=["vip"]))
    assert answer == {
        "response_action": "errors",
        "errors": {"tags": 'unknown tag "vip" — create it with /automation tags add vip'},
    }
    assert await automations(slack.bot) == []


async def test_french_errors_under_the_fields(slack: SlackSender) -> None:
    await slack_labels(slack)
    await post_command(slack, "create", user="UFRADMIN")
    answer = await interaction(slack, submitted(await opened_view(slack), user="UFRADMIN", name="Bye", keywords="bye"))
    assert answer == {
        "response_action": "errors",
        "errors": {"tags": "donnez au moins une action : tags=…, topics=…, resolve ou crm=salesforce"},
    }


async def test_a_non_admin_submission_changes_nothing(slack: SlackSender) -> None:
    await slack_labels(slack)
    await post_command(slack, "create")
    view = await opened_view(slack)
    answer = await interaction(slack, submitted(view, user="UPLAIN", name="X", keywords="x", resolve=["resolve"]))
    assert answer["response_action"] == "update"
    assert answer["view"]["blocks"][0]["text"]["text"] == NOT_ADMIN
    assert await automations(slack.bot) == []


# --- Slack: the list's buttons -------------------------------------------------------------------


def buttons(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for b in blocks if b["type"] == "actions" for e in b["elements"]]


async def press(slack: SlackSender, button: dict[str, Any], *, user: str = "UADMIN") -> dict[str, Any]:
    """A block_actions payload for `button`; returns what the app posted to its response_url."""
    data = copy.deepcopy(load_payload("slack/block_actions.json"))
    key = uuid.uuid4().hex
    data["user"]["id"] = user
    data["response_url"] = slack.api.response_url(key)
    data["actions"][0].update(action_id=button["action_id"], value=button["value"], text=button["text"])
    before = len(slack.api.responses)
    await interaction(slack, data)
    responses = await slack.api.wait_for_responses(before + 1)
    [(_, answer)] = [(k, d) for k, d in responses if k == key]
    return answer


async def test_list_has_enable_disable_and_delete_buttons_carrying_ids(slack: SlackSender) -> None:
    await slack.command('create "Au revoir" keywords="au revoir, bye" resolve')
    await slack.command("create Greeting keywords=hello resolve")
    await slack.command("disable Greeting")
    answer = await slack.command("list")
    assert answer["text"].splitlines()[0] == '#1 "Au revoir" — any of: au revoir, bye → resolve · enabled'
    sections = [b["text"]["text"] for b in answer["blocks"] if b["type"] == "section"]
    assert sections == [
        '#1 "Au revoir" — any of: au revoir, bye → resolve · enabled',
        '#2 "Greeting" — any of: hello → resolve · disabled',
    ]
    found = buttons(answer["blocks"])
    assert [(b["action_id"], b["text"]["text"]) for b in found] == [
        ("automation_disable", "Disable"),
        ("automation_delete", "Delete"),
        ("automation_enable", "Enable"),
        ("automation_delete", "Delete"),
    ]
    assert [b["value"].split(":")[0] for b in found] == ["1", "1", "2", "2"]  # ids, never names
    assert all("Au revoir" not in b["value"] and "Greeting" not in b["value"] for b in found)
    assert found[0]["accessibility_label"] == "Disable Au revoir"
    confirm = found[1]["confirm"]
    assert (confirm["title"]["text"], confirm["confirm"]["text"], confirm["deny"]["text"]) == (
        "Delete the automation?",
        "Delete",
        "Cancel",
    )
    assert confirm["text"]["text"] == 'Delete automation #1 "Au revoir"? Its past runs are kept.'


async def test_disable_then_the_same_button_again_does_it_once(slack: SlackSender) -> None:
    await slack.command('create "Au revoir" keywords="au revoir" resolve')
    disable = buttons((await slack.command("list"))["blocks"])[0]
    answer = await press(slack, disable)
    assert answer["replace_original"] is True
    assert answer["text"] == 'Disabled automation #1 "Au revoir".'
    assert answer["blocks"][0]["elements"][0]["text"] == 'Disabled automation #1 "Au revoir".'
    assert [b["action_id"] for b in buttons(answer["blocks"])] == ["automation_enable", "automation_delete"]
    assert [a["enabled"] for a in await automations(slack.bot)] == [False]
    again = await press(slack, disable)
    assert again["text"] == '#1 "Au revoir" is already disabled.'
    enable = buttons(answer["blocks"])[0]
    assert (await press(slack, enable))["text"] == 'Enabled automation #1 "Au revoir".'
    assert [a["enabled"] for a in await automations(slack.bot)] == [True]


async def test_a_stale_button_answers_so_and_changes_nothing(slack: SlackSender) -> None:
    await slack.command('create "Au revoir" keywords="au revoir" resolve')
    _disable, delete = buttons((await slack.command("list"))["blocks"])
    await slack.bot.api("PATCH", "/api/automations/1", json={"keywords": ["ciao"]})  # changed since the list
    answer = await press(slack, delete)
    assert answer["text"] == (
        '#1 "Au revoir" changed since this list was shown; nothing was done — see /automation list'
    )
    assert [a["keywords"] for a in await automations(slack.bot)] == [["ciao"]]
    fresh_delete = buttons(answer["blocks"])[1]  # the list comes back as it is now
    assert (await press(slack, fresh_delete))["text"] == 'Deleted automation #1 "Au revoir". Its past runs are kept.'
    assert await automations(slack.bot) == []
    gone = await press(slack, fresh_delete)
    assert gone["text"] == "Automation #1 no longer exists — see /automation list"
    assert gone["blocks"][-1]["text"]["text"].startswith("No automations yet.")


async def test_a_non_admin_pressing_a_button_changes_nothing(slack: SlackSender) -> None:
    await slack.command('create "Au revoir" keywords="au revoir" resolve')
    disable = buttons((await slack.command("list"))["blocks"])[0]
    answer = await press(slack, disable, user="UPLAIN")
    assert answer == {"text": NOT_ADMIN, "response_type": "ephemeral", "replace_original": False}
    assert [a["enabled"] for a in await automations(slack.bot)] == [True]


async def test_french_buttons_and_answers(slack: SlackSender) -> None:
    await slack.command('create "Au revoir" keywords="au revoir" resolve')
    answer = await slack.command("list", user="UFRADMIN")
    found = buttons(answer["blocks"])
    assert [b["text"]["text"] for b in found] == ["Désactiver", "Supprimer"]
    assert found[1]["confirm"]["text"]["text"] == (
        'Supprimer l\'automatisation #1 "Au revoir" ? Ses exécutions passées sont conservées.'
    )
    assert (await press(slack, found[0], user="UFRADMIN"))["text"] == 'Automatisation #1 "Au revoir" désactivée.'


# --- Telegram: the list's inline keyboard --------------------------------------------------------------


@pytest.fixture
async def tg(make_tg_bot: MakeTgBot) -> Bot:  # noqa: F811
    return await make_tg_bot()


class Presser:
    """Sends Telegram callback_query updates for buttons the bot sent."""

    def __init__(self, bot: Bot, double: TelegramApiDouble) -> None:
        self.bot = bot
        self.api = double
        self.update_id = 900_000_000

    async def command(self, text: str, *, user: int = ADMIN_ID, lang: str = "en") -> None:
        self.update_id += 1
        data = payload("command_automation", update_id=self.update_id, user_id=user, text=f"/automation {text}")
        data["message"]["from"]["language_code"] = lang
        await post(self.bot, data)

    def keyboard(self, index: int = -1) -> list[list[dict[str, Any]]]:
        sent = [c for c in self.api.calls if c.method in ("sendMessage", "editMessageText")]
        return self.api.keyboard(sent[index])

    async def press(
        self, button: dict[str, Any], *, user: int = ADMIN_ID, lang: str = "en", message_id: int = 5001
    ) -> dict[str, Any]:
        """Press `button`; returns the answerCallbackQuery the bot made for it."""
        self.update_id += 1
        data = copy.deepcopy(load_payload("telegram/callback_query.json"))
        data["update_id"] = self.update_id
        query = data["callback_query"]
        query["id"] = f"cq-{self.update_id}"
        query["from"].update(id=user, language_code=lang)
        query["message"]["chat"]["id"] = ADMIN_ID
        query["message"]["message_id"] = message_id
        query["data"] = button["callback_data"]
        await post(self.bot, data)
        [answer] = [a for a in self.api.answers() if a["callback_query_id"] == query["id"]]
        return answer


@pytest.fixture
def tgp(tg: Bot, api: TelegramApiDouble) -> Presser:  # noqa: F811
    return Presser(tg, api)


async def test_telegram_list_has_inline_buttons_carrying_ids(tgp: Presser) -> None:
    await tgp.command('create "Au revoir" keywords="au revoir" resolve')
    await tgp.command("create Greeting keywords=hello resolve")
    await tgp.command("disable Greeting")
    await tgp.command("list")
    sent = tgp.api.sent()[-1]
    assert sent["text"].splitlines() == [
        '#1 "Au revoir" — any of: au revoir → resolve · enabled',
        '#2 "Greeting" — any of: hello → resolve · disabled',
    ]
    rows = tgp.keyboard()
    assert [[b["text"] for b in row] for row in rows] == [["Disable #1", "Delete #1"], ["Enable #2", "Delete #2"]]
    data = [b["callback_data"] for row in rows for b in row]
    assert [d.rsplit(":", 2)[0] for d in data] == ["a:off", "a:del", "a:on", "a:del"]
    assert all("Au revoir" not in d and "Greeting" not in d and len(d.encode()) <= 64 for d in data)


async def test_telegram_disable_twice_does_it_once_and_every_press_is_answered(tgp: Presser) -> None:
    await tgp.command('create "Au revoir" keywords="au revoir" resolve')
    await tgp.command("list")
    disable = tgp.keyboard()[0][0]
    answer = await tgp.press(disable)
    assert answer["text"] == 'Disabled automation #1 "Au revoir".'
    [edit] = tgp.api.calls_to("editMessageText")
    assert (int(edit.get("chat_id")), int(edit.get("message_id"))) == (ADMIN_ID, 5001)
    assert edit.get("text") == '#1 "Au revoir" — any of: au revoir → resolve · disabled'
    assert [b["text"] for b in tgp.api.keyboard(edit)[0]] == ["Enable #1", "Delete #1"]
    assert [a["enabled"] for a in await automations(tgp.bot)] == [False]
    assert (await tgp.press(disable))["text"] == '#1 "Au revoir" is already disabled.'
    assert [a["enabled"] for a in await automations(tgp.bot)] == [False]
    assert len(tgp.api.answers()) == 2


async def test_telegram_delete_asks_first_then_deletes_once(tgp: Presser) -> None:
    await tgp.command('create "Au revoir" keywords="au revoir" resolve')
    await tgp.command("list")
    delete = tgp.keyboard()[0][1]
    asked = await tgp.press(delete)
    assert asked["text"] is None
    question = tgp.api.sent()[-1]
    assert question["text"] == 'Delete automation #1 "Au revoir"? Its past runs are kept.'
    assert len(await automations(tgp.bot)) == 1  # asking changes nothing
    yes, keep = tgp.keyboard()[0]
    assert (yes["text"], keep["text"]) == ("Yes, delete #1", "Keep it")
    assert (await tgp.press(keep, message_id=5002))["text"] == "Nothing was deleted."
    assert len(await automations(tgp.bot)) == 1
    assert (await tgp.press(yes, message_id=5002))[
        "text"
    ] == 'Deleted automation #1 "Au revoir". Its past runs are kept.'
    assert await automations(tgp.bot) == []
    assert tgp.api.calls_to("editMessageText")[-1].get("text") == (
        'Deleted automation #1 "Au revoir". Its past runs are kept.'
    )
    assert (await tgp.press(yes, message_id=5002))["text"] == "Automation #1 no longer exists — see /automation list"
    assert (await tgp.press(delete))["text"] == "Automation #1 no longer exists — see /automation list"


async def test_telegram_a_stale_button_answers_so(tgp: Presser) -> None:
    await tgp.command('create "Au revoir" keywords="au revoir" resolve')
    await tgp.command("list")
    disable = tgp.keyboard()[0][0]
    await tgp.bot.api("PATCH", "/api/automations/1", json={"name": "Bye"})
    answer = await tgp.press(disable)
    assert answer["text"] == '#1 "Bye" changed since this list was shown; nothing was done — see /automation list'
    assert [(a["name"], a["enabled"]) for a in await automations(tgp.bot)] == [("Bye", True)]


async def test_telegram_a_non_admin_press_is_refused_and_changes_nothing(tgp: Presser) -> None:
    await tgp.command('create "Au revoir" keywords="au revoir" resolve')
    await tgp.command("list")
    for button in tgp.keyboard()[0]:
        answer = await tgp.press(button, user=999, lang="fr")
        assert answer == {
            "callback_query_id": answer["callback_query_id"],
            "text": FR_FRENCH_NOT_ADMIN,
            "show_alert": True,
        }
    assert [a["enabled"] for a in await automations(tgp.bot)] == [True]
    assert tgp.api.calls_to("editMessageText") == []


async def test_telegram_buttons_in_french(tgp: Presser) -> None:
    await tgp.command('create "Au revoir" keywords="au revoir" resolve')
    await tgp.command("list", lang="fr")
    disable, delete = tgp.keyboard()[0]
    assert (disable["text"], delete["text"]) == ("Désactiver #1", "Supprimer #1")
    assert (await tgp.press(disable, lang="fr"))["text"] == 'Automatisation #1 "Au revoir" désactivée.'
    await tgp.press(delete, lang="fr")
    assert tgp.api.sent()[-1]["text"] == (
        'Supprimer l\'automatisation #1 "Au revoir" ? Ses exécutions passées sont conservées.'
    )
    assert [b["text"] for b in tgp.keyboard()[0]] == ["Oui, supprimer #1", "La garder"]
