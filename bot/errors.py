"""TEMPORARY (people branch) until the front branch's error tree lands."""

from __future__ import annotations

from datetime import datetime


class InboxError(Exception):
    def __init__(self, message: str, **details: object) -> None:
        super().__init__(message)
        self.message = message
        self.kind = details.get("kind")
        self.name = details.get("name")


class Invalid(InboxError):
    def __init__(self, field: str, message: str, *, value: str | None = None, kind: str | None = None) -> None:
        super().__init__(message, kind=kind)
        self.field = field
        self.value = value


class NotFound(InboxError):
    pass


class Conflict(InboxError):
    pass


class SignInLocked(InboxError):
    def __init__(self, until: datetime) -> None:
        super().__init__(f"sign-in is locked until {until:%H:%M} UTC")
        self.until = until
