"""The agents' pages: the queue (`/inbox`) and one conversation (`/inbox/{id}`)."""

from __future__ import annotations

from aiohttp import web

from bot.front.web.auth import require_user
from bot.front.web.render import render


@require_user
async def queue_page(request: web.Request) -> web.StreamResponse:
    return await render(request, "inbox.html", {})


def routes() -> list[web.RouteDef]:
    return [web.get("/inbox", queue_page)]
