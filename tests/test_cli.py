"""The command line: migrate, check, send against a real `serve` process, clean SIGTERM,
and logs that never show a configured secret."""

from __future__ import annotations

import base64
import http.server
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.cookiejar import CookieJar
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from bot.cli import main as cli_main
from bot.config import settings_from_dict

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
            except (urllib.error.URLError, ConnectionError, TimeoutError):  # not up yet, or slow under load
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


# --- serve: the address it listens on -------------------------------------------------------------


@pytest.mark.parametrize("extra", [[], ["--workers", "2"]], ids=["one-process", "workers"])
def test_a_taken_port_is_one_line_and_exit_1(tmp_path: Path, env: dict[str, str], extra: list[str]) -> None:
    cfg = write_config(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "bot", "--config", str(cfg), "serve", "--demo", "--port", str(port), *extra],
            cwd=tmp_path,
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == [
        f"inbox-bot: port {port} is already in use on 127.0.0.1 — choose another with --port {port + 1}"
        f" (make run PORT={port + 1}) or [server] port in the config"
    ]
    # it stopped before writing anything: no store, no generated secrets
    assert not (tmp_path / "store").exists()
    assert not (tmp_path / ".env.local").exists()


def test_an_address_that_is_not_this_machines_is_one_line(
    tmp_path: Path, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path)
    # 192.0.2.0/24 is reserved for documentation: never an address of this machine
    assert cli_main(["--config", str(cfg), "serve", "--host", "192.0.2.1", "--port", "8080"]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith("inbox-bot: cannot listen on 192.0.2.1:8080: ")
    assert captured.err.endswith("— choose another address with --host and --port (make run HOST=… PORT=…)\n")
    assert len(captured.err.splitlines()) == 1
    assert not (tmp_path / "store").exists()


def test_the_banner_commands_use_the_port_actually_served(tmp_path: Path, env: dict[str, str]) -> None:
    cfg = write_config(tmp_path, extra='[[channels]]\nname = "demo"\nkind = "webhook"\nsecret_env = "CLI_DEMO"\n')
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "--config", str(cfg), "serve", "--demo", "--port", "0"],
        cwd=tmp_path,
        env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # ends at EOF if the server stops early
            lines.append(line.rstrip("\n"))
            if line.startswith("inbox-bot serving on "):
                break
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=15)
    served = lines[-1].split("http://127.0.0.1:", 1)[1].split(" ", 1)[0]
    assert served.isdigit() and served != "0", (lines, err)
    assert f'  .venv/bin/inbox-bot send demo "Au revoir !" --url http://127.0.0.1:{served}' in lines
    assert f"Web inbox: http://127.0.0.1:{served}/ (sign in with a user's email and password)" in lines
    assert any(line.endswith(f" http://127.0.0.1:{served}/api/conversations") for line in lines), lines


@pytest.mark.parametrize(
    ("host", "base"),
    [("0.0.0.0", "http://127.0.0.1:8099"), ("::", "http://[::1]:8099"), ("127.0.0.2", "http://127.0.0.2:8099")],
)
def test_the_banner_aims_at_an_address_to_connect_to(host: str, base: str, capsys: pytest.CaptureFixture[str]) -> None:
    from bot.cli import _print_banner

    settings = settings_from_dict(
        {"channels": [{"name": "demo", "kind": "webhook", "secret_env": "X"}]}, env={}, path=None
    )
    _print_banner(settings, host, 8099)
    out = capsys.readouterr().out
    assert f"--url {base}\n" in out
    assert f" {base}/api/conversations\n" in out


# --- check only reads; paths in the config are relative to the config file -----------------------


