"""The command line: migrate, check, send against a real `serve` process, clean SIGTERM,
and logs that never show a configured secret."""

from __future__ import annotations

import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from bot.cli import main as cli_main

ROOT = Path(__file__).resolve().parent.parent
API_TOKEN = "cli-api-token-5f2a9c"
SHOP_SECRET = "cli-shop-secret-81bd3e"
SLACK_SIGNING = "cli-slack-signing-77aa01"


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, keep_logging: None) -> dict[str, str]:
    """The secrets in the environment; the working directory is tmp_path (no .env.local)."""
    values = {"CLI_API_TOKENS": API_TOKEN, "CLI_SHOP_SECRET": SHOP_SECRET}
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    monkeypatch.chdir(tmp_path)
    return values


def write_config(tmp_path: Path, *, extra: str = "", reply_url: str | None = None) -> Path:
    cfg = tmp_path / "config.toml"
    reply = f'reply_url = "{reply_url}"\n' if reply_url else ""
    cfg.write_text(
        f'[database]\nurl = "sqlite://{tmp_path}/store/inbox.sqlite3"\n'
        '[organization]\nplan = "enterprise"\n'
        '[api]\ntokens_env = "CLI_API_TOKENS"\n'
        '[[channels]]\nname = "shop"\nkind = "webhook"\nsecret_env = "CLI_SHOP_SECRET"\n' + reply + extra,
        encoding="utf-8",
    )
    return cfg


# --- migrate, check ------------------------------------------------------------------------------------


