"""Rendering pages: the template, in the reader's language, with what every page needs."""

from __future__ import annotations

from typing import Any

import aiohttp_jinja2
from aiohttp import web
from aiohttp_session import get_session

from bot import i18n
from bot.domain import User
from bot.front.web.auth import USER_KEY, csrf_token
from bot.front.web.context import WEB_KEY

FLASH_KEY = "flash"


def page_language(request: web.Request, user: User | None) -> str:
    """The user's language, else the browser's (`Accept-Language`), else the organization's."""
    return i18n.pick(
        user.language if user is not None else None,
        i18n.from_accept_language(request.headers.get("Accept-Language")),
        request.app[WEB_KEY].settings.organization.language,
    )


def wording_for(request: web.Request) -> i18n.Wording:
    """The catalogue in this request's language (for text a handler words itself)."""
    return i18n.wording(page_language(request, request.get(USER_KEY)))


async def flash(request: web.Request, text: str) -> None:
    """A short note shown once on the next page (after a POST → redirect → GET)."""
    session = await get_session(request)
    notes = session.get(FLASH_KEY)
    session[FLASH_KEY] = [*(notes if isinstance(notes, list) else []), text][-5:]


async def _take_flashes(request: web.Request) -> list[str]:
    session = await get_session(request)
    notes = session.pop(FLASH_KEY, None) if FLASH_KEY in session else None
    return [str(n) for n in notes] if isinstance(notes, list) else []


async def render(
    request: web.Request, template: str, context: dict[str, Any] | None = None, *, status: int = 200
) -> web.Response:
    """The page `template` with `context`, plus what every page has: `_` and `plural` in the page's
    language, `lang`, the signed-in `user` (or None), the `csrf` token for forms, the `flashes`."""
    user = request.get(USER_KEY)
    lang = page_language(request, user)
    base: dict[str, Any] = {
        "_": i18n.wording(lang),
        "plural": i18n.plural,
        "lang": lang,
        "user": user,
        "is_admin": user is not None and user.role.value == "admin",
        "csrf": await csrf_token(request),
        "flashes": await _take_flashes(request),
        "path": request.path,
    }
    response = aiohttp_jinja2.render_template(template, request, {**base, **(context or {})}, status=status)
    response.headers["Cache-Control"] = "no-store"  # pages show private conversations
    response.headers["Content-Language"] = lang
    return response
