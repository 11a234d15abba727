"""Send to CRM: the real simple-salesforce client against a local HTTPS double of the REST API.

The double (tests/doubles/salesforce_api.py) is served with a certificate from a test CA (trustme);
the bot trusts it through `[crm.salesforce] ca_file`. Replies on the webhook channel go to a second
local double standing in for the shop's reply_url.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import requests
import trustme
from aiohttp import web
from aiohttp.test_utils import TestServer
from simple_salesforce.exceptions import SalesforceGeneralError, SalesforceMalformedRequest

from bot.config import Settings
from bot.outbox import PermanentFailure, RetryLater
from bot.services.crm import CrmSync, case_marker, comments_cursor
from bot.store import repo
from connectors.salesforce.connector import SalesforceCrm, translate_error
from tests.conftest import STORES, Bot, eventually, make_settings
from tests.doubles.salesforce_api import INTEGRATION_USER, SalesforceDouble

MakeBot = Callable[[Settings], Awaitable[Bot]]
EXTERNAL_ID = "Inbox_Conversation_Id__c"
COMMENTS_CURSOR = comments_cursor("salesforce")


# --- doubles ---------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> str:
    path = tmp_path / "test-ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture
async def salesforce(aiohttp_server: Any, ca: trustme.CA) -> tuple[SalesforceDouble, TestServer]:
    double = SalesforceDouble()
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(ctx)
    server = await aiohttp_server(double.app(), ssl=ctx)
    return double, server


class ReplyInbox:
    """The shop's reply_url: records every signed reply the bot POSTs."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.bodies.append(json.loads(await request.read()))
        return web.json_response({"ok": True})

    def texts(self) -> list[str]:
        return [b["text"] for b in self.bodies]


@pytest.fixture
async def replies(aiohttp_server: Any) -> tuple[ReplyInbox, str]:
    inbox = ReplyInbox()
    app = web.Application()
    app.router.add_post("/inbox-replies", inbox.handle)
    server = await aiohttp_server(app)
    return inbox, str(server.make_url("/inbox-replies"))


def sf_settings(
    db_url: str,
    *,
    double: SalesforceDouble,
    server: TestServer,
    ca_file: str,
    reply_url: str | None = None,
    external_id: str | None = None,
    advanced_inbox: bool = True,
) -> Settings:
    sf: dict[str, Any] = {
        "instance_url": f"https://127.0.0.1:{server.port}",
        "session_id_env": "TEST_SF_SESSION",
        "ca_file": ca_file,
        "poll_seconds": 3600,  # tests poll explicitly
        "timeout": 0.3,
    }
    if external_id:
        sf["case_external_id_field"] = external_id
    shop: dict[str, Any] = {"name": "shop", "kind": "webhook", "secret_env": "TEST_SHOP_SECRET"}
    if reply_url:
        shop["reply_url"] = reply_url
    return make_settings(
        db_url,
        organization={"advanced_inbox": advanced_inbox},
        outbox={"max_attempts": 12, "base_delay": 0.02, "max_delay": 0.1, "poll_interval": 0.02},
        channels=[shop],
        crm={"salesforce": sf},
        env={"TEST_SF_SESSION": double.session_id},
    )


@pytest.fixture
def setup(
    db_url: str,
    salesforce: tuple[SalesforceDouble, TestServer],
    ca_file: str,
    replies: tuple[ReplyInbox, str],
) -> Callable[..., Settings]:
    double, server = salesforce
    _, reply_url = replies

    def build(**kw: Any) -> Settings:
        return sf_settings(db_url, double=double, server=server, ca_file=ca_file, reply_url=reply_url, **kw)

    return build


# --- helpers ---------------------------------------------------------------------------------------


async def settled(bot: Bot, cid: int) -> None:
    """Every outbox job of the conversation ran (done, or failed for good)."""

    async def check() -> bool:
        jobs = (await bot.api("GET", f"/api/outbox?conversation_id={cid}&limit=200"))["items"]
        return bool(jobs) and all(j["status"] in ("done", "failed") for j in jobs)

    await eventually(check, f"outbox jobs of conversation {cid} settled")
    failed = (await bot.api("GET", f"/api/outbox?conversation_id={cid}&status=failed"))["items"]
    assert failed == [], failed


