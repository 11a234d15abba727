"""`GET /events`: the live-update stream of the web inbox (Server-Sent Events).

A signed-in page opens it with `EventSource("/events")` (static/live.js) and gets one
`conversation` event, data `{"id": 12, "kind": "resolve"}`, for each change the hub hears, and a
`resync` event when changes may have been lost (then it refetches what it shows). A comment every
15 seconds keeps proxies from closing an idle stream; on each, the stream checks its user is still
signed in. The stream ends on sign-out (`Hub.end_session` with the session's `sid`), when the
user is deactivated or their password changes (`Hub.end_user`), and when the server shuts down.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp_session import get_session
from aiohttp_sse import EventSourceResponse, sse_response

from bot.domain import User
from bot.services.live import RESYNC, Hub, Subscription

log = logging.getLogger("inbox.live")

LIVE_HUB = web.AppKey("live_hub", Hub)
PING_SECONDS = 15.0
SESSION_ID = "sid"  # the session's random id, as sign-in stores it

Authenticate = Callable[[web.Request], Awaitable[User | None]]


async def session_id(request: web.Request) -> str | None:
    """The `sid` of the request's session; None without one (or without session middleware)."""
    try:
        session = await get_session(request)
    except RuntimeError:  # no session storage on this app: no session to end the stream by
        return None
    sid = session.get(SESSION_ID)
    return sid if isinstance(sid, str) and sid else None


def routes(hub: Hub, authenticate: Authenticate, *, ping_seconds: float = PING_SECONDS) -> list[web.RouteDef]:
    """The `/events` route, fed by `hub`; `authenticate` gives the signed-in user, else None."""

    async def events(request: web.Request) -> web.StreamResponse:
        user = await authenticate(request)
        if user is None:
            return web.Response(status=401, text="Sign in to receive live updates.\n")
        sid = await session_id(request)
        if hub.closed:
            return web.Response(status=503, text="The server is shutting down.\n", headers={"Retry-After": "1"})
        sub = hub.subscribe(user_id=user.id, sid=sid)
        try:
            async with sse_response(request, ping_interval=ping_seconds) as stream:
                await _pump(stream, sub, request, user, authenticate, ping_seconds)
            return stream
        finally:
            hub.unsubscribe(sub)

    return [web.get("/events", events, name="events")]


async def _pump(
    stream: EventSourceResponse,
    sub: Subscription,
    request: web.Request,
    user: User,
    authenticate: Authenticate,
    ping_seconds: float,
) -> None:
    """Send the subscription's changes until it ends, the client leaves, or the user is no longer
    signed in (checked at each ping interval: it catches what no hub heard, e.g. a deactivation
    from the command line of another process)."""
    # the ping task ends when a write fails: the client has gone; then end the subscription too
    gone = asyncio.create_task(stream.wait(), name="live-stream-watch")
    gone.add_done_callback(lambda _t: sub.end())
    try:
        while True:
            try:
                change = await asyncio.wait_for(sub.next(), timeout=ping_seconds)
            except TimeoutError:
                if not await _still_signed_in(request, user, authenticate):
                    return
                continue
            if change is None:
                return
            if change.kind == RESYNC:
                await stream.send("{}", event=RESYNC)
            else:
                data = json.dumps({"id": change.conversation_id, "kind": change.kind})
                await stream.send(data, event="conversation")
    except (ConnectionResetError, TimeoutError):
        return  # the client went away, or stopped reading (aiohttp-sse aborted the connection)
    finally:
        gone.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await gone


async def _still_signed_in(request: web.Request, user: User, authenticate: Authenticate) -> bool:
    try:
        again = await authenticate(request)
    except Exception as exc:  # the store is away for a moment: keep the stream, check next time
        log.warning("live stream of user %s: could not check the sign-in (%s)", user.id, exc)
        return True
    return again is not None and again.id == user.id


__all__ = ["LIVE_HUB", "SESSION_ID", "Authenticate", "routes", "session_id"]
