"""The connector interfaces: what each platform integration provides to the core.

`Connector`: one configured channel (inbound messages and replies). `Crm`: the system the `crm`
action sends conversations to (Cases and their comments). Both only talk to their platform; what to
store and when is decided by the services (`bot.services.inbox`, `bot.services.crm`).
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Self

from aiohttp import web

from connectors.http import error

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.front.chat_forms import ChatForms
    from bot.front.commands import CommandRunner
    from bot.metrics import Metrics
    from bot.services.inbox import Inbox

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
CHANNEL_SLOT = "{channel}"


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
    forms: ChatForms  # the list buttons and the automation form, for platforms that have them


class Connector(abc.ABC):
    """One configured channel. `start` may do network calls (Telegram getMe); `routes` may not.

    Every connector adds its HTTP endpoints the same way: `routes()` returns aiohttp route
    definitions, which `mount_routes` adds to the one app. A path holding `{channel}` is shared by
    every channel of a kind (`shared_path`): it reaches the connector whose name it carries, and
    answers a JSON 404 for a name that is unknown or off.
    """

    kind: ClassVar[str]
    #: The path every channel of this kind shares, if any (served even when none of them is on).
    shared_path: ClassVar[str | None] = None

    def __init__(self, name: str, ctx: ConnectorContext) -> None:
        self.name = name
        self.ctx = ctx

    @classmethod
    @abc.abstractmethod
    def from_settings(cls, ch: Any, ctx: ConnectorContext) -> Self:
        """Build the connector of one `[[channels]]` entry of its kind. Raises ValueError (the
        message says what to fix) when it cannot be built; no network call."""

    def routes(self) -> list[web.RouteDef]:
        """The HTTP endpoints this channel serves (none: it only polls or uses a socket)."""
        return []

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


def unknown_channel(name: str, kind: str) -> str:
    """What a shared path answers for a channel name nobody configured."""
    return f'unknown channel "{name}" — configure it under [[channels]] with kind = "{kind}"'


def mount_routes(
    app: web.Application,
    connectors: Iterable[Connector],
    *,
    kinds: Iterable[type[Connector]],
    off: Callable[[str], str | None],
) -> None:
    """Add every connector's routes to `app`. Each kind's `shared_path` gets one aiohttp route that
    dispatches on the channel name; `off(name)` says why a configured channel is not running."""
    shared: dict[tuple[str, str], dict[str, Handler]] = {}
    shared_kind: dict[str, str] = {}
    for cls in kinds:
        if cls.shared_path is not None:
            shared[("POST", cls.shared_path)] = {}
            shared_kind[cls.shared_path] = cls.kind
    for connector in connectors:
        for route in connector.routes():
            if CHANNEL_SLOT in route.path:
                shared.setdefault((route.method, route.path), {})[connector.name] = route.handler
                shared_kind.setdefault(route.path, connector.kind)
            else:
                app.router.add_route(route.method, route.path, route.handler, **route.kwargs)
    for (method, path), handlers in shared.items():
        app.router.add_route(method, path, _dispatch(handlers, kind=shared_kind[path], off=off))


def _dispatch(handlers: Mapping[str, Handler], *, kind: str, off: Callable[[str], str | None]) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        name = request.match_info["channel"]
        handler = handlers.get(name)
        if handler is None:
            return error(404, off(name) or unknown_channel(name, kind))
        return await handler(request)

    return handle


# --- the CRM --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CaseDraft:
    """What a new Case says, already clipped to the CRM's limits."""

    subject: str
    description: str
    origin: str
    supplied_name: str


@dataclass(frozen=True, slots=True)
class CrmCase:
    """A Case as the CRM reports it."""

    id: str
    number: str | None
    status: str | None
    closed: bool
    modified_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class CrmComment:
    """A comment on a Case."""

    id: str
    case_id: str
    body: str
    created_at: datetime | None = None


class Crm(abc.ABC):
    """A CRM's IO: log in, create or upsert a Case, find it again, add comments, read back what
    changed. Raises bot.outbox.RetryLater (worth another try) or PermanentFailure."""

    #: The `target` of the `crm` action, also the author of what comes back from it.
    target: ClassVar[str]
    #: The CRM's name in log lines ("Salesforce").
    title: ClassVar[str]
    # The CRM's field limits, in characters.
    subject_max: ClassVar[int]
    description_max: ClassVar[int]
    comment_max: ClassVar[int]
    name_max: ClassVar[int]

    @property
    @abc.abstractmethod
    def poll_seconds(self) -> float:
        """How often to read back comments and Case changes."""

    @property
    def upserts(self) -> bool:
        """True when Cases are upserted by our conversation id (no look-up needed after a timeout)."""
        return False

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Log in (a failure is logged; the next call tries again)."""

    async def stop(self) -> None:  # noqa: B027 - optional hook
        """Close the session; remove what `start` left on disk."""

    @abc.abstractmethod
    async def create_case(self, draft: CaseDraft) -> CrmCase:
        """Create a Case and read it back."""

    async def upsert_case(self, key: str, draft: CaseDraft) -> CrmCase:
        """Create or update the Case whose external id is `key`, and read it back."""
        raise NotImplementedError(f"{self.target} does not upsert Cases")

    @abc.abstractmethod
    async def find_case(self, subject_marker: str) -> CrmCase | None:
        """The oldest Case whose Subject contains `subject_marker`, if any."""

    @abc.abstractmethod
    async def add_comment(self, case_id: str, body: str) -> str:
        """Add a private comment; returns its id."""

    @abc.abstractmethod
    async def comments(self, case_id: str) -> list[CrmComment]:
        """Every comment of one Case, oldest first."""

    @abc.abstractmethod
    async def published_comments(self, case_ids: Sequence[str], *, since: datetime | None) -> list[CrmComment]:
        """Public comments on these Cases created at or after `since`, oldest first."""

    @abc.abstractmethod
    async def changed_cases(self, case_ids: Sequence[str], *, since: datetime | None) -> list[CrmCase]:
        """These Cases, when modified at or after `since`, oldest change first."""