def test_migrate_then_check_ok(tmp_path: Path, env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(tmp_path)
    assert cli_main(["--config", str(cfg), "check"]) == 1
    out = capsys.readouterr().out
    assert "store: FAIL" in out
    assert "run `inbox-bot migrate`" in out

    assert cli_main(["--config", str(cfg), "migrate"]) == 0
    assert capsys.readouterr().out == f"Store is up to date (sqlite://{tmp_path}/store/inbox.sqlite3).\n"
    assert (tmp_path / "store" / "inbox.sqlite3").exists()
    assert cli_main(["migrate", "--config", str(cfg)]) == 0  # idempotent; --config after the subcommand too
    capsys.readouterr()

    assert cli_main(["--config", str(cfg), "check"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"config: ok ({cfg})",
        'channel "shop" (webhook): ok',
        "store: ok",
        "outbox: ok",
        "check: ok",
    ]


def test_check_reports_missing_secrets(
    tmp_path: Path, env: dict[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = write_config(
        tmp_path,
        extra='[[channels]]\nname = "tg"\nkind = "telegram"\ntoken_env = "CLI_TG_TOKEN"\n',
    )
    monkeypatch.delenv("CLI_API_TOKENS")
    assert cli_main(["--config", str(cfg), "migrate"]) == 0
    capsys.readouterr()
    assert cli_main(["--config", str(cfg), "check"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert "api: WARN no tokens — set CLI_API_TOKENS to enable the JSON API" in out
    assert 'channel "shop" (webhook): ok' in out
    assert 'channel "tg" (telegram): FAIL set CLI_TG_TOKEN in the environment' in out
    assert out[-1] == "check: 1 problem(s)"


def test_check_with_bad_config(tmp_path: Path, env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text('[organization]\nplan = "platinum"\n', encoding="utf-8")
    assert cli_main(["--config", str(cfg), "check"]) == 1
    assert capsys.readouterr().out.splitlines() == [
        "config: FAIL",
        "  - organization.plan: Input should be 'business' or 'enterprise'",
    ]


def test_config_from_inbox_config_env(
    tmp_path: Path, env: dict[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = write_config(tmp_path)
    monkeypatch.setenv("INBOX_CONFIG", str(cfg))
    assert cli_main(["migrate"]) == 0
    assert "Store is up to date" in capsys.readouterr().out


def test_send_needs_a_webhook_channel_and_its_secret(
    tmp_path: Path, env: dict[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = write_config(tmp_path)
    assert cli_main(["--config", str(cfg), "send", "nope", "hi"]) == 2
    assert capsys.readouterr().err == f'inbox-bot: "nope" is not a webhook channel in {cfg}\n'
    monkeypatch.delenv("CLI_SHOP_SECRET")
    assert cli_main(["--config", str(cfg), "send", "shop", "hi"]) == 2
    assert "set CLI_SHOP_SECRET" in capsys.readouterr().err
    monkeypatch.setenv("CLI_SHOP_SECRET", SHOP_SECRET)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert cli_main(["--config", str(cfg), "send", "shop", "hi", "--url", f"http://127.0.0.1:{port}"]) == 1
    assert f"cannot reach http://127.0.0.1:{port}" in capsys.readouterr().err


# --- a real server -----------------------------------------------------------------------------------


class RefusingReplyServer(http.server.ThreadingHTTPServer):
    received: list[bytes]

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.received = []


class RefusingReplyHandler(http.server.BaseHTTPRequestHandler):
    server: RefusingReplyServer

    def do_POST(self) -> None:
        self.server.received.append(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        body = f"refused, your secret {SHOP_SECRET} is wrong".encode()
        self.send_response(400)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http(method: str, url: str, *, token: str | None = API_TOKEN, body: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, Any]:  # fmt: skip
    hdrs = dict(headers or {})
    if token:
        hdrs["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=body, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_serve_send_and_clean_sigterm(tmp_path: Path, env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    # The reply endpoint refuses replies and echoes the channel secret back in its error: the outbox
    # logs that answer, and the log must not show the secret.
    replies = RefusingReplyServer(("127.0.0.1", 0), RefusingReplyHandler)
    threading.Thread(target=replies.serve_forever, daemon=True).start()
    cfg = write_config(
        tmp_path,
        reply_url=f"http://127.0.0.1:{replies.server_address[1]}/replies",
        extra='[[channels]]\nname = "slack"\nkind = "slack"\nbot_token_env = "CLI_SLACK_BOT"\n'
        'signing_secret_env = "CLI_SLACK_SIGNING"\n',
    )
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    child_env = {
        **os.environ,
        **env,
        "CLI_SLACK_SIGNING": SLACK_SIGNING,  # the slack channel is left off (no bot token): its secret stays secret
        "INBOX_LOG_LEVEL": "DEBUG",
        "PYTHONUNBUFFERED": "1",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "--config", str(cfg), "serve", "--port", str(port)],
        cwd=tmp_path,
        env=child_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for _ in range(300):
            if proc.poll() is not None:
                break
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=1) as resp:
                    if resp.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError):
                pass
            time.sleep(0.05)
        assert proc.poll() is None, proc.communicate()
        # the channel whose secret is missing is off, the server still started
        assert http("GET", f"{base}/healthz", token=None) == (200, {"status": "ok", "store": "ok"})

        assert cli_main(["--config", str(cfg), "send", "shop", "Au revoir !", "--url", base,
                         "--contact", "c-9", "--name", "Zoé", "--id", "cli-1"]) == 0  # fmt: skip
        sent = json.loads(capsys.readouterr().out)
        assert sent["duplicate"] is False
        # sending the same id again is a redelivery
        assert cli_main(["--config", str(cfg), "send", "shop", "Au revoir !", "--url", base, "--id", "cli-1"]) == 0
        assert json.loads(capsys.readouterr().out) == {**sent, "duplicate": True}

        status, conv = http("GET", f"{base}/api/conversations/{sent['conversation_id']}")
        assert status == 200
        assert (conv["channel"], conv["type"], conv["contact"]) == ("shop", "direct", {"id": "c-9", "name": "Zoé"})
        assert [(m["direction"], m["text"]) for m in conv["messages"]] == [("inbound", "Au revoir !")]
        status, listing = http("GET", f"{base}/api/conversations")
        assert [c["id"] for c in listing["items"]] == [sent["conversation_id"]]

        # more traffic that gets logged: refused requests and a reply the outbox cannot deliver
        assert http("GET", f"{base}/api/conversations", token="wrong")[0] == 401
        assert http("POST", f"{base}/webhooks/shop", token=None, body=b"{}",
                    headers={"X-Inbox-Timestamp": "1", "X-Inbox-Signature": "v1=00"})[0] == 401  # fmt: skip
        assert http("POST", f"{base}/webhooks/slack", token=None, body=b"{}")[0] == 404
        status, _ = http(
            "POST",
            f"{base}/api/conversations/{sent['conversation_id']}/messages",
            body=json.dumps({"text": "Merci"}).encode(),
            headers={"Content-Type": "application/json"},
        )
        assert status == 201
        for _ in range(200):  # until the outbox has given up on the refused reply
            _, jobs = http("GET", f"{base}/api/outbox")
            if jobs["items"] and jobs["items"][0]["status"] == "failed":
                break
            time.sleep(0.05)
        assert jobs["items"][0]["status"] == "failed"
        assert len(replies.received) == 1
    finally:
        replies.shutdown()
        replies.server_close()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            out, err = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            raise AssertionError(f"serve did not stop on SIGTERM\n{err}") from None
    assert proc.returncode == 0, err
    assert f"inbox-bot serving on http://127.0.0.1:{port}" in out
    assert "shutting down" in out
    # logs were written (DEBUG) and hold no configured secret
    assert "level=" in err
    assert 'channel \\"slack\\" is off: set CLI_SLACK_BOT in the environment' in err
    assert "reply_url answered 400: refused, your secret *** is wrong" in err  # logged, redacted
    for secret in (API_TOKEN, SHOP_SECRET, SLACK_SIGNING):
        assert secret not in err, secret
        assert secret not in out, secret
