"""Bad input ("bad input never gives a 500"): property-based fuzzing of the webhook and
the JSON API, in-process with hypothesis on SQLite and PostgreSQL, and with schemathesis against the
OpenAPI document served by a running `inbox-bot serve`. Every refusal must leave nothing written."""

from __future__ import annotations

import asyncio
import json
import os
import re
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
from bot.front.openapi import OPENAPI, OPERATIONS
from tests.conftest import SHOP_SECRET, STORES, TOKEN, make_settings
from tests.signing import signed_headers
from tests.test_reliability import free_port, scalar

# CI replays a fixed, derandomized set quickly (tests/conftest.py); `make fuzz` sets INBOX_FUZZ=explore:
# fresh random examples, more of them, and Hypothesis' health checks on. `function_scoped_fixture`
# stays off in both: one running app serving every example of a test is the design, not a mistake.
EXPLORE = os.environ.get("INBOX_FUZZ") == "explore"
FUZZ = hsettings(
    max_examples=int(os.environ.get("INBOX_FUZZ_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture]
    if EXPLORE
    else [HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    **({"derandomize": False} if EXPLORE else {}),
)
COUNTED = ("messages", "conversations", "contacts", "automation_runs", "message_tags", "automations", "labels")


class Live:
    """A running app in an event loop of our own, so sync hypothesis tests can drive it."""

    def __init__(self, db_url: str) -> None:
        self.db_url = db_url
        self.runner = asyncio.Runner()
        self.client: TestClient[Any, Any] = self.runner.run(self._start(db_url))
        self.seeded: dict[str, str] = {}

    async def _start(self, db_url: str) -> TestClient[Any, Any]:
        # "support" replies go to a port where nothing listens: its reply jobs end up failed
        channels = [
            {"name": "shop", "kind": "webhook", "secret_env": "TEST_SHOP_SECRET"},
            {
                "name": "support",
                "kind": "webhook",
                "secret_env": "TEST_SHOP_SECRET",
                "reply_url": f"http://127.0.0.1:{free_port()}/replies",
            },
        ]
        client: TestClient[Any, Any] = TestClient(TestServer(build_app(make_settings(db_url, channels=channels))))
        await client.start_server()
        return client

    def pause(self, seconds: float) -> None:
        """Let the app's background work (the outbox) run: its loop only turns inside `runner.run`."""
        self.runner.run(asyncio.sleep(seconds))

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


def _seed_conversation(live: Live, contact: str) -> int:
    raw = json.dumps({"id": f"seed-{contact}", "contact": {"id": contact, "name": "Seed"}, "text": "hello"}).encode()
    status, data = live.request("POST", "/webhooks/support", data=raw, headers=signed_headers(SHOP_SECRET, raw))
    assert status == 200, data
    return int(data["conversation_id"])


def _seed_records(live: Live, kind: str | None = None) -> dict[str, str]:
    """Real records for the fuzzed routes to act on: an open and a resolved conversation, an
    outbound reply and its failed job, an automation, a user, a team, labels. Returns their ids
    (or names) by role. Made on the first call; afterwards only what a route of `kind` (its
    first path segment) may have changed is put back, so that each example starts from them."""
    seeded = live.seeded
    first = not seeded
    if first or kind in ("tags", "topics", "reasons", "automations"):
        _seed_labels(live)
    if first or kind in ("teams", "users"):
        live.request("POST", "/api/teams", json={"name": "Billing"}, headers=auth())
    seeded.update(tag="closing", topic="Sales", reason="Contact left", team="Billing")
    if "user" not in seeded:
        status, user = live.request(
            "POST", "/api/users", json={"email": "seed@example.com", "role": "agent"}, headers=auth()
        )
        assert status == 201, user
        seeded["user"] = str(user["id"])
    if "conversation" not in seeded:
        cid, resolved = (_seed_conversation(live, contact) for contact in ("c-seed", "c-seed-2"))
        status, _ = live.request("POST", f"/api/conversations/{cid}/messages", json={"text": "hi"}, headers=auth())
        assert status == 201
        for _ in range(500):  # bounded: the reply's delivery fails (nothing listens) until attempts run out
            _, jobs = live.request("GET", f"/api/outbox?conversation_id={cid}&status=failed", headers=auth())
            if jobs["items"]:
                break
            live.pause(0.02)
        else:
            raise AssertionError("the seeded reply job never failed")
        seeded.update(conversation=str(cid), resolved=str(resolved), job=str(jobs["items"][0]["id"]))
    if kind == "conversations":  # one open and one resolved, whatever the previous example did
        for role, action in (("conversation", "reopen"), ("resolved", "resolve")):
            live.request("POST", f"/api/conversations/{seeded[role]}/{action}", json={}, headers=auth())
    if "automation" not in seeded or (
        kind == "automations"
        and live.request("GET", f"/api/automations/{seeded['automation']}", headers=auth())[0] != 200
    ):
        body = {
            "name": f"seed-{len(seeded)}-{time.monotonic_ns()}",
            "keywords": ["bye"],
            "actions": [{"type": "tag", "tag": "closing"}],
        }
        status, data = live.request("POST", "/api/automations", json=body, headers=auth())
        assert status == 201, data
        seeded["automation"] = str(data["id"])
    return seeded


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


# Which seeded records a path parameter is tried with, by the route's first segment; every
# example also tries one drawn value (another kind's id, junk, a name that does not exist).
SEEDED_FOR = {
    "conversations": ("conversation", "resolved"),
    "automations": ("automation",),
    "outbox": ("job",),
    "users": ("user",),
    "teams": ("team",),
    "tags": ("tag",),
    "topics": ("topic",),
    "reasons": ("reason",),
}
ROUTES = [(op.method.upper(), op.path) for op in OPERATIONS if op.path.startswith("/api/") and "openapi" not in op.path]
# each example tries every route (one store per test, not one per route), so fewer examples
ROUTE_FUZZ = hsettings(FUZZ, max_examples=max(8, FUZZ.max_examples // 6))


@pytest.mark.parametrize("db_url", STORES, indirect=True)
@ROUTE_FUZZ
@given(
    other=st.sampled_from(
        ["conversation", "automation", "job", "user", "0", "-1", "abc", "99999999999999999999", "1.5", "%00", "closing"]
    ),
    query=st.dictionaries(
        st.sampled_from(
            ["limit", "cursor", "status", "channel", "topic", "tag", "conversation_id", "sort", "assignee", "q"]
        ),
        texts,
        max_size=3,
    ),
    body=st.none() | st.just({}) | json_values,
)
def test_api_any_request_never_500(live: Live, other: str, query: dict[str, str], body: Any) -> None:
    """Every API operation, on the seeded records (open and resolved conversation, automation,
    failed job, user, team, labels) and on another value, with any query and body: never a 500."""
    kwargs: dict[str, Any] = {"headers": auth(), "params": {k: v.replace("\x00", "") for k, v in query.items()}}
    if body is not None:
        kwargs["json"] = body
    for method, path in ROUTES:
        kind = path.split("/")[2]
        seeded = _seed_records(live, kind)
        if "{" not in path:
            targets = [path]
        else:
            values = [seeded[k] for k in SEEDED_FOR[kind]] + [seeded.get(other, other)]
            targets = [re.sub(r"\{\w+\}", value, path) for value in values]
        for target in targets:
            status, answer = live.request(method, target, **kwargs)
            assert status < 500, (method, target, status, answer)


@pytest.mark.parametrize("db_url", STORES, indirect=True)
def test_the_fuzzed_routes_reach_the_seeded_records(live: Live) -> None:
    """The never-500 fuzz above acts on real records: each seeded id answers with its record."""
    seeded = _seed_records(live, "conversations")
    cid, aid, jid = seeded["conversation"], seeded["automation"], seeded["job"]
    assert live.request("GET", f"/api/conversations/{cid}", headers=auth())[1]["status"] == "open"
    assert live.request("GET", f"/api/conversations/{seeded['resolved']}", headers=auth())[1]["status"] == "resolved"
    assert live.request("GET", f"/api/automations/{aid}", headers=auth())[0] == 200
    status, jobs = live.request("GET", f"/api/outbox?conversation_id={cid}", headers=auth())
    assert status == 200 and [(str(j["id"]), j["status"]) for j in jobs["items"]] == [(jid, "failed")]
    assert live.request("POST", f"/api/conversations/{cid}/resolve", json={}, headers=auth())[0] == 200
    assert live.request("POST", f"/api/conversations/{cid}/reopen", headers=auth())[0] == 200
    assert live.request("POST", f"/api/automations/{aid}/disable", headers=auth())[0] == 200
    assert live.request("PATCH", f"/api/automations/{aid}", json={"keywords": ["ciao"]}, headers=auth())[0] == 200
    assert live.request("POST", f"/api/outbox/{jid}/retry", headers=auth())[0] == 200


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
    suppress_health_check=[HealthCheck.function_scoped_fixture] if EXPLORE else list(HealthCheck),
    **({"derandomize": False} if EXPLORE else {}),
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
