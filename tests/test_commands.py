"""The `/automation` chat command, through bot.commands.CommandRunner as Slack and
Telegram call it; effects checked over the JSON API and the webhook, as users see them."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from bot.cli import main as cli_main
from bot.front.commands import HELP, NOT_ADMIN
from tests.conftest import SHOP_SECRET, STORES, TOKEN, Bot, make_settings

MakeBot = Callable[..., Awaitable[Bot]]


async def labels(
    bot: Bot, *, tags: tuple[str, ...] = (), topics: tuple[str, ...] = (), reasons: tuple[str, ...] = ()
) -> None:
    for kind, names in (("tags", tags), ("topics", topics), ("reasons", reasons)):
        for n in names:
            reply = await bot.command(f"{kind} add {n}")
            assert reply.startswith("Added"), reply


async def automations(bot: Bot) -> list[dict[str, Any]]:
    return (await bot.api("GET", "/api/automations"))["items"]  # type: ignore[no-any-return]


async def conversations(bot: Bot) -> list[dict[str, Any]]:
    return (await bot.api("GET", "/api/conversations"))["items"]  # type: ignore[no-any-return]


# --- help, list, show ----------------------------------------------------------------------------


async def test_help_lists_every_subcommand(bot: Bot) -> None:
    reply = await bot.command("help")
    assert reply == HELP
    for sub in (
        "list",
        "show NAME",
        "create NAME",
        "enable",
        "disable",
        "delete",
        "test",
        "tags",
        "topics",
        "reasons",
    ):
        assert sub in reply
    assert await bot.command("/automation help") == HELP
    assert await bot.command("") == HELP


async def test_unknown_subcommand_points_to_help(bot: Bot) -> None:
    assert await bot.command("frobnicate") == 'unknown subcommand "frobnicate" — try /automation help'


async def test_list_empty_then_with_items(bot: Bot) -> None:
    assert await bot.command("list") == (
        'No automations yet. Create one: /automation create "Au revoir" keywords="au revoir, bye" resolve'
    )
    await labels(bot, tags=("closing",))
    await bot.command('create "Au revoir" keywords="au revoir, bye" tags=closing resolve')
    await bot.command("create Greeting keywords=hello tags=closing")
    await bot.command("disable Greeting")
    lines = (await bot.command("list")).splitlines()
    assert lines == [
        '#1 "Au revoir" — any of: au revoir, bye → tag "closing", resolve · enabled',
        '#2 "Greeting" — any of: hello → tag "closing" · disabled',
    ]


async def test_show_by_quoted_name_unquoted_multiword_name_and_id(bot: Bot) -> None:
    await labels(bot, tags=("closing",))
    await bot.command('create "Au revoir" keywords="au revoir, bye" tags=closing resolve channels=shop types=direct')
    expected = "\n".join(
        [
            '#1 "Au revoir" (enabled)',
            "keywords (any): au revoir, bye",
            'actions: tag "closing", resolve',
            "channels: shop · types: direct",
        ]
    )
    assert await bot.command('show "Au revoir"') == expected
    assert await bot.command("show Au revoir") == expected
    assert await bot.command("show au REVOIR") == expected  # names compare case-insensitively
    assert await bot.command("show #1") == expected


async def test_show_unknown(bot: Bot) -> None:
    assert await bot.command('show "Nope"') == 'no automation "Nope" — see /automation list'
    assert await bot.command("show #42") == "no automation #42 — see /automation list"
    assert await bot.command("show") == 'name the automation to show, e.g. /automation show "Au revoir" or #3'


# --- create ----------------------------------------------------------------------------------------


async def test_create_with_every_option(make_bot: MakeBot, db_url: str) -> None:
    bot = await make_bot(make_settings(db_url, organization={"advanced_inbox": True}))
    await labels(bot, tags=("closing", "vip"), topics=("Sales", "Billing"), reasons=("Contact left",))
    reply = await bot.command(
        'create "Au revoir" keywords=\'au revoir, "bye, now", bye\' match=all tags="closing, vip" '
        'topics=Sales,Billing resolve reason="Contact left" crm=salesforce '
        "channels=shop,support types=direct,group"
    )
    assert reply == (
        'Created automation #1 "Au revoir": when a message holds all of "au revoir", "bye, now", "bye" → '
        'tag "closing", "vip", topic "Sales", "Billing", resolve (reason "Contact left"), send to salesforce '
        "(only channels shop, support; types direct, group). Enabled."
    )
    (a,) = await automations(bot)
    assert a["name"] == "Au revoir"
    assert a["keywords"] == ["au revoir", "bye, now", "bye"]
    assert (await bot.command("show #1")).splitlines()[1] == 'keywords (all): au revoir, "bye, now", bye'
    assert a["match"] == "all"
    assert a["actions"] == [
        {"type": "tag", "tag": "closing"},
        {"type": "tag", "tag": "vip"},
        {"type": "topic", "topic": "Sales"},
        {"type": "topic", "topic": "Billing"},
        {"type": "resolve", "reason": "Contact left"},
        {"type": "crm", "target": "salesforce"},
    ]
    assert a["channels"] == ["shop", "support"]
    assert a["types"] == ["direct", "group"]
    assert a["enabled"] is True


async def test_create_keyword_phrase_with_comma_escaped_in_double_quotes(bot: Bot) -> None:
    await labels(bot, tags=("closing",))
    reply = await bot.command('create Bye keywords="\\"bye, now\\", ciao" tags=closing')
    assert reply.startswith('Created automation #1 "Bye": when a message holds any of "bye, now", "ciao" →')
    (a,) = await automations(bot)
    assert a["keywords"] == ["bye, now", "ciao"]
    # and the phrase matches the message with its comma
    sent = await bot.webhook("ok Bye, now!")
    conv = await bot.conversation(sent["conversation_id"])
    assert conv["tags"] == ["closing"]
    assert conv["status"] == "open"


async def test_create_minimal_defaults_and_unquoted_name(bot: Bot) -> None:
    await labels(bot, tags=("closing",))
    reply = await bot.command("create Hello there keywords=hi tags=closing")
    assert reply == 'Created automation #1 "Hello there": when a message holds any of "hi" → tag "closing". Enabled.'
    reply = await bot.command('create Good bye keywords="bye, ciao" tags="closing"')
    assert reply == (
        'Created automation #2 "Good bye": when a message holds any of "bye", "ciao" → tag "closing". Enabled.'
    )
    assert await bot.command('create "keywords=x" keywords=x tags=closing') == (
        'Created automation #3 "keywords=x": when a message holds any of "x" → tag "closing". Enabled.'
    )
    await bot.command("delete #2")
    await bot.command("delete #3")
    (a,) = await automations(bot)
    assert (a["match"], a["channels"], a["types"], a["enabled"]) == ("any", [], [], True)


async def test_create_with_typographic_quotes_from_a_phone(bot: Bot) -> None:
    await labels(bot, tags=("closing",), reasons=("Contact left",))
    reply = await bot.command("create “Au revoir” keywords=“au revoir, bye” tags=closing resolve reason=“Contact left”")
    assert reply == (
        'Created automation #1 "Au revoir": when a message holds any of "au revoir", "bye" → '
        'tag "closing", resolve (reason "Contact left"). Enabled.'
    )
    (a,) = await automations(bot)
    assert a["name"] == "Au revoir"
    assert a["keywords"] == ["au revoir", "bye"]
    # the automation works end to end: a first message saying goodbye is resolved with the reason
    sent = await bot.webhook("Merci, au revoir 👋")
    conv = await bot.conversation(sent["conversation_id"])
    assert (conv["status"], conv["resolution_reason"], conv["resolved_by"]) == (
        "resolved",
        "Contact left",
        "automation:1",
    )


async def test_create_reason_alone_implies_resolve(bot: Bot) -> None:
    await labels(bot, reasons=("Contact left",))
    reply = await bot.command('create Bye keywords=bye reason="Contact left"')
    assert reply.endswith('→ resolve (reason "Contact left"). Enabled.')


@pytest.mark.parametrize(
    ("command", "reply"),
    [
        ("create x keywords=a tags=vip", 'unknown tag "vip" — create it with /automation tags add vip'),
        (
            "create x keywords=a topics=Sales",
            'unknown topic "Sales" — create it with /automation topics add Sales',
        ),
        (
            'create x keywords=a reason="Spam"',
            'unknown resolution reason "Spam" — create it with /automation reasons add Spam',
        ),
        ('create x keywords="a', 'a quote (") is not closed — close it and send again'),
        ('create "x keywords=a', 'a quote (") is not closed — close it and send again'),
        ("create x keywords=a resolve foo=1", 'unknown option "foo" — see /automation help'),
        (
            "create x keywords=a resolve oops",
            'unexpected "oops" — options are written key=value; see /automation help',
        ),
        ("create x keywords=a keywords=b resolve", '"keywords" is given twice'),
        ("create x resolve", 'keywords: give at least one keyword, e.g. keywords="au revoir, bye"'),
        (
            'create x keywords=" , " resolve',
            'keywords: give at least one keyword, e.g. keywords="au revoir, bye"',
        ),
        ("create x keywords=a", "give at least one action: tags=…, topics=…, resolve or crm=salesforce"),
        ("create x keywords=a match=some resolve", 'match must be "any" or "all", not "some"'),
        (
            "create x keywords=a resolve types=dm",
            'unknown conversation type "dm" — use direct, group or public',
        ),
        ("create x keywords=a crm=hubspot", 'unknown CRM "hubspot" — the crm action supports salesforce'),
        (
            "create keywords=a resolve",
            'give the automation a name, e.g. /automation create "Au revoir" keywords="au revoir, bye" resolve',
        ),
        (
            "create #7 keywords=a resolve",
            "automation names cannot start with # (that is how #ID refers to one)",
        ),
        ("create " + "n" * 101 + " keywords=a resolve", "automation names are at most 100 characters"),
    ],
)
async def test_create_refusals_change_nothing(bot: Bot, command: str, reply: str) -> None:
    assert await bot.command(command) == reply
    assert await automations(bot) == []


async def test_create_too_many_or_too_long_keywords(bot: Bot) -> None:
    many = ", ".join(f"k{i}" for i in range(101))
    assert await bot.command(f'create x keywords="{many}" resolve') == "keywords: at most 100 keywords (got 101)"
    long = "a" * 201
    assert await bot.command(f"create x keywords={long} resolve") == (
        f'keywords: "{"a" * 40}…" is longer than 200 characters'
    )
    assert await automations(bot) == []
    # duplicates after normalization are merged, 100 distinct keywords are fine
    ok = ", ".join(f"k{i}" for i in range(100)) + ", K0, k0"
    assert (await bot.command(f'create x keywords="{ok}" resolve')).startswith("Created automation #1")
    (a,) = await automations(bot)
    assert len(a["keywords"]) == 100


async def test_duplicate_name_case_insensitive_refused(bot: Bot) -> None:
    await labels(bot, tags=("closing",))
    await bot.command('create "Au revoir" keywords=bye tags=closing')
    assert await bot.command('create "AU REVOIR" keywords=ciao tags=closing') == (
        'an automation named "Au revoir" already exists (#1) — pick another name'
    )
    (a,) = await automations(bot)
    assert a["keywords"] == ["bye"]


# --- plans -------------------------------------------------------------------------------------


async def test_business_plan_refuses_resolve_and_topics(make_bot: MakeBot, db_url: str) -> None:
    bot = await make_bot(make_settings(db_url, organization={"plan": "business"}))
    await labels(bot, tags=("closing",), topics=("Sales",))
    assert await bot.command("create x keywords=bye resolve") == (
        'plan "business" does not include resolve (needs enterprise)'
    )
    assert await bot.command("create x keywords=bye topics=Sales") == (
        'plan "business" does not include topic (needs enterprise)'
    )
    assert await automations(bot) == []
    assert (await bot.command("create x keywords=bye tags=closing")).startswith("Created automation #")


async def test_crm_needs_advanced_inbox(make_bot: MakeBot, db_url: str) -> None:
    bot = await make_bot(make_settings(db_url))
    assert await bot.command("create x keywords=bye crm=salesforce") == (
        'plan "enterprise without advanced_inbox" does not include crm (needs enterprise with advanced_inbox = true)'
    )
    assert await automations(bot) == []


async def test_crm_refused_on_business_naming_plan_needed(make_bot: MakeBot, db_url: str) -> None:
    bot = await make_bot(make_settings(db_url, organization={"plan": "business", "advanced_inbox": True}))
    assert await bot.command("create x keywords=bye crm=salesforce") == (
        'plan "business" does not include crm (needs enterprise with advanced_inbox = true)'
    )
    assert await automations(bot) == []


async def test_reason_refused_when_resolution_reasons_off(make_bot: MakeBot, db_url: str) -> None:
    bot = await make_bot(make_settings(db_url, organization={"resolution_reasons": False}))
    assert await bot.command("reasons add Spam") == (
        "resolution reasons are turned off (resolution_reasons = false in [organization])"
    )
    assert await bot.command('create x keywords=bye resolve reason="Spam"') == (
        "resolution reasons are turned off (resolution_reasons = false in [organization]); "
        "resolve without reason= or turn them on"
    )
    assert await automations(bot) == []
    assert (await bot.command("create x keywords=bye resolve")).startswith("Created automation #1")


async def test_automation_the_plan_no_longer_allows(
    make_bot: MakeBot,
    db_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    keep_logging: None,
) -> None:
    bot = await make_bot(make_settings(db_url))
    await labels(bot, tags=("closing",))
    await bot.command('create "Au revoir" keywords=bye tags=closing resolve')
    await bot.command("create Tagger keywords=bye tags=closing")
    await bot.client.close()  # the app stops; an admin downgrades the plan and starts it again

    bot = await make_bot(make_settings(db_url, organization={"plan": "business"}))
    skipped = 'plan "business" does not include resolve (needs enterprise)'
    assert (await bot.command("list")).splitlines() == [
        f'#1 "Au revoir" — any of: bye → tag "closing", resolve · enabled · ⚠ skipped: {skipped}',
        '#2 "Tagger" — any of: bye → tag "closing" · enabled',
    ]
    assert (await bot.command("show #1")).splitlines()[-1] == f"⚠ skipped at run time: {skipped}"
    # enable refuses it with the plan needed
    assert await bot.command("enable #1") == skipped

    # at run time it is skipped: the message is not resolved, the allowed automation still fires
    sent = await bot.webhook("ok bye")
    conv = await bot.conversation(sent["conversation_id"])
    assert conv["status"] == "open"
    assert conv["tags"] == ["closing"]
    assert [r["automation_name"] for r in conv["runs"]] == ["Tagger"]
    await bot.client.close()

    # and `inbox-bot check` flags it
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        f'[database]\nurl = "{db_url}"\n[organization]\nplan = "business"\n'
        '[api]\ntokens_env = "T_TOKENS"\n'
        '[[channels]]\nname = "shop"\nkind = "webhook"\nsecret_env = "T_SHOP"\n',
        encoding="utf-8",
    )
    monkeypatch.chdir(tmp_path)  # no .env.local from the repo
    monkeypatch.setenv("T_TOKENS", TOKEN)
    monkeypatch.setenv("T_SHOP", SHOP_SECRET)
    capsys.readouterr()
    # the CLI runs its own event loop, so it runs in a thread here
    assert await asyncio.to_thread(cli_main, ["--config", str(cfg), "check"]) == 1
    out = capsys.readouterr().out
    assert f'automation #1 "Au revoir": SKIPPED at run time — {skipped}; disable or change it' in out
    assert "Tagger" not in out
    assert out.splitlines()[-1] == "check: 1 problem(s)"


# --- enable, disable, delete -------------------------------------------------------------------


async def test_enable_disable_delete(bot: Bot) -> None:
    await labels(bot, tags=("closing",))
    await bot.command('create "Au revoir" keywords=bye tags=closing')
    assert await bot.command('enable "Au revoir"') == '#1 "Au revoir" is already enabled.'
    assert await bot.command("disable Au revoir") == 'Disabled automation #1 "Au revoir".'
    assert await bot.command("disable #1") == '#1 "Au revoir" is already disabled.'
    (a,) = await automations(bot)
    assert a["enabled"] is False
    # disabled: does not fire
    sent = await bot.webhook("bye", contact="c-1")
    assert (await bot.conversation(sent["conversation_id"]))["runs"] == []
    assert await bot.command("enable #1") == 'Enabled automation #1 "Au revoir".'
    sent = await bot.webhook("bye", contact="c-2")
    assert len((await bot.conversation(sent["conversation_id"]))["runs"]) == 1
    assert await bot.command("delete au revoir") == 'Deleted automation #1 "Au revoir". Its past runs are kept.'
    assert await automations(bot) == []
    assert await bot.command("delete #1") == "no automation #1 — see /automation list"
    # past runs stay, with the name as it was
    runs = (await bot.conversation(sent["conversation_id"]))["runs"]
    assert [(r["automation_id"], r["automation_name"]) for r in runs] == [(1, "Au revoir")]
    sent = await bot.webhook("bye", contact="c-3")
    assert (await bot.conversation(sent["conversation_id"]))["runs"] == []


async def test_name_then_extra_argument_refused(bot: Bot) -> None:
    await labels(bot, tags=("closing",))
    await bot.command('create "Au revoir" keywords=bye tags=closing')
    assert await bot.command('delete "Au revoir" now') == 'unexpected "now" after the name — see /automation help'
    assert len(await automations(bot)) == 1


# --- test ---------------------------------------------------------------------------------------


async def test_test_reports_and_changes_nothing(bot: Bot) -> None:
    await labels(bot, tags=("closing",), reasons=("Contact left",))
    await bot.command('create "Au revoir" keywords="au revoir, bye" tags=closing resolve reason="Contact left"')
    await bot.command("create Groups keywords=bye tags=closing types=group channels=support")
    reply = await bot.command('test "Merci, au revoir !"')
    assert reply.splitlines() == [
        '#1 "Au revoir" would fire on "au revoir" → tag "closing", resolve (reason "Contact left")',
        "(test only — nothing was changed)",
    ]
    # scope: channel and type given → only what is in scope
    reply = await bot.command('test "bye" channel=support type=group')
    assert reply.splitlines() == [
        '#1 "Au revoir" would fire on "bye" → tag "closing", resolve (reason "Contact left")',
        '#2 "Groups" would fire on "bye" → tag "closing"',
        "(test only — nothing was changed)",
    ]
    reply = await bot.command('test "bye" channel=shop type=group')
    assert '"Groups"' not in reply
    # option values may be quoted too (phones add quotes)
    assert await bot.command('test “bye” channel=“support” type="group"') == await bot.command(
        'test "bye" channel=support type=group'
    )
    assert '"Groups"' not in await bot.command('test "bye" channel=support type=direct')
    # an unquoted message is fine too
    assert (await bot.command("test merci au revoir")).startswith('#1 "Au revoir" would fire on "au revoir"')
    assert await bot.command('test "hello"') == "Nothing would fire.\n(test only — nothing was changed)"
    assert await bot.command('test "bye" channel=nope') == 'unknown channel "nope" — configured channels: shop, support'
    assert await bot.command('test "bye" type=dm') == 'unknown conversation type "dm" — use direct, group or public'
    assert await bot.command("test") == 'give the message to test, e.g. /automation test "Au revoir !"'
    # nothing was stored: no conversation, no run
    assert await conversations(bot) == []
    for a in await automations(bot):
        assert (await bot.api("GET", f"/api/automations/{a['id']}/runs"))["items"] == []


async def test_test_lists_plan_skipped(make_bot: MakeBot, db_url: str) -> None:
    bot = await make_bot(make_settings(db_url))
    await bot.command("create Bye keywords=bye resolve")
    await bot.client.close()
    bot = await make_bot(make_settings(db_url, organization={"plan": "business"}))
    assert (await bot.command('test "bye"')).splitlines() == [
        "Nothing would fire.",
        '"Bye" is skipped: plan "business" does not include resolve (needs enterprise)',
        "(test only — nothing was changed)",
    ]


# --- tags, topics, reasons -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cmd", "what", "plural"),
    [
        ("tags", "tag", "Tags"),
        ("topics", "topic", "Topics"),
        ("reasons", "resolution reason", "Resolution reasons"),
    ],
)
async def test_labels_list_add_delete(bot: Bot, cmd: str, what: str, plural: str) -> None:
    topics = cmd == "topics"  # a topic also has a priority and a team (tests/test_topics.py)
    hint = " [priority=high] [team=TEAM]" if topics else ""
    assert await bot.command(cmd) == f"No {plural.lower()} yet — add one with /automation {cmd} add NAME{hint}"
    routing = " (normal, no team)" if topics else ""
    assert await bot.command(f"{cmd} add Billing issue") == f'Added {what} "Billing issue"{routing}.'
    assert await bot.command(f"{cmd} add Sales") == f'Added {what} "Sales"{routing}.'
    assert await bot.command(f"{cmd} add billing ISSUE") == f'{what} "Billing issue" already exists'
    listing = "Topics:\nBilling issue · normal\nSales · normal" if topics else f"{plural}: Billing issue, Sales"
    assert await bot.command(cmd) == listing
    assert await bot.command(f"{cmd} delete sales") == f'Deleted {what} "Sales".'
    assert await bot.command(f"{cmd} delete Sales") == f'unknown {what} "Sales" — see /automation {cmd}'
    assert await bot.command(f"{cmd} add") == (f"give the {what}'s name, e.g. /automation {cmd} add billing")
    assert await bot.command(f"{cmd} delete") == f"name the {what} to delete, e.g. /automation {cmd} delete NAME"
    verbs = (
        f"{cmd}, {cmd} add NAME, {cmd} set NAME or {cmd} delete NAME"
        if topics
        else (f"{cmd}, {cmd} add NAME or {cmd} delete NAME")
    )
    assert await bot.command(f"{cmd} rename x") == f'unknown "rename" — use /automation {verbs}'
    assert await bot.command(f'{cmd} add "a, b"') == f"{what} names cannot contain commas or double quotes"
    items = (await bot.api("GET", f"/api/{cmd}"))["items"]
    assert items == [{"name": "Billing issue", **({"priority": "normal", "team": None} if topics else {})}]


async def test_delete_label_in_use_refused(bot: Bot) -> None:
    await labels(bot, tags=("closing",), topics=("Sales",), reasons=("Contact left",))
    await bot.command('create "Au revoir" keywords=bye tags=closing topics=Sales reason="Contact left"')
    for cmd, what, name in (
        ("tags", "tag", "closing"),
        ("topics", "topic", "Sales"),
        ("reasons", "resolution reason", "Contact left"),
    ):
        assert await bot.command(f"{cmd} delete {name}") == (
            f'{what} "{name}" is used by automation "Au revoir" (#1) — change or delete that automation first'
        )
        names = [item["name"] for item in (await bot.api("GET", f"/api/{cmd}"))["items"]]
        assert names == [name]
    await bot.command("delete #1")
    assert await bot.command("tags delete closing") == 'Deleted tag "closing".'


# --- admins only ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        "help",
        "list",
        "tags add vip",
        "tags delete closing",
        'create "Other" keywords=x tags=closing',
        "disable #1",
        "delete #1",
        'test "bye"',
    ],
)
async def test_non_admin_refused_and_nothing_changes(bot: Bot, command: str) -> None:
    await labels(bot, tags=("closing",))
    await bot.command('create "Au revoir" keywords=bye tags=closing')
    before = await automations(bot)
    assert await bot.command(command, admin=False) == NOT_ADMIN == "Only inbox admins can manage automations."
    assert await automations(bot) == before
    assert (await bot.api("GET", "/api/tags"))["items"] == [{"name": "closing"}]
    assert await conversations(bot) == []


@pytest.mark.parametrize("db_url", STORES, indirect=True)
@pytest.mark.parametrize("command", ['create "x\x00" keywords=a resolve', "tags add b\x00", 'show "x\x00"'])
async def test_nul_character_refused(bot: Bot, command: str) -> None:
    assert await bot.command(command) == "the command holds a NUL character — remove it and send again"
    assert await automations(bot) == []
    assert (await bot.api("GET", "/api/tags"))["items"] == []


async def test_check_flags_a_crm_automation_without_salesforce_configured(
    tmp_path: Path, db_url: str, make_bot: Any, capsys: pytest.CaptureFixture[str], keep_logging: None
) -> None:
    settings = make_settings(db_url, organization={"advanced_inbox": True})
    bot = await make_bot(settings)
    await bot.api(
        "POST",
        "/api/automations",
        json={"name": "to crm", "keywords": "refund", "actions": [{"type": "crm", "target": "salesforce"}]},
        expect=201,
    )
    await bot.client.close()
    from bot.check import run_check

    assert await run_check(settings) == 1
    assert '"to crm": sends to Salesforce, but [crm.salesforce] is not configured' in capsys.readouterr().out


# --- French ----------------------------------------------------------------------------------------


async def test_every_kind_of_reply_in_french(bot: Bot) -> None:
    fr = "fr"
    assert await bot.command("tags add closing", lang=fr) == 'Étiquette "closing" ajoutée.'
    assert await bot.command("tags add closing", lang=fr) == '"closing" existe déjà (étiquette)'
    assert await bot.command("topics add Ventes priority=high", lang=fr) == (
        'Sujet "Ventes" ajouté (priorité haute, sans équipe).'
    )
    assert await bot.command('create "Au revoir" keywords="au revoir, bye" tags=closing resolve', lang=fr) == (
        'Automatisation #1 "Au revoir" créée : quand un message contient l\'un de ces mots-clés '
        '"au revoir", "bye" → étiqueter "closing", résoudre. Activée.'
    )
    assert await bot.command("list", lang=fr) == (
        '#1 "Au revoir" — l\'un de ces mots-clés : au revoir, bye → étiqueter "closing", résoudre · activée'
    )
    assert (await bot.command("show #1", lang=fr)).splitlines() == [
        '#1 "Au revoir" (activée)',
        "mots-clés (n'importe lequel) : au revoir, bye",
        'actions : étiqueter "closing", résoudre',
        "canaux : tous · types : tous",
    ]
    assert await bot.command("disable #1", lang=fr) == 'Automatisation #1 "Au revoir" désactivée.'
    assert await bot.command("disable #1", lang=fr) == '#1 "Au revoir" est déjà désactivée.'
    assert await bot.command("enable #1", lang=fr) == 'Automatisation #1 "Au revoir" activée.'
    assert (await bot.command('test "Au revoir !"', lang=fr)).splitlines() == [
        '#1 "Au revoir" se déclencherait sur "au revoir" → étiqueter "closing", résoudre',
        "(simple test — rien n'a été modifié)",
    ]
    # refusals from the service, worded in French with their values
    assert await bot.command('create "Au revoir" keywords=x tags=closing', lang=fr) == (
        'une automatisation nommée "Au revoir" existe déjà (#1) — choisissez un autre nom'
    )
    assert await bot.command("create x keywords=bye match=some tags=closing", lang=fr) == (
        'match doit valoir "any" ou "all", pas "some"'
    )
    # a channel the config does not hold is saved, with a warning in French under the reply
    assert '⚠ le canal "nowhere" n’est pas configuré' in await bot.command(
        "create x keywords=bye tags=closing channels=nowhere", lang=fr
    )
    assert (await bot.command("delete x", lang=fr)).startswith("Automatisation #2")
    assert await bot.command("create x keywords=bye tags=vip", lang=fr) == (
        'étiquette "vip" inconnue — créez-la avec /automation tags add vip'
    )
    assert await bot.command("tags delete closing", lang=fr) == (
        '"closing" (étiquette) est utilisé par l\'automatisation "Au revoir" (#1) — '
        "modifiez ou supprimez d'abord cette automatisation"
    )
    assert await bot.command('create x keywords="bye', lang=fr) == (
        "un guillemet (\") n'est pas fermé — fermez-le et renvoyez la commande"
    )
    assert await bot.command("show #42", lang=fr) == "aucune automatisation #42 — voir /automation list"
    assert await bot.command("delete #1", lang=fr) == (
        'Automatisation #1 "Au revoir" supprimée. Ses exécutions passées sont conservées.'
    )
    assert (await bot.command("help", lang=fr)).startswith("/automation list — toutes les automatisations")
    assert await bot.command("tags", admin=False, lang=fr) == (
        "Seuls les administrateurs de la boîte de réception peuvent gérer les automatisations."
    )


async def test_the_organizations_language_when_the_caller_has_none(make_bot: MakeBot, db_url: str) -> None:
    bot = await make_bot(make_settings(db_url, organization={"language": "fr"}))
    assert await bot.command("tags") == "Aucune étiquette pour l'instant — ajoutez-en une avec /automation tags add NOM"
    assert await bot.command("tags", lang="en") == "No tags yet — add one with /automation tags add NAME"
