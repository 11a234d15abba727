"""What the web pages are given by the composition root: the services and the settings."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from bot.config import Settings
from bot.services.admin import Admin
from bot.services.inbox import Inbox
from bot.services.insight import Insight
from bot.services.people import People


@dataclass(frozen=True, slots=True)
class WebContext:
    """The services every page works through (the one write path), and the settings."""

    settings: Settings
    people: People
    inbox: Inbox
    admin: Admin
    insight: Insight  # why, preview and lint: reads only


WEB_KEY = web.AppKey("web", WebContext)
