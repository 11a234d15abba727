"""config.toml: the sketch parses; one message per problem, naming the key; a channel whose
secrets are missing is left off while the others start; `serve` refuses a bad config."""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from bot.cli import main as cli_main
from bot.config import ConfigError, SlackChannel, TelegramChannel, WebhookChannel, load_settings, settings_from_dict
from tests.conftest import SHOP_SECRET, Bot, make_settings
from tests.signing import signed_headers

MakeBot = Callable[..., Awaitable[Bot]]

README_SKETCH = """
[server]
host = "127.0.0.1"
port = 8080

[database]
url = "sqlite://data/inbox.sqlite3"      # or "postgres://user@host:5432/inbox"

[organization]
plan = "enterprise"                      # business | enterprise
advanced_inbox = false
resolution_reasons = true

[admins]
slack = ["U0123ABCD"]
telegram = [123456789]
slack_workspace_admins = true

[api]
tokens_env = "INBOX_API_TOKENS"          # comma-separated bearer tokens

[[channels]]
name = "shop"
kind = "webhook"
secret_env = "INBOX_SHOP_SECRET"
reply_url = "https://shop.example/inbox-replies"   # optional

[[channels]]
name = "slack"
kind = "slack"
bot_token_env = "SLACK_BOT_TOKEN"
signing_secret_env = "SLACK_SIGNING_SECRET"
# app_token_env = "SLACK_APP_TOKEN"     # Socket Mode instead of HTTP events
# api_url = "https://slack.com/api/"    # override for a proxy or a test double

[[channels]]
name = "support-tg"
kind = "telegram"
token_env = "TELEGRAM_BOT_TOKEN"
webhook_secret_env = "TELEGRAM_WEBHOOK_SECRET"   # absent: long polling
# public_url = "https://inbox.example.com"       # on start: setWebhook to {public_url}/telegram/{name}
# api_url = "https://api.telegram.org/bot"

[crm.salesforce]
instance_url = "https://example.my.salesforce.com"
session_id_env = "SALESFORCE_SESSION_ID"         # or username_env/password_env/security_token_env
case_external_id_field = "Inbox_Conversation_Id__c"   # optional: upsert by external id
poll_seconds = 30                                # agent replies and Case status back into the inbox
# ca_file = "/etc/ssl/corp-ca.pem"              # extra CA to trust (a corporate proxy, a test double)
"""

SKETCH_ENV = {
    "INBOX_API_TOKENS": "tok-1, tok-2",
    "INBOX_SHOP_SECRET": "shop-s3cret",
    "SLACK_BOT_TOKEN": "xoxb-1-2-3",
    "SLACK_SIGNING_SECRET": "sign-s3cret",
    "TELEGRAM_BOT_TOKEN": "123:ABC",
    "TELEGRAM_WEBHOOK_SECRET": "tg-s3cret",
    "SALESFORCE_SESSION_ID": "00Dxx!AQ",
}


