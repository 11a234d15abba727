"""`inbox-bot users …`: add, list, set-password, deactivate, as an operator types them."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest

from bot.cli import main as cli_main
from bot.config import load_settings
from bot.services.people import People
from bot.store import db
from tests.test_cli import env, write_config

__all__ = ["env"]


def sign_in(cfg: Path, email: str, password: str) -> str:
    async def go() -> str:
        async with db.open_store(load_settings(str(cfg)).database.url):
            return (await People().sign_in(email, password)).email

    return asyncio.run(go())


def test_users_add_with_a_generated_password_list_and_deactivate(
    tmp_path: Path, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path)
    assert cli_main(["--config", str(cfg), "users", "add", "ana@example.com", "--role", "agent", "--name", "Ana"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "Added agent ana@example.com (id 1)."
    password = out[1].removeprefix("Password (shown once): ")
    assert len(password) >= 10 and password != out[1]
    assert sign_in(cfg, "ANA@example.com", password) == "ana@example.com"

    assert cli_main(["users", "list", "--config", str(cfg)]) == 0
    assert capsys.readouterr().out == "1\tana@example.com\tAna\tagent\tno team\tactive\n"

    assert cli_main(["--config", str(cfg), "users", "deactivate", "ana@example.com"]) == 0
    assert "Deactivated ana@example.com" in capsys.readouterr().out
    assert cli_main(["--config", str(cfg), "users", "list"]) == 0
    assert capsys.readouterr().out.endswith("\tdeactivated\n")


def test_users_password_from_stdin_and_refusals(
    tmp_path: Path, env: dict[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = write_config(tmp_path)
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert (
        cli_main(["--config", str(cfg), "users", "add", "ana@example.com", "--role", "admin", "--password-stdin"]) == 1
    )
    assert "at least 10 characters" in capsys.readouterr().err

    monkeypatch.setattr("sys.stdin", io.StringIO("correct horse battery\n"))
    assert (
        cli_main(["--config", str(cfg), "users", "add", "ana@example.com", "--role", "admin", "--password-stdin"]) == 0
    )
    out = capsys.readouterr().out
    assert "Password" not in out
    assert sign_in(cfg, "ana@example.com", "correct horse battery") == "ana@example.com"

    assert cli_main(["--config", str(cfg), "users", "add", "Ana@Example.com", "--role", "agent"]) == 1
    assert "exists already" in capsys.readouterr().err
    assert cli_main(["--config", str(cfg), "users", "add", "bob@example.com", "--role", "agent", "--team", "Nope"]) == 1
    assert 'unknown team "Nope" — create it with POST /api/teams' in capsys.readouterr().err

    monkeypatch.setattr("sys.stdin", io.StringIO("new password 42\n"))
    assert cli_main(["--config", str(cfg), "users", "set-password", "ana@example.com", "--password-stdin"]) == 0
    assert sign_in(cfg, "ana@example.com", "new password 42") == "ana@example.com"
    assert cli_main(["--config", str(cfg), "users", "set-password", "nobody@example.com"]) == 1
    assert 'no user "nobody@example.com"' in capsys.readouterr().err
