"""Bad input ("bad input never gives a 500"): property-based fuzzing of the webhook and
the JSON API, in-process with hypothesis on SQLite and PostgreSQL, and with schemathesis against the
OpenAPI document served by a running `inbox-bot serve`. Every refusal must leave nothing written."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from bot.app import build_app
from bot.front.openapi import OPENAPI
from connectors.webhook.connector import signed_headers
from tests.conftest import SHOP_SECRET, STORES, TOKEN, make_settings
from tests.test_reliability import free_port, scalar

FUZZ = hsettings(
    max_examples=int(os.environ.get("INBOX_FUZZ_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
COUNTED = ("messages", "conversations", "contacts", "automation_runs", "message_tags", "automations", "labels")


class Live:
    """A running app in an event loop of our own, so sync hypothesis tests can drive it."""

    def __init__(self, db_url: str) -> None:
        self.db_url = db_url
        self.runner = asyncio.Runner()
        self.client: TestClient[Any, Any] = self.runner.run(self._start(db_url))

    async def _start(self, db_url: str) -> TestClient[Any, Any]:
        client: TestClient[Any, Any] = TestClient(TestServer(build_app(make_settings(db_url))))
        await client.start_server()
        return client

    def request(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        async def go() -> tuple[int, Any]:
            async with self.client.request(method, path, **kwargs) as resp:
                text = await resp.text()
                try:
                    return resp.status, json.loads(text)
                except json.JSONDecodeError:
                    return resp.status, text

        return self.runner.run(go())

    def counts(self) -> dict[str, int]:
        async def go() -> dict[str, int]:
            return {t: int(await scalar(self.db_url, f"SELECT count(*) FROM {t}")) for t in COUNTED}

        return self.runner.run(go())

    def close(self) -> None:
        self.runner.run(self.client.close())
        self.runner.close()


@pytest.fixture
def live(db_url: str) -> Iterator[Live]:
    app = Live(db_url)
    try:
        yield app
    finally:
        app.close()


def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}


# --- strategies ------------------------------------------------------------------------------------

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
texts = st.text(max_size=60) | st.sampled_from(["", " ", "bye", "\x00", "🙂", "a" * 300, "au revoir !"])
maybe = lambda s: st.one_of(s, json_values)  # noqa: E731 - a well-typed value, or anything at all

webhook_bodies = st.fixed_dictionaries(
    {},
    optional={
        "id": maybe(texts),
        "contact": maybe(st.fixed_dictionaries({}, optional={"id": maybe(texts), "name": maybe(texts)})),
        "text": maybe(texts),
        "type": maybe(st.sampled_from(["direct", "group", "public", "DM", ""])),
        "thread": maybe(texts),
        "sent_at": maybe(
            st.sampled_from(["2026-11-24T10:00:00Z", "2026-11-24", "yesterday", "9999-12-31T23:59:59-23:00", ""])
        ),
    },
)


# --- webhook ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("db_url", STORES, indirect=True)
@FUZZ
@given(body=webhook_bodies | json_values)
def test_webhook_any_json_body_is_stored_or_refused_cleanly(live: Live, body: Any) -> None:
    raw = json.dumps(body).encode()
    before = live.counts()
    status, data = live.request("POST", "/webhooks/shop", data=raw, headers=signed_headers(SHOP_SECRET, raw))
    assert status in (200, 400), (status, data)
    after = live.counts()
    if status == 400:
        assert after == before, "a refused message left rows behind"
        assert isinstance(data, dict) and data.get("error")
    else:
        assert after["messages"] - before["messages"] in (0, 1)  # 0: a redelivery of an earlier example
        status2, again = live.request("POST", "/webhooks/shop", data=raw, headers=signed_headers(SHOP_SECRET, raw))
        assert status2 == 200 and again["duplicate"] is True
        assert (again["conversation_id"], again["message_id"]) == (data["conversation_id"], data["message_id"])
        assert live.counts()["messages"] == after["messages"]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@FUZZ
@given(raw=st.binary(max_size=600), content_type=st.sampled_from(["application/json", "text/plain", ""]))
def test_webhook_any_bytes_signed_never_500(live: Live, raw: bytes, content_type: str) -> None:
    headers = signed_headers(SHOP_SECRET, raw)
    headers["Content-Type"] = content_type
    before = live.counts()
    status, _ = live.request("POST", "/webhooks/shop", data=raw, headers=headers)
    assert status in (200, 400)
    if status == 400:
        assert live.counts() == before


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@FUZZ
@given(
    ts=st.one_of(st.text(max_size=12), st.integers(-(10**12), 10**12).map(str)),
    sig=st.one_of(st.text(max_size=80), st.binary(min_size=32, max_size=32).map(lambda b: "v1=" + b.hex())),
    channel=st.sampled_from(["shop", "nope", "SHOP", "shop%2F..", "x" * 200]),
)
def test_webhook_bad_signatures_and_channels_never_write(live: Live, ts: str, sig: str, channel: str) -> None:
    raw = json.dumps({"id": "m-1", "contact": {"id": "c"}, "text": "hi"}).encode()
    before = live.counts()
    headers = {"X-Inbox-Timestamp": ts, "X-Inbox-Signature": sig, "Content-Type": "application/json"}
    try:
        status, _ = live.request("POST", f"/webhooks/{channel}", data=raw, headers=headers)
    except ValueError:  # a header value the HTTP client itself refuses to send (newline, NUL)
        return
    assert status in (401, 404)
    assert live.counts() == before


# --- JSON API ----------------------------------------------------------------------------------------

label_names = maybe(texts)
actions = (
    st.lists(
        st.fixed_dictionaries(
            {"type": maybe(st.sampled_from(["tag", "topic", "resolve", "crm", "nope"]))},
            optional={
                "tag": maybe(st.sampled_from(["closing", "vip", ""])),
                "topic": maybe(st.sampled_from(["Sales", "nope"])),
                "reason": maybe(st.sampled_from(["Contact left", "nope"])),
                "target": maybe(st.sampled_from(["salesforce", "zendesk"])),
            },
        ),
        max_size=3,
    )
    | json_values
)
automation_bodies = st.fixed_dictionaries(
    {},
    optional={
        "name": maybe(texts),
        "keywords": maybe(st.lists(texts, max_size=4) | texts),
        "match": maybe(st.sampled_from(["any", "all", "some"])),
        "actions": actions,
        "channels": maybe(st.lists(st.sampled_from(["shop", "support", "nope"]), max_size=3)),
        "types": maybe(st.lists(st.sampled_from(["direct", "group", "public", "dm"]), max_size=3)),
        "enabled": maybe(st.booleans()),
    },
)


def _seed_labels(live: Live) -> None:
    for kind, name in (("tags", "closing"), ("topics", "Sales"), ("reasons", "Contact left")):
        live.request("POST", f"/api/{kind}", json={"name": name}, headers=auth())


@pytest.mark.parametrize("db_url", STORES, indirect=True)
@FUZZ
@given(body=automation_bodies | json_values)
def test_create_automation_any_body_is_created_or_refused_cleanly(live: Live, body: Any) -> None:
    _seed_labels(live)
    before = live.counts()
    status, data = live.request("POST", "/api/automations", json=body, headers=auth())
    assert status in (201, 400, 403, 409), (status, data)
    if status == 201:
        got_status, got = live.request("GET", f"/api/automations/{data['id']}", headers=auth())
        assert got_status == 200 and got["name"] == data["name"] and got["keywords"] == data["keywords"]
        live.request("DELETE", f"/api/automations/{data['id']}", headers=auth())
    else:
        assert live.counts() == before, "a refused automation left rows behind"
        assert isinstance(data, dict) and data.get("error")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@FUZZ
@given(
    method=st.sampled_from(["GET", "POST", "PATCH", "DELETE"]),
    path=st.sampled_from(
        [
            "/api/conversations",
            "/api/conversations/{x}",
            "/api/conversations/{x}/resolve",
            "/api/conversations/{x}/reopen",
            "/api/conversations/{x}/messages",
            "/api/automations/{x}",
            "/api/automations/{x}/enable",
            "/api/automations/{x}/runs",
            "/api/automations/test",
            "/api/automations/preview",
            "/api/automations/{x}/preview",
            "/api/automations/lint",
            "/api/conversations/{x}/why",
            "/api/tags",
            "/api/tags/{x}",
            "/api/reasons",
            "/api/outbox",
            "/api/outbox/{x}/retry",
        ]
    ),
    x=st.sampled_from(["1", "0", "-1", "abc", "99999999999999999999", "1.5", "%00", "closing"]),
    query=st.dictionaries(
        st.sampled_from(["limit", "cursor", "status", "channel", "topic", "tag", "conversation_id"]),
        texts,
        max_size=3,
    ),
    body=st.none() | json_values,
)
def test_api_any_request_never_500(
    live: Live, method: str, path: str, x: str, query: dict[str, str], body: Any
) -> None:
    _seed_labels(live)
    live.request("POST", "/webhooks/shop", data=b"{}", headers=signed_headers(SHOP_SECRET, b"{}"))
    kwargs: dict[str, Any] = {"headers": auth(), "params": {k: v.replace("\x00", "") for k, v in query.items()}}
    if body is not None:
        kwargs["json"] = body
    status, data = live.request(method, path.replace("{x}", x), **kwargs)
    assert status < 500, (status, data)


# --- schemathesis against the served OpenAPI document ---------------------------------------------


@pytest.fixture(scope="module")
def served_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `inbox-bot serve` process on SQLite; yields its base URL."""
    tmp = tmp_path_factory.mktemp("schemathesis")
    port = free_port()
    (tmp / "config.toml").write_text(
        f'[server]\nhost = "127.0.0.1"\nport = {port}\n[database]\nurl = "sqlite://{tmp}/inbox.sqlite3"\n'
        '[api]\ntokens_env = "FUZZ_TOKENS"\n'
        '[[channels]]\nname = "shop"\nkind = "webhook"\nsecret_env = "FUZZ_SECRET"\n'
    )
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("INBOX_")},
        "FUZZ_TOKENS": TOKEN,
        "FUZZ_SECRET": SHOP_SECRET,
    }
    log = (tmp / "server.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "--config", str(tmp / "config.toml"), "serve"],
        cwd=tmp,
        env=env,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(400):  # bounded: up to ~40 s
            if proc.poll() is not None:
                raise AssertionError((tmp / "server.log").read_text())
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=1):
                    break
            except OSError:
                time.sleep(0.1)
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
        server_log = (tmp / "server.log").read_text(errors="replace")
        assert "unexpected error" not in server_log, server_log[-5000:]