def test_check_from_another_folder_creates_nothing_and_finds_the_store_beside_the_config(
    tmp_path: Path, env: dict[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    conf, elsewhere = tmp_path / "conf", tmp_path / "elsewhere"
    conf.mkdir()
    elsewhere.mkdir()
    cfg = conf / "config.toml"
    cfg.write_text(
        '[database]\nurl = "sqlite://data/inbox.sqlite3"\n[api]\ntokens_env = "CLI_API_TOKENS"\n'
        '[[channels]]\nname = "shop"\nkind = "webhook"\nsecret_env = "CLI_SHOP_SECRET"\n',
        encoding="utf-8",
    )
    monkeypatch.chdir(elsewhere)

    def files() -> list[str]:
        return sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))

    assert cli_main(["--config", "../conf/config.toml", "check"]) == 1
    assert "run `inbox-bot migrate`" in capsys.readouterr().out
    assert files() == ["conf", "conf/config.toml", "elsewhere"]  # no folder, no database, anywhere

    assert cli_main(["--config", "../conf/config.toml", "migrate"]) == 0
    assert capsys.readouterr().out == f"Store is up to date (sqlite://{conf}/data/inbox.sqlite3).\n"
    assert (conf / "data" / "inbox.sqlite3").exists()
    assert list(elsewhere.iterdir()) == []
    before = files()
    assert cli_main(["--config", "../conf/config.toml", "check"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "check: ok"
    assert files() == before


# --- send, --version, help ----------------------------------------------------------------------------


class CapturingServer(ThreadingHTTPServer):
    received: list[Any]

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.received = []


class CapturingHandler(BaseHTTPRequestHandler):
    server: CapturingServer

    def do_POST(self) -> None:
        self.server.received.append(json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0)))))
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_send_names_the_contact_by_its_id_unless_a_name_is_given(
    tmp_path: Path, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path)
    server = CapturingServer(("127.0.0.1", 0), CapturingHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        assert cli_main(["--config", str(cfg), "send", "shop", "hi", "--url", url, "--contact", "marie"]) == 0
        assert cli_main(["--config", str(cfg), "send", "shop", "hi", "--url", url,
                         "--contact", "marie", "--name", "Marie Curie"]) == 0  # fmt: skip
        assert cli_main(["--config", str(cfg), "send", "shop", "hi", "--url", url]) == 0
    finally:
        server.shutdown()
        server.server_close()
    capsys.readouterr()
    assert [m["contact"] for m in server.received] == [
        {"id": "marie", "name": "marie"},
        {"id": "marie", "name": "Marie Curie"},
        {"id": "demo-contact", "name": "demo-contact"},
    ]


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    import importlib.metadata

    with pytest.raises(SystemExit) as exit_:
        cli_main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out == f"inbox-bot {importlib.metadata.version('inbox-bot')}\n"


def test_every_option_of_every_command_has_a_help_text() -> None:
    import argparse

    from bot.cli import parser

    top = parser()
    commands = next(a for a in top._actions if isinstance(a, argparse._SubParsersAction))
    missing = []
    for name, p in [("inbox-bot", top), *commands.choices.items()]:
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction) or action.help == argparse.SUPPRESS:
                continue
            if not action.help:
                missing.append(f"{name} {'/'.join(action.option_strings) or action.dest}")
    assert missing == []
    assert {"serve", "migrate", "check", "send"} <= set(commands.choices)


# --- make and CI --------------------------------------------------------------------------------------

needs_make = pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")


def make_dry_run(*args: str, cwd: Path = ROOT) -> list[str]:
    proc = subprocess.run(["make", "-n", *args], cwd=cwd, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


@needs_make
def test_make_run_serves_on_port_and_host() -> None:
    assert [line for line in make_dry_run("run") if "inbox-bot serve" in line] == [".venv/bin/inbox-bot serve --demo"]
    serve = [line for line in make_dry_run("run", "PORT=8081", "HOST=0.0.0.0") if "inbox-bot serve" in line]
    assert serve == [".venv/bin/inbox-bot serve --demo --host 0.0.0.0 --port 8081"]
    serve = [line for line in make_dry_run("run", "PORT=8082") if "inbox-bot serve" in line]
    assert serve == [".venv/bin/inbox-bot serve --demo --port 8082"]


@needs_make
def test_make_clean_keeps_the_users_conversations(tmp_path: Path) -> None:
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "inbox.sqlite3").write_bytes(b"the user's conversations")
    for cache in (".venv", ".pytest_cache", ".mypy_cache"):
        (tmp_path / cache).mkdir()
        (tmp_path / cache / "x").write_text("x")
    proc = subprocess.run(["make", "clean"], cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "data" / "inbox.sqlite3").read_bytes() == b"the user's conversations"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Makefile", "data"]