async def crm_automation(bot: Bot) -> None:
    await bot.api(
        "POST",
        "/api/automations",
        json={"name": "Escalate", "keywords": "refund", "actions": [{"type": "crm", "target": "salesforce"}]},
        expect=201,
    )


def crm(bot: Bot) -> CrmSync:
    assert isinstance(bot.state.crm, CrmSync) and isinstance(bot.state.crm.crm, SalesforceCrm)
    return bot.state.crm


def our_comment_texts(double: SalesforceDouble, case_id: str) -> list[str]:
    """The message texts of the comments the bot wrote on the Case, in Salesforce's order."""
    ours = [c["CommentBody"] for c in double.comments_of(case_id) if c["CreatedById"] == INTEGRATION_USER]
    return [body.split(":\n", 1)[1].rsplit("\n\n[inbox-bot", 1)[0] for body in ours]


# --- out: the Case and its comments ------------------------------------------------------------


async def test_case_created_once_with_fields_then_comments_in_order(
    make_bot: MakeBot, setup: Callable[..., Settings], salesforce: tuple[SalesforceDouble, TestServer]
) -> None:
    double, _ = salesforce
    bot = await make_bot(setup())
    await crm_automation(bot)
    first = await bot.webhook("Hello, my order #881 never arrived")
    cid = first["conversation_id"]
    await bot.webhook("I want a refund please")
    await settled(bot, cid)

    assert len(double.cases) == 1
    (case,) = double.cases.values()
    assert case["Subject"] == f"Hello, my order #881 never arrived {case_marker(cid)}"
    assert case["Origin"] == "shop"
    assert case["SuppliedName"] == "Marie"
    assert "Marie: Hello, my order #881 never arrived" in case["Description"]
    assert "Marie: I want a refund please" in case["Description"]
    assert double.comments_of(case["Id"]) == []  # the transcript so far is the Description

    conv = await bot.conversation(cid)
    assert conv["crm"] == {"case_id": case["Id"], "case_number": case["CaseNumber"]}

    await bot.webhook("Any news?")
    await bot.api("POST", f"/api/conversations/{cid}/messages", json={"text": "We are on it"}, expect=201)
    await bot.webhook("Thanks!")
    await settled(bot, cid)

    assert our_comment_texts(double, case["Id"]) == ["Any news?", "We are on it", "Thanks!"]
    assert all(c["IsPublished"] is False for c in double.comments_of(case["Id"]))
    assert double.calls("create_case") == 1
    assert double.calls("create_comment") == 3

    # A later sync finds nothing new: no duplicate comment, no second Case.
    await crm(bot).sync_conversation({"conversation_id": cid})
    assert double.calls("create_comment") == 3 and len(double.cases) == 1


async def test_upsert_by_external_id_field(
    make_bot: MakeBot, setup: Callable[..., Settings], salesforce: tuple[SalesforceDouble, TestServer]
) -> None:
    double, _ = salesforce
    bot = await make_bot(setup(external_id=EXTERNAL_ID))
    await crm_automation(bot)
    cid = (await bot.webhook("refund for order 12"))["conversation_id"]
    await settled(bot, cid)

    (case,) = double.cases.values()
    assert case[EXTERNAL_ID] == str(cid)
    assert double.calls("upsert_case") == 1 and double.calls("create_case") == 0
    assert (await bot.conversation(cid))["crm"]["case_number"] == case["CaseNumber"]


