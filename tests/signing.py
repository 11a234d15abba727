"""The webhook signature as an integrator computes it from the README's format, written here
independently of the product's own `sign()` so that a mistake there cannot sign and check itself:
`X-Inbox-Signature: v1=` + hex HMAC-SHA256(secret, "{timestamp}.{raw body}")."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping

TIMESTAMP_HEADER = "X-Inbox-Timestamp"
SIGNATURE_HEADER = "X-Inbox-Signature"


def sign(secret: str, timestamp: str | int, body: bytes) -> str:
    """`v1=<hex HMAC-SHA256(secret, "{timestamp}.{raw body}")>`."""
    message = str(timestamp).encode("ascii") + b"." + body
    return "v1=" + hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def signed_headers(secret: str, body: bytes, *, now: float | None = None) -> dict[str, str]:
    """The headers of a signed POST of `body` (now, or at unix time `now`)."""
    ts = str(int(time.time() if now is None else now))
    return {TIMESTAMP_HEADER: ts, SIGNATURE_HEADER: sign(secret, ts, body), "Content-Type": "application/json"}


def signed_by(secret: str, headers: Mapping[str, str], body: bytes) -> bool:
    """Whether `headers` sign `body` with `secret` in the documented format (case of the hex aside)."""
    ts = headers.get(TIMESTAMP_HEADER, "")
    given = headers.get(SIGNATURE_HEADER, "")
    return bool(ts) and hmac.compare_digest(sign(secret, ts, body), given.strip().lower())