@needs_make
def test_installs_use_the_constraints_and_follow_their_changes(tmp_path: Path) -> None:
    for name in ("Makefile", "pyproject.toml", "constraints.txt"):
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    (tmp_path / ".venv" / "bin" / "python").write_text("")
    old = time.time() - 3600
    for name in ("Makefile", "pyproject.toml", "constraints.txt"):
        os.utime(tmp_path / name, (old, old))
    (tmp_path / ".venv" / ".installed").touch()
    (tmp_path / ".venv" / ".installed-test").touch()
    assert "is up to date" in " ".join(make_dry_run(".venv/.installed-test", cwd=tmp_path))
    # a new lock file reinstalls, with the exact versions it pins
    os.utime(tmp_path / "constraints.txt")
    for target, extras in ((".venv/.installed-test", " -e '.[test]'"), (".venv/.installed", " -e .")):
        assert any(
            line.endswith("-m pip install --quiet -c constraints.txt" + extras)
            for line in make_dry_run(target, cwd=tmp_path)
        ), target


def test_constraints_pin_every_declared_dependency() -> None:
    import tomllib

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["test"]]
    pins: dict[str, str] = {}
    for line in (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            req = Requirement(line)
            (spec,) = req.specifier  # one exact version per line
            assert spec.operator == "==", line
            pins[canonicalize_name(req.name)] = spec.version
    for req in declared:
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is declared in pyproject.toml but not pinned in constraints.txt"
        assert req.specifier.contains(pins[name], prereleases=True), f"{req.name}=={pins[name]} does not satisfy {req}"


@pytest.fixture
def fake_ci(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """.ci/run in a copy of the tree, with `make` and `pg_isready` replaced by scripts that log."""
    (tmp_path / ".ci").mkdir()
    shutil.copy(ROOT / ".ci" / "run", tmp_path / ".ci" / "run")
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    (bin_ / "make").write_text(
        '#!/bin/sh\necho "$*" >> "$FAKE_LOG"\n'
        'case "$1" in lint) exit "${FAKE_LINT_RC:-0}";; test) exit "${FAKE_TEST_RC:-0}";; esac\n'
    )
    (bin_ / "pg_isready").write_text("#!/bin/sh\nexit 0\n")
    for script in (bin_ / "make", bin_ / "pg_isready"):
        script.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_}:{os.environ['PATH']}", "FAKE_LOG": str(tmp_path / "log")}
    return tmp_path, env


@pytest.mark.parametrize(
    ("lint_rc", "test_rc", "expected"), [("0", "0", 0), ("2", "0", 2), ("0", "2", 2), ("2", "1", 1)]
)
def test_ci_runs_lint_and_tests_and_fails_when_either_fails(
    fake_ci: tuple[Path, dict[str, str]], lint_rc: str, test_rc: str, expected: int
) -> None:
    root, env = fake_ci
    proc = subprocess.run(
        ["bash", str(root / ".ci" / "run")],
        env={**env, "FAKE_LINT_RC": lint_rc, "FAKE_TEST_RC": test_rc},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == expected, proc.stderr
    assert (root / "log").read_text().splitlines() == ["lint", "test"]  # both ran, whatever failed


# --- the test set-up: PostgreSQL ----------------------------------------------------------------------


def test_tests_use_postgresql_at_the_default_url_when_it_answers() -> None:
    from tests.conftest import PG_DEFAULT_URL, PG_ENV, postgres_for_tests

    asked: list[str] = []

    def answers(url: str) -> str | None:
        asked.append(url)
        return None

    assert postgres_for_tests({}, answers) == ("postgres://postgres@127.0.0.1:5432/test", "")
    assert asked == [PG_DEFAULT_URL]
    # a URL that is set is used as is, without asking
    assert postgres_for_tests({PG_ENV: "postgres://u@db:5433/t"}, answers) == ("postgres://u@db:5433/t", "")
    assert asked == [PG_DEFAULT_URL]
    url, why = postgres_for_tests({}, lambda url: "ConnectionRefusedError: [Errno 111] Connect call failed")
    assert url is None
    assert why == (
        "PostgreSQL tests need a server: none answered at postgres://postgres@127.0.0.1:5432/test"
        " (ConnectionRefusedError: [Errno 111] Connect call failed); start one there or set"
        " INBOX_TEST_POSTGRES_URL to another"
    )


# --- serve --demo ------------------------------------------------------------------------------------


async def test_demo_automation_is_created_through_the_admin_service(
    db_url: str, make_bot: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.cli import _seed_demo
    from tests.conftest import make_settings

    await _seed_demo(make_settings(db_url, organization={"plan": "business"}))
    settings = make_settings(db_url, organization={"resolution_reasons": False})
    await _seed_demo(settings)
    await _seed_demo(settings)  # a store that has automations is left alone
    assert capsys.readouterr().out.count('Created the demo automation "Au revoir"') == 1
    bot = await make_bot(settings)
    (a,) = (await bot.api("GET", "/api/automations"))["items"]
    assert (a["name"], a["keywords"], a["enabled"]) == ("Au revoir", ["au revoir", "bye", "goodbye"], True)
    assert a["actions"] == [{"type": "tag", "tag": "closing"}, {"type": "resolve", "reason": None}]
    assert (await bot.api("GET", "/api/tags"))["items"] == [{"name": "closing"}]
    assert (await bot.api("GET", "/api/reasons"))["items"] == []
    conv = await bot.conversation((await bot.webhook("ok bye"))["conversation_id"])
    assert (conv["status"], conv["tags"]) == ("resolved", ["closing"])


async def test_the_demo_admin_is_created_on_an_empty_store_its_password_kept_in_the_env_file(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.cli import DEMO_ADMIN_ENV, _ensure_demo_admin
    from bot.services.people import People
    from bot.store import db
    from tests.conftest import make_settings

    settings = make_settings(db_url)
    env_file = tmp_path / ".env.local"
    # a password left from a store that was deleted since is replaced, other lines kept
    env_file.write_text(f"CLI_DEMO=abc\n{DEMO_ADMIN_ENV}=from-an-old-store\n", encoding="utf-8")
    password = await _ensure_demo_admin(settings, env_file)
    assert password is not None and len(password) >= 10
    assert env_file.read_text(encoding="utf-8") == f"CLI_DEMO=abc\n{DEMO_ADMIN_ENV}={password}\n"
    assert env_file.stat().st_mode & 0o777 == 0o600
    assert capsys.readouterr().out == (
        f"Created the demo admin admin@example.com; its password is in {env_file} ({DEMO_ADMIN_ENV}).\n"
    )
    async with db.open_store(db_url):
        admin = await People().find_user("admin@example.com")
        assert admin.role.value == "admin"
        assert await People().password_matches("admin@example.com", password)
    # every later start reads it back from the file (the store keeps only its hash)
    assert await _ensure_demo_admin(settings, env_file) == password
    assert capsys.readouterr().out == ""
    # once changed, the file's password is not the admin's any more: not shown
    async with db.open_store(db_url):
        await People().set_password("admin@example.com", "changed by the admin", actor="cli")
    assert await _ensure_demo_admin(settings, env_file) is None
    assert env_file.read_text(encoding="utf-8").count(DEMO_ADMIN_ENV) == 1


async def test_no_demo_admin_on_a_store_that_has_users(db_url: str, tmp_path: Path) -> None:
    from bot.cli import _ensure_demo_admin
    from bot.services.people import People
    from bot.store import db
    from tests.conftest import make_settings

    async with db.open_store(db_url):
        await People().add_user(email="ana@example.com", role="agent", actor="cli")
    env_file = tmp_path / ".env.local"
    assert await _ensure_demo_admin(make_settings(db_url), env_file) is None
    assert not env_file.exists()
    async with db.open_store(db_url):
        assert [u.email for u in await People().list_users()] == ["ana@example.com"]


def start_demo(cfg: Path, tmp_path: Path, env: dict[str, str]) -> list[str]:
    """`serve --demo` on a free port: what it printed up to "serving on", then SIGTERM."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "--config", str(cfg), "serve", "--demo", "--port", "0"],
        cwd=tmp_path,
        env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # ends at EOF if the server stops early
            lines.append(line.rstrip("\n"))
            if line.startswith("inbox-bot serving on "):
                break
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=15)
    assert lines and lines[-1].startswith("inbox-bot serving on "), (lines, err)
    return lines


def test_make_run_prints_the_demo_admin_password_on_every_start(tmp_path: Path, env: dict[str, str]) -> None:
    cfg = write_config(tmp_path, extra='[[channels]]\nname = "demo"\nkind = "webhook"\nsecret_env = "CLI_DEMO"\n')
    first = start_demo(cfg, tmp_path, env)
    local = tmp_path / ".env.local"
    assert local.stat().st_mode & 0o777 == 0o600
    saved = dict(line.split("=", 1) for line in local.read_text(encoding="utf-8").splitlines())
    assert set(saved) == {"CLI_DEMO", "INBOX_DEMO_ADMIN_PASSWORD", "INBOX_SESSION_KEY"}
    assert len(base64.urlsafe_b64decode(saved["INBOX_SESSION_KEY"])) == 32  # the web inbox's cookie key
    password = saved["INBOX_DEMO_ADMIN_PASSWORD"]
    shown = f"Demo admin: admin@example.com, password {password} (kept in .env.local as INBOX_DEMO_ADMIN_PASSWORD)"
    assert shown in first
    assert any(line.startswith("Created the demo admin admin@example.com") for line in first)
    second = start_demo(cfg, tmp_path, env)
    assert shown in second
    assert not any(line.startswith("Created the demo admin") for line in second)
    assert local.read_text(encoding="utf-8").count("INBOX_DEMO_ADMIN_PASSWORD=") == 1
    # the same session key on the next start: people stay signed in across restarts
    assert f"INBOX_SESSION_KEY={saved['INBOX_SESSION_KEY']}" in local.read_text(encoding="utf-8").splitlines()


# --- serve --workers: one session key for every worker ------------------------------------------------------


def test_workers_share_one_session_key_so_a_session_works_on_any_worker(
    tmp_path: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """No session key in the environment: the supervisor makes one for all its workers. Each new
    connection may reach either worker; the signed-in cookie must work on every one."""
    cfg = write_config(tmp_path)
    assert cli_main(["--config", str(cfg), "migrate"]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("correct horse battery\n"))
    add = ["--config", str(cfg), "users", "add", "ana@example.com", "--role", "agent", "--password-stdin"]
    assert cli_main(add) == 0
    monkeypatch.delenv("INBOX_SESSION_KEY", raising=False)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "--config", str(cfg), "serve", "--port", str(port), "--workers", "2"],
        cwd=tmp_path,
        env={k: v for k, v in {**os.environ, **env}.items() if k != "INBOX_SESSION_KEY"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for _ in range(300):
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=5):
                    break
            except OSError:  # not listening yet, or still starting
                time.sleep(0.1)
        jar = CookieJar()
        browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        login = browser.open(f"{base}/login", timeout=30).read().decode()
        csrf = re.search(r'name="csrf" value="([^"]+)"', login)
        assert csrf is not None
        form = urllib.parse.urlencode(
            {"csrf": csrf.group(1), "email": "ana@example.com", "password": "correct horse battery"}
        )
        landed = browser.open(f"{base}/login", data=form.encode(), timeout=30)
        assert urllib.parse.urlsplit(landed.url).path == "/inbox"
        for _ in range(20):  # a new connection each time: the kernel spreads them over the workers
            page = browser.open(f"{base}/inbox", timeout=30)
            assert urllib.parse.urlsplit(page.url).path == "/inbox"
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert out.count("sessions end when the server restarts; set INBOX_SESSION_KEY") == 1, (out, err)
    assert "sessions end when the server restarts" not in err  # the workers were given the key