@pytest.mark.parametrize("db_url", STORES, indirect=True)
@pytest.mark.parametrize("external_id", [None, EXTERNAL_ID], ids=["create", "upsert"])
async def test_failures_then_recovery_give_one_case_and_each_comment_once(
    make_bot: MakeBot,
    setup: Callable[..., Settings],
    salesforce: tuple[SalesforceDouble, TestServer],
    external_id: str | None,
) -> None:
    double, _ = salesforce
    double.slow_seconds = 0.8  # > the client's 0.3 s timeout
    case_op = "upsert_case" if external_id else "create_case"
    double.fail(case_op, 500)
    double.fail(case_op, 503)
    double.fail(case_op, "timeout")  # Salesforce creates the Case, the bot never hears
    bot = await make_bot(setup(external_id=external_id))
    await crm_automation(bot)
    cid = (await bot.webhook("I need a refund"))["conversation_id"]
    await settled(bot, cid)
    assert len(double.cases) == 1
    if not external_id:  # 500, 503, timeout; then the look-up found the Case: no fourth create
        assert double.calls("create_case") == 3
    else:  # one Case by the bot's own requests, not by luck: every write is an upsert on one key
        keys = {detail.split(" ", 1)[0] for op, detail in double.requests if op == "upsert_case"}
        assert keys == {f"{external_id}/{cid}"} and double.calls("create_case") == 0
        assert double.calls("upsert_case") == 4  # 500, 503, timeout (saved, answer lost), then ok
    case_id = next(iter(double.cases))

    double.fail("create_comment", "timeout")  # the comment is saved, the answer is lost
    double.fail("create_comment", 503)
    double.fail("query", 500)  # the look-up before resending fails once too
    double.fail("create_comment", 500)
    for text in ("one", "two", "three"):
        await bot.webhook(text)
    await settled(bot, cid)

    assert len(double.cases) == 1
    assert our_comment_texts(double, case_id) == ["one", "two", "three"]
    jobs = (await bot.api("GET", f"/api/outbox?conversation_id={cid}&limit=200"))["items"]
    assert any(j["attempts"] > 0 for j in jobs)  # it did go through retries


async def test_a_job_that_keeps_failing_is_failed_visibly(
    make_bot: MakeBot, setup: Callable[..., Settings], salesforce: tuple[SalesforceDouble, TestServer]
) -> None:
    double, _ = salesforce
    bot = await make_bot(setup())
    await crm_automation(bot)
    cid = (await bot.webhook("refund " + "x" * 300))["conversation_id"]

    async def failed() -> bool:
        return bool((await bot.api("GET", "/api/outbox?status=failed"))["items"])

    # The Subject is clipped to Salesforce's 255 characters, so this one goes through.
    await settled(bot, cid)
    assert len(next(iter(double.cases.values()))["Subject"]) <= 255
    double.session_id = "expired"  # every call now answers 401 INVALID_SESSION_ID
    await bot.webhook("hello?")
    await eventually(failed, "the crm_sync job failed for good")
    (job,) = (await bot.api("GET", "/api/outbox?status=failed"))["items"]
    assert job["kind"] == "crm_sync" and job["conversation_id"] == cid
    assert "INVALID_SESSION_ID" in job["last_error"]


# --- back: agent comments and Case status ------------------------------------------------------


async def linked_conversation(bot: Bot, double: SalesforceDouble) -> tuple[int, str]:
    await crm_automation(bot)
    cid = (await bot.webhook("Where is my refund?"))["conversation_id"]
    await settled(bot, cid)
    conv = await bot.conversation(cid)
    return cid, conv["crm"]["case_id"]


@pytest.mark.parametrize("db_url", STORES, indirect=True)
async def test_agent_comment_reaches_the_channel_once_even_across_a_restart(
    make_bot: MakeBot,
    setup: Callable[..., Settings],
    salesforce: tuple[SalesforceDouble, TestServer],
    replies: tuple[ReplyInbox, str],
) -> None:
    double, _ = salesforce
    shop, _ = replies
    settings = setup()
    bot = await make_bot(settings)
    cid, case_id = await linked_conversation(bot, double)

    double.add_agent_comment(case_id, "Internal note: check the warehouse", public=False)
    double.add_agent_comment(case_id, "Your refund was sent today.")
    await crm(bot).poll_once()
    await settled(bot, cid)
    assert shop.texts() == ["Your refund was sent today."]
    conv = await bot.conversation(cid)
    out = [m for m in conv["messages"] if m["direction"] == "outbound"]
    assert [m["text"] for m in out] == ["Your refund was sent today."]
    assert await bot.delivered(cid) == {out[0]["id"]}
    stored = await repo.get_message(out[0]["id"])
    assert stored is not None and stored.author == "salesforce"
    await crm(bot).poll_once()  # seen already
    assert await repo.kv_get(COMMENTS_CURSOR) is not None

    # The agent's comment is not copied back onto the Case as one of ours.
    await bot.webhook("Great, thanks")
    await settled(bot, cid)
    assert our_comment_texts(double, case_id) == ["Great, thanks"]

    # Restart: a new server on the same store polls again; nothing is sent twice, new work flows.
    await bot.client.close()
    bot = await make_bot(settings)
    await crm(bot).poll_once()
    double.add_agent_comment(case_id, "Anything else?")
    await crm(bot).poll_once()
    await settled(bot, cid)
    await crm(bot).poll_once()
    assert shop.texts() == ["Your refund was sent today.", "Anything else?"]


