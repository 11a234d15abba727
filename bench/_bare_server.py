"""Baseline: a bare aiohttp handler that parses the same JSON and answers 200."""

import json
import sys

from aiohttp import web


async def handle(request: web.Request) -> web.Response:
    data = json.loads(await request.read())
    return web.json_response({"ok": True, "id": data.get("id")})


if len(sys.argv) > 2 and sys.argv[2] == "uvloop":  # the same server on the loop `inbox-bot serve` uses
    import uvloop

    uvloop.install()

app = web.Application()
app.router.add_post("/webhooks/{channel}", handle)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
