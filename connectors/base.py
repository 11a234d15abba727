"""The connector interface: what each platform integration provides to the core."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from aiohttp import web

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.front.commands import CommandRunner
    from bot.metrics import Metrics
    from bot.services.inbox import Inbox


@dataclass(frozen=True, slots=True)
class OutboundTarget:
    """Where a reply goes: everything a connector needs, no ORM objects."""

    conversation_id: int
    message_id: int
    thread_key: str
    contact_id: str
    contact_name: str | None
    reply_to: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ConnectorContext:
    """What the core lends to connectors."""

    settings: Settings
    inbox: Inbox
    commands: CommandRunner
    metrics: Metrics


class Connector(abc.ABC):
    """One configured channel. `start` may do network calls (Telegram getMe); `add_routes` may not."""

    kind: ClassVar[str]

    def __init__(self, name: str, ctx: ConnectorContext) -> None:
        self.name = name
        self.ctx = ctx

    def add_routes(self, app: web.Application) -> None:  # noqa: B027 - optional hook
        """Register HTTP routes on the one aiohttp app (called before the app starts)."""

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Connect (webhook registration, polling, Socket Mode)."""

    async def stop(self) -> None:  # noqa: B027 - optional hook
        """Disconnect; finish in-flight work."""

    def delivers_replies(self) -> bool:
        """False when replies are only stored (read back over the API), never sent out."""
        return True

    @abc.abstractmethod
    async def send(self, target: OutboundTarget, text: str) -> str | None:
        """Send a reply; return the platform's id for it. Raise bot.outbox.RetryLater or
        bot.outbox.PermanentFailure on errors."""
