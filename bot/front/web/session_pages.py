"""Sign-in and sign-out pages, and `/` (the inbox)."""

from __future__ import annotations

from aiohttp import web

from bot.errors import Invalid, SignInLocked
from bot.front.web.auth import (
    DEFAULT_PAGE,
    check_csrf,
    end_session,
    require_admin,
    safe_next,
    signed_in_user,
    start_session,
)
from bot.front.web.context import WEB_KEY
from bot.front.web.render import render, wording_for

MAX_FIELD = 1024  # longer than any email or password the store accepts


async def home(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound(DEFAULT_PAGE)


async def login_form(request: web.Request) -> web.StreamResponse:
    """The sign-in form; someone already signed in goes on to where they were going."""
    target = safe_next(request.query.get("next"))
    if await signed_in_user(request) is not None:
        raise web.HTTPFound(target)
    return await render(request, "login.html", {"next": target, "email": "", "error": None})


async def login(request: web.Request) -> web.StreamResponse:
    """Check the password through the people service (which counts failures per email and locks
    that email's sign-in after five within 15 minutes)."""
    form = await check_csrf(request)
    email = str(form.get("email", ""))[:MAX_FIELD].strip()
    password = str(form.get("password", ""))[:MAX_FIELD]
    target = safe_next(str(form.get("next", "")) or None)
    _ = wording_for(request)
    if not email or not password:
        error = _("Enter your email and your password.")
        return await render(request, "login.html", {"next": target, "email": email, "error": error}, status=400)
    try:
        user = await request.app[WEB_KEY].people.sign_in(email, password)
    except SignInLocked as exc:
        until = f"{exc.until:%Y-%m-%d %H:%M} UTC"
        return await render(request, "locked.html", {"until": until}, status=429)
    except Invalid:
        error = _("The email or the password is wrong.")
        return await render(request, "login.html", {"next": target, "email": email, "error": error}, status=401)
    await start_session(request, user)
    raise web.HTTPSeeOther(target)


async def logout(request: web.Request) -> web.StreamResponse:
    """Sign out (a form POST with the CSRF token, so another site cannot sign people out)."""
    await check_csrf(request)
    await end_session(request)
    raise web.HTTPSeeOther("/login")


@require_admin
async def settings_home(request: web.Request) -> web.StreamResponse:
    """The settings start with the automations."""
    raise web.HTTPFound("/settings/automations")


def routes() -> list[web.RouteDef]:
    return [
        web.get("/", home),
        web.get("/login", login_form),
        web.post("/login", login),
        web.post("/logout", logout),
        web.get("/settings", settings_home),
    ]