async def test_many_agent_comments_follow_query_paging_in_order(
    make_bot: MakeBot,
    setup: Callable[..., Settings],
    salesforce: tuple[SalesforceDouble, TestServer],
    replies: tuple[ReplyInbox, str],
) -> None:
    double, _ = salesforce
    shop, _ = replies
    double.page_size = 2  # query_all must follow nextRecordsUrl
    bot = await make_bot(setup())
    cid, case_id = await linked_conversation(bot, double)
    texts = [f"step {i}" for i in range(5)]
    for t in texts:
        double.add_agent_comment(case_id, t)
    await crm(bot).poll_once()
    await settled(bot, cid)
    assert shop.texts() == texts


async def test_case_closed_resolves_and_reopened_reopens(
    make_bot: MakeBot, setup: Callable[..., Settings], salesforce: tuple[SalesforceDouble, TestServer]
) -> None:
    double, _ = salesforce
    bot = await make_bot(setup())
    cid, case_id = await linked_conversation(bot, double)

    double.set_case_status(case_id, "Closed", closed=True)
    await crm(bot).poll_once()
    conv = await bot.conversation(cid)
    assert (conv["status"], conv["resolved_by"]) == ("resolved", "salesforce")
    await crm(bot).poll_once()  # seen already: nothing changes

    double.set_case_status(case_id, "Working", closed=False)
    await crm(bot).poll_once()
    conv = await bot.conversation(cid)
    assert (conv["status"], conv["resolved_by"]) == ("open", None)


async def test_the_case_link_and_its_status_come_back_to_open_pages_live(
    make_bot: MakeBot, setup: Callable[..., Settings], salesforce: tuple[SalesforceDouble, TestServer]
) -> None:
    double, _ = salesforce
    bot = await make_bot(setup())
    page = bot.state.live.subscribe(user_id=1, sid=None)  # what an open page's stream hears
    cid, case_id = await linked_conversation(bot, double)
    double.set_case_status(case_id, "Closed", closed=True)
    await crm(bot).poll_once()
    heard = [await asyncio.wait_for(page.next(), 10) for _ in range(4)]
    assert [(c.conversation_id, c.kind) for c in heard if c is not None] == [
        (cid, "message"),  # the contact's message
        (cid, "crm"),  # the Case was created and linked
        (cid, "resolve"),  # the Case was closed …
        (cid, "crm"),  # … and its status recorded
    ]


async def test_inbox_resolve_is_not_undone_by_an_open_case(
    make_bot: MakeBot, setup: Callable[..., Settings], salesforce: tuple[SalesforceDouble, TestServer]
) -> None:
    double, _ = salesforce
    bot = await make_bot(setup())
    cid, _ = await linked_conversation(bot, double)
    await bot.api("POST", f"/api/conversations/{cid}/resolve", json={})
    await crm(bot).poll_once()
    assert (await bot.conversation(cid))["status"] == "resolved"


# --- plan -----------------------------------------------------------------------------------------------


async def test_crm_needs_advanced_inbox(make_bot: MakeBot, setup: Callable[..., Settings]) -> None:
    bot = await make_bot(setup(advanced_inbox=False))
    data = await bot.api(
        "POST",
        "/api/automations",
        json={"name": "Escalate", "keywords": "refund", "actions": [{"type": "crm", "target": "salesforce"}]},
        expect=403,
    )
    assert "advanced_inbox" in json.dumps(data)
    reply = await bot.command('/automation create Escalate keywords="refund" crm=salesforce')
    assert "advanced_inbox" in reply
    assert (await bot.api("GET", "/api/automations"))["items"] == []


# --- error mapping ---------------------------------------------------------------------------------


