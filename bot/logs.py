"""Structured, quiet-by-default logging that never prints a configured secret."""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterable

from bot.config import Settings


class RedactSecrets(logging.Filter):
    """Replaces every configured secret value in a record's final message with ***."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        # every secret, however short: a short one garbles some log text, a skipped one would leak
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        msg = record.getMessage()
        redacted = msg
        for s in self._secrets:
            redacted = redacted.replace(s, "***")
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            for s in self._secrets:
                record.exc_text = record.exc_text.replace(s, "***")
        if redacted != msg:
            record.msg, record.args = redacted, None
        return True


class KeyValueFormatter(logging.Formatter):
    """`ts=… level=… logger=… msg="…"` — one line per record, greppable."""

    def format(self, record: logging.LogRecord) -> str:
        base = (
            f"ts={self.formatTime(record, '%Y-%m-%dT%H:%M:%S')} level={record.levelname.lower()} "
            f"logger={record.name} msg={json.dumps(record.getMessage(), ensure_ascii=False)}"
        )
        if record.exc_info or record.exc_text:
            text = record.exc_text or self.formatException(record.exc_info)  # type: ignore[arg-type]
            base += f" exc={json.dumps(text, ensure_ascii=False)}"
        return base


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info or record.exc_text:
            data["exc"] = record.exc_text or self.formatException(record.exc_info)  # type: ignore[arg-type]
        return json.dumps(data, ensure_ascii=False)


def setup_logging(settings: Settings) -> None:
    level = os.environ.get("INBOX_LOG_LEVEL", settings.log_level).upper()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if os.environ.get("INBOX_LOG_FORMAT") == "json" else KeyValueFormatter())
    handler.addFilter(RedactSecrets(settings.secret_values()))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # libraries stay quiet unless asked
    for noisy in ("tortoise", "aiosqlite", "asyncpg", "slack_bolt", "slack_sdk", "telegram", "httpx", "urllib3"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
