"""Logs: every configured secret is replaced by *** (however short), and INBOX_LOG_FORMAT=json
writes one JSON object per line."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from bot.logs import RedactSecrets, setup_logging
from tests.conftest import make_settings


def _record(msg: str, *args: Any, exc: BaseException | None = None) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc else None
    return logging.LogRecord("inbox.test", logging.WARNING, __file__, 1, msg, args, exc_info)


@pytest.mark.parametrize("secret", ["x", "Q7", "k3y", "long-enough-secret"])
def test_every_secret_is_redacted_whatever_its_length(secret: str) -> None:
    record = _record("calling with token=%s and again %s", secret, secret)
    assert RedactSecrets([secret]).filter(record)
    assert secret not in record.getMessage()
    assert record.getMessage().count("***") >= 2


def test_a_secret_in_a_traceback_is_redacted() -> None:
    try:
        raise RuntimeError("refused key=Zq9")
    except RuntimeError as exc:
        record = _record("failed", exc=exc)
    RedactSecrets(["Zq9"]).filter(record)
    assert record.exc_text is not None and "Zq9" not in record.exc_text and "***" in record.exc_text


def test_log_format_json_writes_one_object_per_line(
    keep_logging: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Any
) -> None:
    monkeypatch.setenv("INBOX_LOG_FORMAT", "json")
    monkeypatch.setenv("INBOX_LOG_LEVEL", "INFO")
    settings = make_settings(f"sqlite://{tmp_path}/x.sqlite3", env={"TEST_SHOP_SECRET": "s3"})
    setup_logging(settings)
    logging.getLogger("inbox.test").info('first "quoted" line with s3')
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("inbox.test").exception("second")
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    objects = [json.loads(line) for line in lines]  # every line is a whole JSON object
    assert [(o["level"], o["logger"], o["msg"]) for o in objects] == [
        ("info", "inbox.test", 'first "quoted" line with ***'),
        ("error", "inbox.test", "second"),
    ]
    assert "ValueError: boom" in objects[1]["exc"] and objects[0]["ts"]


def test_default_log_format_is_key_value(
    keep_logging: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Any
) -> None:
    monkeypatch.delenv("INBOX_LOG_FORMAT", raising=False)
    monkeypatch.setenv("INBOX_LOG_LEVEL", "INFO")
    setup_logging(make_settings(f"sqlite://{tmp_path}/x.sqlite3"))
    logging.getLogger("inbox.test").info("hello")
    (line,) = capsys.readouterr().err.splitlines()
    assert ' level=info logger=inbox.test msg="hello"' in line and line.startswith("ts=")