def _err(code: str) -> Any:
    return [{"errorCode": code, "message": "m"}]


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (requests.ReadTimeout("read timed out"), RetryLater),
        (requests.ConnectionError("refused"), RetryLater),
        (SalesforceGeneralError("u", 503, "Case", _err("SERVER_UNAVAILABLE")), RetryLater),
        (SalesforceMalformedRequest("u", 400, "Case", _err("UNABLE_TO_LOCK_ROW")), RetryLater),
        (SalesforceMalformedRequest("u", 400, "Case", _err("STRING_TOO_LONG")), PermanentFailure),
    ],
)
def test_error_mapping(exc: Exception, kind: type[Exception]) -> None:
    assert isinstance(translate_error(exc), kind)


@pytest.mark.parametrize("db_url", STORES, indirect=True)
async def test_two_workers_polling_send_an_agent_comment_once(
    make_bot: MakeBot,
    setup: Callable[..., Settings],
    salesforce: tuple[SalesforceDouble, TestServer],
    replies: tuple[ReplyInbox, str],
) -> None:
    double, _ = salesforce
    shop, _ = replies
    bot = await make_bot(setup())
    cid, case_id = await linked_conversation(bot, double)
    first = crm(bot)
    assert isinstance(first.crm, SalesforceCrm)
    other = SalesforceCrm(first.crm.sf, secret=bot.state.settings.secret, metrics=first.metrics)
    second = CrmSync(other, inbox=first.inbox, metrics=first.metrics)
    try:
        double.add_agent_comment(case_id, "Refund approved.")
        await asyncio.gather(first.poll_once(), second.poll_once())
        await settled(bot, cid)
        assert shop.texts() == ["Refund approved."]
    finally:
        await second.stop()


async def test_a_comment_for_a_channel_no_longer_configured_does_not_block_the_others(
    make_bot: MakeBot,
    setup: Callable[..., Settings],
    salesforce: tuple[SalesforceDouble, TestServer],
    replies: tuple[ReplyInbox, str],
    db_url: str,
) -> None:
    double, _ = salesforce
    shop, _ = replies
    only_shop = setup()
    support = make_settings(db_url).channel("support")
    assert support is not None
    with_support = only_shop.model_copy(update={"channels": [*only_shop.channels, support]})
    bot = await make_bot(with_support)
    await crm_automation(bot)
    gone = (await bot.webhook("refund please", channel="support"))["conversation_id"]
    kept = (await bot.webhook("refund for order 7"))["conversation_id"]
    await settled(bot, gone)
    await settled(bot, kept)
    cases = {c["id"]: (await bot.conversation(c["id"]))["crm"]["case_id"] for c in ({"id": gone}, {"id": kept})}

    # Restarted without the "support" channel; an agent answers on both Cases, the gone one first.
    await bot.client.close()
    bot = await make_bot(only_shop)
    double.add_agent_comment(cases[gone], "Answer nobody can receive")
    double.add_agent_comment(cases[kept], "Your refund is on its way.")
    await crm(bot).poll_once()
    await settled(bot, kept)
    assert shop.texts() == ["Your refund is on its way."]
    assert await repo.kv_get(COMMENTS_CURSOR) is not None  # the poll finished: the cursor moved on

    double.add_agent_comment(cases[kept], "Anything else?")
    await crm(bot).poll_once()
    await settled(bot, kept)
    assert shop.texts() == ["Your refund is on its way.", "Anything else?"]
    assert [m["direction"] for m in (await bot.conversation(gone))["messages"]] == ["inbound"]


@pytest.mark.parametrize("db_url", STORES, indirect=True)
async def test_inbox_reply_stores_the_crm_comment_id_with_the_message(
    make_bot: MakeBot, setup: Callable[..., Settings], replies: tuple[ReplyInbox, str]
) -> None:
    shop, _ = replies
    bot = await make_bot(setup())
    cid = (await bot.webhook("Bonjour"))["conversation_id"]
    inbox = bot.state.inbox
    mid = await inbox.reply(cid, text="From the agent", author="salesforce", crm_comment_id="00aHs0000000042IAQ")
    stored = await repo.get_message(mid)
    assert stored is not None and stored.crm_comment_id == "00aHs0000000042IAQ"
    # The same comment again (another worker, a poll after a restart): refused, nothing kept or sent.
    with pytest.raises(repo.IntegrityError):
        await inbox.reply(cid, text="From the agent", author="salesforce", crm_comment_id="00aHs0000000042IAQ")
    await settled(bot, cid)
    conv = await bot.conversation(cid)
    assert [m["text"] for m in conv["messages"] if m["direction"] == "outbound"] == ["From the agent"]
    assert shop.texts() == ["From the agent"]