def problems(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        settings_from_dict(raw, env={})
    assert str(info.value) == "\n".join(info.value.problems)
    return info.value.problems


# --- the sketch -----------------------------------------------------------------------------------


def test_spec_sketch_parses(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(README_SKETCH, encoding="utf-8")
    s = load_settings(path, env=SKETCH_ENV)
    assert s.path == str(path)
    assert (s.server.host, s.server.port) == ("127.0.0.1", 8080)
    assert s.database.url == f"sqlite://{tmp_path}/data/inbox.sqlite3"  # relative to the file, not the cwd
    assert (s.organization.plan, s.organization.advanced_inbox, s.organization.resolution_reasons) == (
        "enterprise",
        False,
        True,
    )
    assert (s.admins.slack, s.admins.telegram, s.admins.slack_workspace_admins) == (["U0123ABCD"], [123456789], True)
    assert s.api_tokens() == frozenset({"tok-1", "tok-2"})
    shop, slack, tg = s.channels
    assert isinstance(shop, WebhookChannel) and shop.reply_url == "https://shop.example/inbox-replies"
    assert isinstance(slack, SlackChannel) and slack.app_token_env is None
    assert isinstance(tg, TelegramChannel) and tg.webhook_secret_env == "TELEGRAM_WEBHOOK_SECRET"
    assert s.secret(shop.secret_env) == "shop-s3cret"
    assert all(s.missing_secrets(ch) == [] for ch in s.channels)
    sf = s.crm.salesforce
    assert sf is not None
    assert (sf.instance_url, sf.session_id_env, sf.case_external_id_field, sf.poll_seconds) == (
        "https://example.my.salesforce.com",
        "SALESFORCE_SESSION_ID",
        "Inbox_Conversation_Id__c",
        30,
    )
    # the secrets are known (for redaction) but never part of the dumped settings
    assert set(SKETCH_ENV.values()) - {"tok-1, tok-2"} <= set(s.secret_values())
    assert {"tok-1", "tok-2"} <= set(s.secret_values())
    dumped = json.dumps(s.model_dump(mode="json"))
    for value in SKETCH_ENV.values():
        assert value not in dumped


def test_sketch_without_secrets_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(README_SKETCH, encoding="utf-8")
    s = load_settings(path, env={})
    assert [s.missing_secrets(ch) for ch in s.channels] == [
        ["INBOX_SHOP_SECRET"],
        ["SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET"],
        ["TELEGRAM_BOT_TOKEN", "TELEGRAM_WEBHOOK_SECRET"],
    ]
    assert s.api_tokens() == frozenset()


def test_config_found_via_inbox_config_and_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "elsewhere.toml"
    path.write_text('[organization]\nplan = "business"\n', encoding="utf-8")
    s = load_settings(env={"INBOX_CONFIG": str(path)})
    assert s.organization.plan == "business"
    assert s.path == str(path)
    # ./config.toml in the working directory
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.toml").write_text("", encoding="utf-8")
    s = load_settings(env={})
    assert (s.organization.plan, s.server.port, s.channels) == ("enterprise", 8080, [])


def test_missing_file_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(tmp_path / "nope.toml", env={})
    assert info.value.problems == [
        f"{tmp_path / 'nope.toml'}: config file not found (pass --config PATH or set INBOX_CONFIG)"
    ]
    bad = tmp_path / "bad.toml"
    bad.write_text("[server\nport = 1", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings(bad, env={})
    (problem,) = info.value.problems
    assert problem.startswith(f"{bad}: not valid TOML:")


# --- one message per problem ------------------------------------------------------------------------


def test_unknown_keys() -> None:
    assert problems({"server": {"hots": "0.0.0.0"}, "colour": "blue"}) == [
        "server.hots: unknown key (see the README, section Configuration)",
        "colour: unknown key (see the README, section Configuration)",
    ]
    assert problems({"channels": [{"name": "shop", "kind": "webhook", "secret_env": "S", "secret": "x"}]}) == [
        "channels[0].secret: unknown key (see the README, section Configuration)"
    ]


def test_wrong_types() -> None:
    assert problems({"server": {"port": "eighty"}, "organization": {"advanced_inbox": "maybe"}}) == [
        "server.port: Input should be a valid integer",
        "organization.advanced_inbox: Input should be a valid boolean",
    ]
    # strict: TOML strings are not read as booleans or numbers
    assert problems({"organization": {"advanced_inbox": "yes"}, "admins": {"slack": "U1"}}) == [
        "organization.advanced_inbox: Input should be a valid boolean",
        "admins.slack: Input should be a valid list",
    ]
    assert problems({"admins": {"telegram": ["abc"]}}) == ["admins.telegram[0]: Input should be a valid integer"]
    assert problems({"server": {"port": 70000}}) == ["server.port: Input should be less than or equal to 65535"]
    assert problems({"database": {"url": "mysql://x"}}) == ["database.url: must start with sqlite:// or postgres://"]


def test_language_defaults_to_english_and_a_bad_one_names_the_key() -> None:
    assert settings_from_dict({}, env={}).organization.language == "en"
    assert settings_from_dict({"organization": {"language": "fr"}}, env={}).organization.language == "fr"
    assert problems({"organization": {"language": "de"}}) == ["organization.language: Input should be 'en' or 'fr'"]


def test_bad_plan() -> None:
    assert problems({"organization": {"plan": "gold"}}) == [
        "organization.plan: Input should be 'business' or 'enterprise'"
    ]


def test_channel_problems() -> None:
    assert problems(
        {
            "channels": [
                {"name": "shop", "kind": "webhook", "secret_env": "A"},
                {"name": "shop", "kind": "webhook", "secret_env": "B"},
            ]
        }
    ) == ["channels[1].name: 'shop' is used by another channel"]
    assert problems({"channels": [{"name": "shop", "kind": "webhook"}]}) == [
        "channels[0].secret_env: required key is missing"
    ]
    assert problems({"channels": [{"name": "tg", "kind": "telegram"}]}) == [
        "channels[0].token_env: required key is missing"
    ]
    assert problems({"channels": [{"name": "shop", "kind": "fax"}]}) == [
        "channels[0].kind: must be one of webhook, slack, telegram"
    ]
    assert problems({"channels": [{"name": "Shop Front", "kind": "webhook", "secret_env": "A"}]}) == [
        "channels[0].name: 'Shop Front' must be letters, digits, '-' or '_' (it is part of the URL path)"
    ]


def test_secret_written_literally_is_refused_without_echoing_it() -> None:
    secret = "whsec-9f8e7d6c5b4a"
    found = problems(
        {
            "api": {"tokens_env": "tok-abc,tok-def"},
            "channels": [
                {"name": "shop", "kind": "webhook", "secret_env": secret},
                {"name": "slack", "kind": "slack", "bot_token_env": "xoxb-123-456", "signing_secret_env": "OK_NAME"},
            ],
        }
    )
    why = "must be the name of an environment variable (letters, digits, _), not the secret itself"
    assert found == [
        f"api.tokens_env: {why}",
        f"channels[0].secret_env: {why}",
        f"channels[1].bot_token_env: {why}",
    ]
    assert not any(s in p for p in found for s in (secret, "tok-abc", "xoxb-123-456"))


def test_every_problem_reported_at_once() -> None:
    assert problems(
        {
            "server": {"port": -1},
            "organization": {"plan": "gold"},
            "channels": [
                {"name": "Shop!", "kind": "webhook", "secret_env": "A"},
                {"name": "x", "kind": "webhook", "secret_env": "A"},
                {"name": "x", "kind": "slack", "bot_token_env": "A", "signing_secret_env": "B"},
            ],
            "crm": {"salesforce": {"instance_url": "https://x.my.salesforce.com"}},
            "log_level": "LOUD",
        }
    ) == [
        "server.port: Input should be greater than or equal to 0",
        "organization.plan: Input should be 'business' or 'enterprise'",
        "channels[0].name: 'Shop!' must be letters, digits, '-' or '_' (it is part of the URL path)",
        "crm.salesforce: set session_id_env, or username_env and password_env (and security_token_env)",
        "log_level: must be DEBUG, INFO, WARNING or ERROR",
        "channels[2].name: 'x' is used by another channel",
    ]


# --- missing secrets: left off, the others start ----------------------------------------------------


async def test_channel_without_secrets_is_left_off(make_bot: MakeBot, db_url: str) -> None:
    settings = make_settings(
        db_url,
        channels=[
            {"name": "shop", "kind": "webhook", "secret_env": "TEST_SHOP_SECRET"},
            {"name": "partner", "kind": "webhook", "secret_env": "TEST_PARTNER_SECRET"},
            {"name": "slack", "kind": "slack", "bot_token_env": "T_SLACK_BOT", "signing_secret_env": "T_SLACK_SIGN"},
            {"name": "tg", "kind": "telegram", "token_env": "T_TG_TOKEN"},
        ],
    )
    bot = await make_bot(settings)
    body = json.dumps({"id": "m-1", "contact": {"id": "c-1"}, "text": "hello"}).encode()
    resp = await bot.client.post("/webhooks/partner", data=body, headers=signed_headers(SHOP_SECRET, body))
    assert resp.status == 404
    assert await resp.json() == {"error": 'channel "partner" is off: set TEST_PARTNER_SECRET in the environment'}
    assert bot.state.left_off == {
        "partner": 'channel "partner" is off: set TEST_PARTNER_SECRET in the environment',
        "slack": 'channel "slack" is off: set T_SLACK_BOT, T_SLACK_SIGN in the environment',
        "tg": 'channel "tg" is off: set T_TG_TOKEN in the environment',
    }
    # the configured one with its secret works
    sent = await bot.webhook("hello", channel="shop")
    assert sent["duplicate"] is False
    assert [c["channel"] for c in (await bot.api("GET", "/api/conversations"))["items"]] == ["shop"]
    resp = await bot.client.get("/healthz")
    assert resp.status == 200


# --- serve refuses a bad config ----------------------------------------------------------------------


def test_serve_with_bad_config_exits_2_listing_each_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], keep_logging: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env.local from the repo
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        '[server]\nport = "http"\n[organization]\nplan = "gold"\ncolour = 1\n'
        '[[channels]]\nname = "shop"\nkind = "webhook"\n',
        encoding="utf-8",
    )
    with pytest.raises(SystemExit) as info:
        cli_main(["--config", str(cfg), "serve", "--port", "0"])
    assert info.value.code == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "inbox-bot: the config cannot be used:",
        "  - server.port: Input should be a valid integer",
        "  - organization.plan: Input should be 'business' or 'enterprise'",
        "  - organization.colour: unknown key (see the README, section Configuration)",
        "  - channels[0].secret_env: required key is missing",
    ]
    assert not (tmp_path / "data").exists()  # nothing was started or migrated


