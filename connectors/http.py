"""The HTTP pieces every inbound endpoint shares: the whole body or a 413, JSON objects or a clear
400, and JSON error bodies.

Used by every connector's routes and by the API, so that a body split across TCP segments, an
oversized or chunked body, deeply nested JSON, NUL characters or lone surrogates never reach the
store and never become a 500, and every refusal reads the same way: `{"error": "…"}`.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

CHUNK = 64 * 1024


async def read_body(request: web.Request, limit: int) -> bytes | None:
    """The whole raw body, or None as soon as it is known to be larger than `limit` bytes."""
    if request.content_length is not None and request.content_length > limit:
        return None
    parts: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.read(CHUNK)
        if not chunk:
            return b"".join(parts)
        size += len(chunk)
        if size > limit:
            return None
        parts.append(chunk)


class BadBody(ValueError):
    """The body is not a usable JSON object; the message says why."""


def bad_text(value: Any) -> str | None:
    """Why a decoded JSON value holds text the store cannot keep (NUL, lone surrogates), or None.
    Iterative, so a deeply nested value cannot exhaust the stack."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            if "\x00" in v:
                return "text must not contain NUL (\\u0000) characters"
            try:
                v.encode("utf-8")
            except UnicodeEncodeError:
                return "text must be valid Unicode (a lone surrogate \\ud800–\\udfff was sent)"
        elif isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return None


def parse_object(body: bytes, *, what: str = "a JSON object", check_text: bool = True) -> dict[str, Any]:
    """Decode `body` as one JSON object; raises BadBody with a message a sender can act on.
    `check_text=False` leaves NUL/surrogate checks to a caller that reports them per field."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadBody(f"body is not valid JSON: {exc}") from None
    except RecursionError:
        raise BadBody("body is not valid JSON: nested too deeply") from None
    if not isinstance(data, dict):
        raise BadBody(f"body must be {what}")
    problem = bad_text(data) if check_text else None
    if problem is not None:
        raise BadBody(problem)
    return data


def error(status: int, message: str, **extra: Any) -> web.Response:
    """A JSON error answer: `{"error": message, **extra}`."""
    return web.json_response({"error": message, **extra}, status=status)


def too_large(limit: int) -> web.Response:
    """The 413 for a body over `limit` bytes."""
    return error(413, f"body is larger than {limit // 1024} KiB")


__all__ = ["BadBody", "bad_text", "error", "parse_object", "read_body", "too_large"]