# The document in the code; test_served_document_is_the_one_in_the_code checks that it is exactly
# what GET /api/openapi.json serves (schemathesis' lazy from_fixture loader fails on pytest 9).
schema = schemathesis.openapi.from_dict(json.loads(json.dumps(OPENAPI)))


@schema.parametrize()
@hsettings(
    max_examples=int(os.environ.get("INBOX_SCHEMATHESIS_EXAMPLES", "25")),
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_conforms_to_its_openapi_document(case: Any, served_api: str) -> None:
    # Every default check but two. "Schema-valid data is accepted": a schema cannot say that a tag
    # must exist, that a name is taken or that a cursor must come from a previous page (400/409 by
    # design). "Schema-violating data is refused": an empty filter (`status=`, `limit=`) means "not
    # given", on purpose; unknown fields and parameters are refused (tests/test_api.py) and invalid
    # bodies are fuzzed above (400, nothing written).
    case.call_and_validate(
        base_url=served_api,
        headers={"Authorization": f"Bearer {TOKEN}"},
        excluded_checks=[positive_data_acceptance, negative_data_rejection],
    )


def test_served_document_is_the_one_in_the_code(served_api: str) -> None:
    with urllib.request.urlopen(f"{served_api}/api/openapi.json", timeout=5) as resp:
        assert json.loads(resp.read()) == json.loads(json.dumps(OPENAPI))