def test_serve_with_missing_config_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], keep_logging: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as info:
        cli_main(["--config", str(tmp_path / "missing.toml"), "serve"])
    assert info.value.code == 2
    assert "config file not found" in capsys.readouterr().err


def test_loader_keys_in_the_file_and_bad_reply_url_are_reported() -> None:
    assert problems({"env": {"X": "y"}}) == ["env: unknown key (see the README, section Configuration)"]
    assert problems(
        {"channels": [{"name": "Shop", "kind": "webhook", "secret_env": "S", "reply_url": "shop.example/replies"}]}
    ) == ["channels[0].reply_url: must be an http:// or https:// URL"]


# --- relative paths: against the config file's folder -------------------------------------------------


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ('url = "sqlite://data/inbox.sqlite3"', "sqlite://{conf}/data/inbox.sqlite3"),
        ('url = "sqlite://./x.sqlite3?synchronous=NORMAL"', "sqlite://{conf}/x.sqlite3?synchronous=NORMAL"),
        ('url = "sqlite://../shared/inbox.sqlite3"', "sqlite://{conf}/../shared/inbox.sqlite3"),
        ('url = "sqlite:///var/lib/inbox.sqlite3"', "sqlite:///var/lib/inbox.sqlite3"),
        ('url = "sqlite://:memory:"', "sqlite://:memory:"),
        ('url = "postgres://u@db:5432/inbox"', "postgres://u@db:5432/inbox"),
        ("pool_max = 4", "sqlite://{conf}/data/inbox.sqlite3"),  # the default store too
    ],
)
def test_relative_paths_resolve_against_the_config_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, written: str, expected: str
) -> None:
    conf, cwd = tmp_path / "conf", tmp_path / "cwd"
    conf.mkdir()
    cwd.mkdir()
    (conf / "config.toml").write_text(
        f'[database]\n{written}\n[crm.salesforce]\ninstance_url = "https://x.my.salesforce.com"\n'
        'session_id_env = "SF"\nca_file = "certs/corp.pem"\n',
        encoding="utf-8",
    )
    monkeypatch.chdir(cwd)
    s = load_settings("../conf/config.toml", env={})
    assert s.path == "../conf/config.toml"  # as given: it is what the user typed
    assert s.database.url == expected.format(conf=conf)
    assert s.crm.salesforce is not None
    assert s.crm.salesforce.ca_file == f"{conf}/certs/corp.pem"


