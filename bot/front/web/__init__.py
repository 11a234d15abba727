"""The web inbox: server-rendered pages for agents and admins on the same aiohttp server.

`setup_web` is all the composition root calls: templates (Jinja2, autoescaped), the encrypted
session cookie, the security headers, the static files and the pages' routes.
"""

from __future__ import annotations

import logging
import os
import secrets
import warnings
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp_jinja2
import aiohttp_session
import jinja2
from aiohttp import web
from aiohttp_session.cookie_storage import EncryptedCookieStorage

from bot.config import Settings
from bot.errors import Conflict, Forbidden, InboxError, Invalid, NotFound
from bot.front.web import admin_tools, inbox_pages, session_pages, settings_pages
from bot.front.web.auth import IDLE_SECONDS, AdminOnly, CsrfRefused, signed_in_user
from bot.front.web.context import WEB_KEY, WebContext
from bot.front.web.render import render, wording_for
from bot.services.admin import Admin
from bot.services.inbox import Inbox
from bot.services.insight import Insight
from bot.services.people import People

__all__ = ["SESSION_COOKIE", "WEB_KEY", "WebContext", "setup_web"]

log = logging.getLogger("inbox.web")

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
SESSION_COOKIE = "inbox_session"
# Paths whose errors are answered with a page rather than JSON.
PAGE_PREFIXES = ("/inbox", "/settings", "/login", "/logout")
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def is_page(path: str) -> bool:
    return path == "/" or any(path == p or path.startswith(p + "/") for p in PAGE_PREFIXES)


def session_key(settings: Settings) -> bytes:
    """The configured session key; without one, a key for this process only (sessions end when
    the server restarts) — said once in the log."""
    key = settings.session_key()
    if key is not None:
        return key
    log.warning(
        "sessions end when the server restarts; set %s (see README, Configuration)", settings.server.session_key_env
    )
    return secrets.token_bytes(32)


@web.middleware
async def page_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refusals on pages answered as pages, in the reader's language; never Python internals."""
    try:
        return await handler(request)
    except CsrfRefused:
        _ = wording_for(request)
        return await _problem(request, 403, _("This form has expired. Go back, reload the page and try again."))
    except AdminOnly:
        _ = wording_for(request)
        return await _problem(request, 403, _("Only admins can open the settings. Ask an admin for access."))
    except web.HTTPNotFound:
        if not is_page(request.path):
            raise
        _ = wording_for(request)
        return await _problem(request, 404, _("There is no such page."))
    except InboxError as exc:
        if not is_page(request.path):
            raise
        status = 404 if isinstance(exc, NotFound) else 409 if isinstance(exc, Conflict) else 400
        status = 403 if isinstance(exc, Forbidden) else status
        if isinstance(exc, Invalid | Conflict | NotFound | Forbidden):
            return await _problem(request, status, str(exc))
        raise
    except web.HTTPException:
        raise
    except Exception:
        if not is_page(request.path):
            raise
        log.exception("unexpected error on %s %s", request.method, request.path)
        _ = wording_for(request)
        return await _problem(request, 500, _("Something went wrong on our side. The bot's log has the details."))


async def _problem(request: web.Request, status: int, text: str) -> web.Response:
    await signed_in_user(request)  # the page's header shows who is signed in
    return await render(request, "problem.html", {"status": status, "text": text}, status=status)


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)


def setup_web(
    app: web.Application, *, settings: Settings, people: People, inbox: Inbox, admin: Admin, insight: Insight
) -> None:
    """Add the web inbox to `app`: its pages, templates, session cookie and security headers."""
    # aiohttp-session keeps its session under plain string request keys: not ours to change
    warnings.filterwarnings("ignore", category=web.NotAppKeyWarning, module="aiohttp_session")
    app[WEB_KEY] = WebContext(settings=settings, people=people, inbox=inbox, admin=admin, insight=insight)
    aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(os.fspath(TEMPLATES)),
        autoescape=True,  # every value is escaped: contacts' text is untrusted
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    storage = EncryptedCookieStorage(
        session_key(settings),
        cookie_name=SESSION_COOKIE,
        max_age=IDLE_SECONDS,
        httponly=True,
        samesite="Lax",
        secure=settings.server.https,
    )
    aiohttp_session.setup(app, storage)
    app.middlewares.append(page_errors)  # inside the session middleware: its pages can use the session
    app.on_response_prepare.append(_security_headers)
    app.router.add_static("/static/", STATIC, append_version=False)
    app.add_routes(session_pages.routes())
    app.add_routes(inbox_pages.routes())
    app.add_routes(settings_pages.routes())
    app.add_routes(admin_tools.routes())