async def test_an_expired_session_is_dropped_and_the_next_call_logs_in_again(
    make_bot: MakeBot,
    setup: Callable[..., Settings],
    salesforce: tuple[SalesforceDouble, TestServer],
    replies: tuple[ReplyInbox, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    double, _ = salesforce
    shop, _ = replies
    bot = await make_bot(setup())
    cid, case_id = await linked_conversation(bot, double)

    double.session_id = "00DHs0000000001!AQ4AQRenewedSession"  # Salesforce expires ours: 401 INVALID_SESSION_ID
    with caplog.at_level(logging.ERROR, logger="inbox.salesforce"), pytest.raises(RetryLater):
        await crm(bot).poll_once()
    assert "refused the session id in TEST_SF_SESSION" in caplog.text and "restart" in caplog.text

    # What logging in again gives (a username/password login gets a new session from Salesforce);
    # here: the fresh session id is what the next login reads.
    bot.state.settings.env["TEST_SF_SESSION"] = double.session_id
    double.add_agent_comment(case_id, "Back online.")
    await crm(bot).poll_once()
    await settled(bot, cid)
    assert shop.texts() == ["Back online."]


# --- pure pieces: Salesforce records, and the Case and comment wording ------------------------------


def test_salesforce_records_become_crm_records() -> None:
    from datetime import UTC, datetime

    from connectors.salesforce.normalize import (
        case_from_record,
        comment_from_record,
        parse_sf_datetime,
        soql_datetime,
        soql_quote,
    )
    from tests.conftest import load_payload

    case = case_from_record(load_payload("salesforce/case.json"))
    assert (case.id, case.number, case.status, case.closed) == ("500Hs00001XyZabIAF", "00001026", "New", False)
    assert case.modified_at == datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
    comment = comment_from_record(load_payload("salesforce/case_comment.json"))
    assert (comment.id, comment.case_id, comment.body) == ("00aHs00000Q1w2eIAB", "500Hs00001XyZabIAF", "")
    assert comment_from_record({"Id": "00a1", "CommentBody": "x"}, case_id="500X").case_id == "500X"
    assert parse_sf_datetime("2026-11-24T10:00:00Z") == datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
    assert soql_datetime(datetime(2026, 11, 24, 10, 0, 0, 999, tzinfo=UTC)) == "2026-11-24T10:00:00Z"
    assert soql_quote("it's\n%") == "'it\\'s\\n%'"
    with pytest.raises(ValueError, match="not a Salesforce datetime"):
        parse_sf_datetime("yesterday")


def test_case_draft_and_comments_are_clipped_to_the_crm_limits() -> None:
    from datetime import UTC, datetime

    from bot.domain import Contact, Conversation, ConversationType, Direction, Message, Status
    from bot.services.crm import COMMENT_MARKER_RE, case_draft, comment_body

    at = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
    conv = Conversation(
        id=42, channel="shop", thread_key="t", type=ConversationType.DIRECT, status=Status.OPEN, contact_id=1,
        previous_id=None, resolution_reason=None, resolved_by=None, resolved_at=None, keyword_progress=(),
        reply_to={}, crm_target="salesforce", crm_case_id=None, crm_case_number=None, crm_status=None,
        crm_transcript_upto=None, crm_pending_message_id=None, crm_closed=None, created_at=at, updated_at=at,
    )  # fmt: skip
    contact = Contact(id=1, channel="shop", platform_id="c-42", name="Marie", created_at=at)

    def message(mid: int, text: str, direction: Direction, author: str | None) -> Message:
        return Message(
            id=mid, conversation_id=42, channel="shop", platform_id=None, external_id=None, direction=direction,
            text=text, author=author, sent_at=None, crm_comment_id=None, created_at=at,
        )  # fmt: skip

    first = message(1, "My   order\nnever came " + "x" * 400, Direction.INBOUND, "contact:c-42")
    reply = message(2, "We are on it", Direction.OUTBOUND, "agent:ada")
    crm = SalesforceCrm.__new__(SalesforceCrm)  # only its limits are read
    draft = case_draft(conv, contact, [first, reply], crm=crm)
    assert len(draft.subject) == 255
    assert draft.subject.startswith("My order never came xxx") and draft.subject.endswith("… [inbox #42]")
    assert draft.description.splitlines()[-1] == "[2026-11-24 10:00 UTC] Team (agent:ada): We are on it"
    assert (draft.origin, draft.supplied_name) == ("shop", "Marie")
    assert case_draft(conv, None, [], crm=crm).subject == "Conversation on shop [inbox #42]"

    body = comment_body(message(3, "y" * 5000, Direction.INBOUND, None), "Marie", limit=crm.comment_max)
    assert len(body) == 4000 and body.startswith("Marie (from the contact, 2026-11-24 10:00 UTC):\n")
    marker = COMMENT_MARKER_RE.search(body)
    assert marker is not None and marker.group(1) == "3"


# --- promises checked against a configured Salesforce -----------------------------------------------


@pytest.mark.parametrize("db_url", STORES, indirect=True)
async def test_crm_is_null_until_the_case_exists_then_names_it(
    make_bot: MakeBot, setup: Callable[..., Settings], salesforce: tuple[SalesforceDouble, TestServer]
) -> None:
    """Salesforce configured and the crm automation fired, but the Case create keeps failing: the
    conversation shows `crm: null` (not a guess) until Salesforce has the Case, then its id and number."""
    double, _ = salesforce
    double.fail("create_case", 503, times=10_000)  # Salesforce refuses every create for now
    bot = await make_bot(setup())
    await crm_automation(bot)
    cid = (await bot.webhook("I want a refund"))["conversation_id"]

    async def tried() -> bool:
        return double.calls("create_case") >= 2

    await eventually(tried, "Case creates tried and refused")
    assert double.cases == {}
    assert (await bot.conversation(cid))["crm"] is None
    assert (await bot.api("GET", "/api/conversations"))["items"][0]["crm"] is None

    double.faults.clear()  # Salesforce is back
    for job in (await bot.api("GET", f"/api/outbox?conversation_id={cid}&status=failed"))["items"]:
        await bot.api("POST", f"/api/outbox/{job['id']}/retry")  # in case its attempts ran out
    await settled(bot, cid)
    (case,) = double.cases.values()
    assert (await bot.conversation(cid))["crm"] == {"case_id": case["Id"], "case_number": case["CaseNumber"]}
    assert (await bot.api("GET", "/api/conversations"))["items"][0]["crm"]["case_id"] == case["Id"]


@pytest.mark.parametrize("db_url", STORES, indirect=True)
async def test_subject_description_and_comments_are_clipped_to_salesforce_limits(
    make_bot: MakeBot, setup: Callable[..., Settings], salesforce: tuple[SalesforceDouble, TestServer]
) -> None:
    """Subject 255, Description 32,000, CaseComment 4,000 characters: longer text is clipped, not
    refused (the double answers 400 STRING_TOO_LONG above each limit, as Salesforce does)."""
    double, _ = salesforce
    bot = await make_bot(setup())
    await crm_automation(bot)
    first = "A" * 300
    cid = (await bot.webhook(first))["conversation_id"]
    for i in range(9):  # a transcript of ~36,000 characters before the Case is made
        await bot.webhook(f"{i}" + "b" * 3999)
    await bot.webhook("refund please")
    await settled(bot, cid)
    (case,) = double.cases.values()
    assert len(case["Subject"]) <= 255 and case["Subject"].startswith("A" * 200)
    assert case["Subject"].endswith(case_marker(cid))  # the tag that finds the Case again is kept
    assert 31_000 < len(case["Description"]) <= 32_000
    await bot.webhook("C" * 5000)
    await settled(bot, cid)
    (comment,) = double.comments_of(case["Id"])
    assert 3_900 < len(comment["CommentBody"]) <= 4_000 and "C" * 3000 in comment["CommentBody"]
