"""`make run`'s demo, as a newcomer meets it: `inbox-bot serve --demo` in a fresh folder with the
shipped config.toml generates the secrets and the API token into `.env.local` (mode 0600), seeds the
"Au revoir" automation on the first start only, and prints a send command that works as printed from
a second terminal (whose environment holds no secret)."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def clean_env() -> dict[str, str]:
    """A terminal's environment: none of the bot's secrets or settings."""
    return {k: v for k, v in os.environ.items() if not k.startswith("INBOX_")} | {"PYTHONUNBUFFERED": "1"}


def start(folder: Path) -> tuple[subprocess.Popen[str], list[str]]:
    """`serve --demo` on a free port; returns the process and its banner (up to "serving on")."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "serve", "--demo", "--port", "0"],
        cwd=folder,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:  # ends at EOF if the server stops early (bounded by the process)
        lines.append(line.rstrip("\n"))
        if line.startswith("inbox-bot serving on "):
            break
    return proc, lines


def stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return err


def env_file(folder: Path) -> dict[str, str]:
    text = (folder / ".env.local").read_text(encoding="utf-8")
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def api(base: str, path: str, token: str) -> Any:
    req = urllib.request.Request(f"{base}{path}", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def test_make_run_demo_first_and_second_start(tmp_path: Path) -> None:
    shutil.copy(REPO / "config.toml", tmp_path / "config.toml")
    proc, banner = start(tmp_path)
    try:
        assert banner and banner[-1].startswith("inbox-bot serving on "), (banner, proc.poll())
        out = "\n".join(banner)
        assert out.count('Created the demo automation "Au revoir"') == 1
        secrets = env_file(tmp_path)
        assert (tmp_path / ".env.local").stat().st_mode & 0o777 == 0o600  # readable by the user only
        assert {"INBOX_API_TOKENS", "INBOX_DEMO_SECRET"} <= set(secrets) and all(secrets.values())
        assert not [v for k, v in secrets.items() if v in out and k != "INBOX_DEMO_ADMIN_PASSWORD"]  # not printed

        # the printed command, run as printed from a second terminal (the repo's .venv → this Python)
        (command,) = [line.strip() for line in banner if line.strip().startswith(".venv/bin/inbox-bot send")]
        argv = shlex.split(command)
        assert argv[:4] == [".venv/bin/inbox-bot", "send", "demo", "Au revoir !"]
        sent = subprocess.run(
            [sys.executable, "-m", "bot", *argv[1:]],
            cwd=tmp_path,
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert sent.returncode == 0, sent.stderr
        cid = json.loads(sent.stdout)["conversation_id"]
        base = banner[-1].split("serving on ", 1)[1].split(" ", 1)[0]
        token = secrets["INBOX_API_TOKENS"].split(",")[0]
        conv = api(base, f"/api/conversations/{cid}", token)
        assert conv["status"] == "resolved" and [m["text"] for m in conv["messages"]] == ["Au revoir !"]
        assert [a["name"] for a in api(base, "/api/automations", token)["items"]] == ["Au revoir"]
    finally:
        stop(proc)

    proc, banner = start(tmp_path)  # the second `make run`
    try:
        assert banner and banner[-1].startswith("inbox-bot serving on "), (banner, proc.poll())
        assert "Created the demo automation" not in "\n".join(banner)
        assert env_file(tmp_path) == secrets  # the same secrets and token: nothing regenerated
        base = banner[-1].split("serving on ", 1)[1].split(" ", 1)[0]
        assert [a["name"] for a in api(base, "/api/automations", token)["items"]] == ["Au revoir"]
    finally:
        stop(proc)
