"""Who is signed in to the web inbox, and what a page asks of the request before it runs.

A browser session is an encrypted cookie (aiohttp-session, `EncryptedCookieStorage`) holding:
`user_id`; `epoch`, the user's session epoch when they signed in (deactivating a user or changing
their password moves the epoch on, which ends every session at once); `sid`, a random name for this
browser session (live updates close its streams at sign-out); `csrf`, the token every form POST
carries; `seen`, when the session was last used (sessions end after 12 hours idle).
"""

from __future__ import annotations

import functools
import hmac
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import quote, urlsplit

from aiohttp import web
from aiohttp_session import Session, get_session, new_session

from bot.domain import Role, User
from bot.errors import NotFound
from bot.front.web.context import WEB_KEY
from bot.front.web.live import LIVE_HUB

log = logging.getLogger("inbox.web")

IDLE_SECONDS = 12 * 3600
# `seen` is rewritten (a new cookie) at most this often: each page does not need a fresh cookie.
TOUCH_EVERY = 60
DEFAULT_PAGE = "/inbox"
CSRF_FIELD = "csrf"
USER_KEY = web.RequestKey("web_user", User)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def signed_in_user(request: web.Request) -> User | None:
    """The active user this request's session belongs to, or None (not signed in, idle for more
    than 12 hours, deactivated, or signed out everywhere by a password change). A session that no
    longer holds is emptied, so its cookie is cleared with the response."""
    cached: User | None = request.get(USER_KEY)
    if cached is not None:
        return cached
    session = await get_session(request)
    user_id, epoch = session.get("user_id"), session.get("epoch")
    if not isinstance(user_id, int) or not isinstance(epoch, int):
        return None
    now = int(time.time())
    seen = session.get("seen")
    if not isinstance(seen, int) or now - seen > IDLE_SECONDS:
        session.invalidate()
        return None
    try:
        user = await request.app[WEB_KEY].people.get_user(user_id)
    except NotFound:
        user = None
    if user is None or not user.active or user.session_epoch != epoch:
        session.invalidate()
        return None
    if now - seen >= TOUCH_EVERY:
        session["seen"] = now  # also renews the cookie's 12-hour lifetime
    request[USER_KEY] = user
    return user


def current_user(request: web.Request) -> User:
    """The signed-in user of a page wrapped by `require_user` or `require_admin`."""
    return request[USER_KEY]


async def start_session(request: web.Request, user: User) -> Session:
    """A fresh session for `user` who just signed in (a new cookie: never the one a visitor held
    before, so a planted session id gains nothing)."""
    session = await new_session(request)
    session["user_id"] = user.id
    session["epoch"] = user.session_epoch
    session["sid"] = secrets.token_urlsafe(16)
    session["csrf"] = secrets.token_urlsafe(32)
    session["seen"] = int(time.time())
    request[USER_KEY] = user
    return session


async def end_session(request: web.Request) -> None:
    """Sign out: empty the session (the cookie is cleared) and close its live streams."""
    session = await get_session(request)
    sid = session.get("sid")
    session.invalidate()
    if isinstance(sid, str):
        await _end_live_streams(request.app, sid)


async def _end_live_streams(app: web.Application, sid: str) -> None:
    hub = app.get(LIVE_HUB)
    if hub is None:  # an app without live updates
        return
    try:
        hub.end_session(sid)
    except Exception:  # sign-out must succeed even when the live streams cannot be told
        log.exception("could not end the live streams of a signed-out session")


async def csrf_token(request: web.Request) -> str:
    """This session's CSRF token, created on first use (the sign-in form has one before anyone
    signs in)."""
    session = await get_session(request)
    token = session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


async def check_csrf(request: web.Request) -> Mapping[str, Any]:
    """The posted form, when it carries this session's CSRF token; else 403 (nothing changes)."""
    form = await request.post()
    session = await get_session(request)
    expected = session.get("csrf")
    given = form.get(CSRF_FIELD)
    if not (
        isinstance(expected, str)
        and isinstance(given, str)
        and hmac.compare_digest(given.encode("utf-8", "surrogateescape"), expected.encode())
    ):
        raise CsrfRefused()
    return form


class CsrfRefused(Exception):
    """A form POST without this session's CSRF token: answered 403, nothing changed."""


class AdminOnly(Exception):
    """An agent asked for an admin's page: answered 403 with a page that says so."""


def safe_next(value: str | None) -> str:
    """Where to go after signing in: `value` when it is a path on this server, else the inbox.

    Refuses absolute URLs, scheme-relative ones (`//evil.example`), backslashes (`/\\evil`, which
    browsers read as `//`) and control characters."""
    if not value or not value.startswith("/") or value.startswith("//"):
        return DEFAULT_PAGE
    if "\\" in value or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        return DEFAULT_PAGE
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return DEFAULT_PAGE
    return value


def login_url(request: web.Request) -> str:
    """The sign-in page, coming back to this page afterwards."""
    target = request.path_qs
    return "/login" if target in ("/", DEFAULT_PAGE) else f"/login?next={quote(target, safe='/')}"


def require_user(handler: Handler) -> Handler:
    """A page for signed-in users: others are sent to sign in (and brought back after); a POST
    must carry the CSRF token."""

    @functools.wraps(handler)
    async def page(request: web.Request) -> web.StreamResponse:
        user = await signed_in_user(request)
        if user is None:
            if request.method in ("GET", "HEAD"):
                raise web.HTTPFound(login_url(request))
            raise web.HTTPSeeOther("/login")
        if request.method == "POST":
            await check_csrf(request)
        return await handler(request)

    return page


def require_admin(handler: Handler) -> Handler:
    """A page for admins: an agent gets 403 with a page that says so."""

    @functools.wraps(handler)
    async def page(request: web.Request) -> web.StreamResponse:
        if current_user(request).role is not Role.ADMIN:
            raise AdminOnly()
        return await handler(request)

    return require_user(page)
