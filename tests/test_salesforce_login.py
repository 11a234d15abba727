"""Salesforce with username/password (+ security token): the real simple-salesforce client logs in
through the SOAP API's `login` call at login.salesforce.com, then works against the org's My Domain
that the login answered; when Salesforce ends the session (401 INVALID_SESSION_ID) the bot logs in
again by itself and the work goes through.

No test leaves the machine: requests reaches `login.salesforce.com:443` and the My Domain through
an HTTPS proxy (`HTTPS_PROXY`, a small CONNECT proxy below) that tunnels every connection to the
local Salesforce double, served with a test CA's certificate for those names (`ca_file`)."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiohttp.test_utils import TestServer

from bot.config import Settings
from tests.conftest import STORES, Bot, eventually, make_settings
from tests.doubles.salesforce_api import SalesforceDouble
from tests.test_salesforce import crm_automation, settled

MakeBot = Callable[[Settings], Awaitable[Bot]]
LOGIN_HOST = "login.salesforce.com"
MY_DOMAIN = "inbox-test.my.salesforce.com"
USERNAME = "integration@example.com"
PASSWORD = "correct horse battery"
SECURITY_TOKEN = "SecTok3nXYZ"
pytestmark = pytest.mark.parametrize("db_url", STORES, indirect=True)


class ConnectProxy:
    """An HTTPS proxy: answers `CONNECT host:port` and tunnels the bytes to the double's port,
    whatever host was asked (the stand-in for DNS and the Internet). Notes each CONNECT target."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.targets: list[str] = []
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._tunnel, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _tunnel(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        method, target, _ = head.split(b"\r\n", 1)[0].decode().split(" ", 2)
        if method != "CONNECT":
            writer.write(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            writer.close()
            return
        self.targets.append(target)
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            with contextlib.suppress(Exception):
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


@pytest.fixture
async def salesforce_org(
    aiohttp_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[SalesforceDouble, ConnectProxy, str]]:
    """The double behind login.salesforce.com and the org's My Domain; yields it, the proxy, ca_file."""
    ca = trustme.CA()
    ca_file = tmp_path / "test-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    double = SalesforceDouble(session_id="00DHs0000000001!NoSessionYet", my_domain=MY_DOMAIN)
    double.allow_login(USERNAME, PASSWORD + SECURITY_TOKEN, my_domain=MY_DOMAIN)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(LOGIN_HOST, MY_DOMAIN).configure_cert(ctx)
    server: TestServer = await aiohttp_server(double.app(), ssl=ctx)
    proxy = ConnectProxy(server.port)
    port = await proxy.start()
    for name in ("NO_PROXY", "no_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{port}")
    monkeypatch.delenv("https_proxy", raising=False)
    yield double, proxy, str(ca_file)
    await proxy.close()


def login_settings(db_url: str, ca_file: str, *, password: str = PASSWORD) -> Settings:
    sf = {
        "instance_url": f"https://{MY_DOMAIN}",
        "username_env": "TEST_SF_USER",
        "password_env": "TEST_SF_PASSWORD",
        "security_token_env": "TEST_SF_TOKEN",
        "ca_file": ca_file,
        "poll_seconds": 3600,
        "timeout": 5,
    }
    return make_settings(
        db_url,
        organization={"advanced_inbox": True},
        outbox={"max_attempts": 12, "base_delay": 0.02, "max_delay": 0.1, "poll_interval": 0.02},
        crm={"salesforce": sf},
        env={"TEST_SF_USER": USERNAME, "TEST_SF_PASSWORD": password, "TEST_SF_TOKEN": SECURITY_TOKEN},
    )


async def test_username_password_login_then_renewal_after_invalid_session_id(
    make_bot: MakeBot, db_url: str, salesforce_org: tuple[SalesforceDouble, ConnectProxy, str]
) -> None:
    double, proxy, ca_file = salesforce_org
    bot = await make_bot(login_settings(db_url, ca_file))
    await crm_automation(bot)
    cid = (await bot.webhook("I want a refund"))["conversation_id"]
    await settled(bot, cid)
    (case,) = double.cases.values()
    assert (await bot.conversation(cid))["crm"]["case_id"] == case["Id"]
    assert [d for op, d in double.requests if op == "login"] == [USERNAME]
    assert f"{LOGIN_HOST}:443" in proxy.targets and f"{MY_DOMAIN}:443" in proxy.targets
    first_session = double.session_id

    double.expire_session()  # Salesforce ends the session: the next call gets 401 INVALID_SESSION_ID
    await bot.webhook("Any news?")
    await settled(bot, cid)  # no job failed: the bot logged in again and sent the comment
    assert [d for op, d in double.requests if op == "login"] == [USERNAME, USERNAME]
    assert double.session_id != first_session
    assert any("Any news?" in c["CommentBody"] for c in double.comments_of(case["Id"]))


async def test_a_refused_login_fails_the_work_naming_the_cause_not_the_password(
    make_bot: MakeBot, db_url: str, salesforce_org: tuple[SalesforceDouble, ConnectProxy, str]
) -> None:
    double, _, ca_file = salesforce_org
    bot = await make_bot(login_settings(db_url, ca_file, password="not the password"))
    await crm_automation(bot)
    cid = (await bot.webhook("I want a refund"))["conversation_id"]

    async def tried() -> list[dict[str, Any]]:
        jobs = (await bot.api("GET", f"/api/outbox?conversation_id={cid}"))["items"]
        return [j for j in jobs if j["attempts"] >= 1 and j["last_error"]]

    (job,) = await eventually(tried, "a refused login recorded on the job")
    assert "Invalid username, password, security token" in job["last_error"]  # Salesforce's own words
    # what to do next, and not the session-id advice of an expired session
    assert "Salesforce refused the login" in job["last_error"] and "password_env" in job["last_error"]
    assert "session id" not in job["last_error"]
    assert "not the password" not in job["last_error"] and SECURITY_TOKEN not in job["last_error"]
    assert double.cases == {}