def test_absolute_ca_file_and_dicts_without_a_file_are_left_as_written() -> None:
    sf = {"instance_url": "https://x.my.salesforce.com", "session_id_env": "SF", "ca_file": "/etc/ssl/corp.pem"}
    s = settings_from_dict({"database": {"url": "sqlite://data/x.sqlite3"}, "crm": {"salesforce": sf}}, env={})
    assert s.database.url == "sqlite://data/x.sqlite3"
    assert s.crm.salesforce is not None and s.crm.salesforce.ca_file == "/etc/ssl/corp.pem"
    s = settings_from_dict({"crm": {"salesforce": sf}}, env={}, path="/srv/inbox/config.toml")
    assert s.database.url == "sqlite:///srv/inbox/data/inbox.sqlite3"
    assert s.crm.salesforce is not None and s.crm.salesforce.ca_file == "/etc/ssl/corp.pem"


# --- the web inbox's keys ---------------------------------------------------------------------------------


def test_the_session_key_comes_from_the_variable_the_config_names() -> None:
    key = base64.urlsafe_b64encode(bytes(range(32))).decode()
    settings = settings_from_dict({"server": {"session_key_env": "MY_KEY"}}, env={"MY_KEY": key})
    assert settings.session_key() == bytes(range(32))
    assert key in settings.secret_values()  # redacted from logs like every secret
    assert settings_from_dict({}, env={}).session_key() is None  # unset: the server makes one per run


@pytest.mark.parametrize("value", ["too-short", "x" * 44, base64.urlsafe_b64encode(b"k" * 16).decode()])
def test_a_session_key_that_is_not_32_bytes_stops_start_up_naming_the_key(value: str) -> None:
    with pytest.raises(ConfigError) as info:
        settings_from_dict({}, env={"INBOX_SESSION_KEY": value})
    (problem,) = info.value.problems
    assert problem.startswith("server.session_key_env: the value of INBOX_SESSION_KEY is not a key")
    assert value not in problem  # never echo a secret


def test_public_url_and_organization_language() -> None:
    https = settings_from_dict({"server": {"public_url": "https://inbox.example.com/"}}, env={})
    assert https.server.https and https.server.public_url == "https://inbox.example.com"
    assert not settings_from_dict({"server": {"public_url": "http://127.0.0.1:8080"}}, env={}).server.https
    assert settings_from_dict({}, env={}).organization.language == "en"
    with pytest.raises(ConfigError) as info:
        settings_from_dict({"server": {"public_url": "inbox.example.com"}, "organization": {"language": "de"}}, env={})
    assert [p.split(":", 1)[0] for p in info.value.problems] == ["server.public_url", "organization.language"]
