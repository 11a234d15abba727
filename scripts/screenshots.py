"""Screenshots of the web inbox for the README: the queue, a conversation and the automation form.

`make screenshots` runs this: it starts the real server (`python -m bot serve`) on a store in a
temporary folder, seeds demo data through the JSON API and signed webhooks (the way a shop and its
admins would), signs in with the same Chromium the browser tests drive (Playwright), saves the
pages into `docs/screenshots/*.png` and stops the server. Nothing leaves this machine.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from playwright.async_api import async_playwright

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
ADMIN = ("admin@example.com", "demo-admin-password")
VIEWPORT = {"width": 1280, "height": 860}

CONFIG = """
[server]
host = "127.0.0.1"
port = {port}
[database]
url = "sqlite://{store}"
[organization]
plan = "enterprise"
advanced_inbox = false
resolution_reasons = true
[api]
tokens_env = "SHOTS_API_TOKENS"
[[channels]]
name = "shop"
kind = "webhook"
secret_env = "SHOTS_SHOP_SECRET"
[[channels]]
name = "support"
kind = "webhook"
secret_env = "SHOTS_SHOP_SECRET"
"""

# (contact id, name, channel, type, messages): what the demo shop's contacts wrote
CONTACTS = [
    ("c-1", "Marie Dupont", "shop", "direct", ["Hello, my refund for order 1042 has not arrived yet."]),
    ("c-2", "Kenji Sato", "support", "group", ["The checkout page shows an error since this morning", "Still broken"]),
    ("c-3", "Amara Okafor", "shop", "direct", ["Can I change the delivery address of my order?"]),
    ("c-4", "Lucas Martin", "support", "public", ["Is the blue jacket back in stock in size M?"]),
    ("c-5", "Sofia Rossi", "shop", "direct", ["Merci pour votre aide, au revoir !"]),
    ("c-6", "Noah Berg", "shop", "direct", ["I was charged twice for order 1077, please refund one"]),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def signed(secret: str, body: bytes) -> dict[str, str]:
    ts = str(int(time.time()))
    mac = hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Inbox-Timestamp": ts, "X-Inbox-Signature": f"v1={mac}", "Content-Type": "application/json"}


class Demo:
    """The running server's HTTP surface, as the demo shop and its admins use it."""

    def __init__(self, http: aiohttp.ClientSession, base: str, token: str, secret: str) -> None:
        self.http, self.base, self.token, self.secret = http, base, token, secret

    async def api(self, method: str, path: str, body: Any = None, *, user: int | None = None) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"}
        if user is not None:
            headers["X-Inbox-User"] = str(user)
        async with self.http.request(method, self.base + path, json=body, headers=headers) as resp:
            data = await resp.json()
            if resp.status >= 300:
                raise RuntimeError(f"{method} {path}: {resp.status} {data}")
            return data

    async def message(self, channel: str, contact: str, name: str, kind: str, text: str) -> int:
        payload = {"id": secrets.token_hex(6), "contact": {"id": contact, "name": name}, "text": text, "type": kind}
        body = json.dumps(payload).encode()
        async with self.http.post(f"{self.base}/webhooks/{channel}", data=body, headers=signed(self.secret, body)) as r:
            data = await r.json()
            if r.status != 200:
                raise RuntimeError(f"webhook: {r.status} {data}")
            return int(data["conversation_id"])


async def seed(demo: Demo) -> dict[str, int]:
    """Teams, labels, people, automations and conversations; returns the ids the shots need."""
    for team in ("Billing", "Logistics"):
        await demo.api("POST", "/api/teams", {"name": team})
    for tag in ("closing", "refund", "vip"):
        await demo.api("POST", "/api/tags", {"name": tag})
    for name, priority, team in (
        ("Refunds", "high", "Billing"),
        ("Outage", "urgent", None),
        ("Delivery", "normal", "Logistics"),
    ):
        await demo.api("POST", "/api/topics", {"name": name, "priority": priority, "team": team})
    for reason in ("Contact left", "Answered"):
        await demo.api("POST", "/api/reasons", {"name": reason})
    admin = await demo.api(
        "POST", "/api/users", {"email": ADMIN[0], "role": "admin", "name": "Alex Admin", "password": ADMIN[1]}
    )
    ana = await demo.api(
        "POST", "/api/users", {"email": "ana@example.com", "role": "agent", "name": "Ana Lima", "teams": ["Billing"]}
    )
    automations = [
        {
            "name": "Au revoir",
            "keywords": 'au revoir, bye, "see you, later"',
            "actions": [{"type": "tag", "tag": "closing"}, {"type": "resolve", "reason": "Contact left"}],
        },
        {
            "name": "Refunds",
            "keywords": "refund, charged twice",
            "actions": [{"type": "tag", "tag": "refund"}, {"type": "topic", "topic": "Refunds"}],
        },
        {
            "name": "Outage",
            "keywords": "error, broken, down",
            "channels": ["support"],
            "actions": [{"type": "topic", "topic": "Outage"}],
        },
        {
            "name": "Delivery",
            "keywords": "delivery, address, stock",
            "match": "any",
            "actions": [{"type": "topic", "topic": "Delivery"}],
        },
    ]
    created = [await demo.api("POST", "/api/automations", a) for a in automations]
    ids: dict[str, int] = {"admin": admin["id"], "automation": created[0]["id"]}
    for contact, name, channel, kind, texts in CONTACTS:
        for text in texts:
            ids[contact] = await demo.message(channel, contact, name, kind, text)
    refund = ids["c-1"]
    await demo.api("POST", f"/api/conversations/{refund}/assign", {"user": ana["id"]})
    await demo.api(
        "POST",
        f"/api/conversations/{refund}/messages",
        {"text": "Hello Marie, the refund left us yesterday: it shows on your account within 3 days."},
        user=ana["id"],
    )
    ids["conversation"] = await demo.message("shop", "c-1", "Marie Dupont", "direct", "Thank you! Have a nice day.")
    return ids


async def wait_until_up(http: aiohttp.ClientSession, base: str, server: subprocess.Popen[bytes]) -> None:
    for _ in range(200):
        if server.poll() is not None:
            raise RuntimeError("the server stopped while starting: see its output above")
        try:
            async with http.get(base + "/healthz") as resp:
                if resp.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError("the server did not answer /healthz in 20 s")


async def shoot(base: str, ids: dict[str, int]) -> list[Path]:
    OUT.mkdir(parents=True, exist_ok=True)
    shots = [
        ("queue.png", "/inbox"),
        ("conversation.png", f"/inbox/{ids['conversation']}"),
        ("automation-form.png", f"/settings/automations/{ids['automation']}"),
    ]
    saved = []
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(base_url=base, viewport=VIEWPORT, locale="en-US")
            page = await context.new_page()
            await page.goto("/login")
            await page.get_by_label("Email").fill(ADMIN[0])
            await page.get_by_label("Password").fill(ADMIN[1])
            await page.get_by_role("button", name="Sign in").click()
            await page.wait_for_url(lambda url: "/login" not in url)
            for name, path in shots:
                answer = await page.goto(path)
                status = answer.status if answer is not None else 0
                if status != 200:
                    print(f"warning: {path} answered {status}: {name} shows that page", file=sys.stderr)
                await page.screenshot(path=str(OUT / name), full_page=True)
                saved.append(OUT / name)
        finally:
            await browser.close()
    return saved


async def seed_and_shoot(base: str, token: str, secret: str, server: subprocess.Popen[bytes]) -> None:
    async with aiohttp.ClientSession() as http:
        await wait_until_up(http, base, server)
        ids = await seed(Demo(http, base, token, secret))
    for path in await shoot(base, ids):
        print(f"wrote {path.relative_to(ROOT)}")


def main() -> int:
    """Start the server on a temporary store, take the shots, stop it (also on failure)."""
    if not Path(CHROMIUM).exists():
        print(f"no Chromium at {CHROMIUM}: apt-get install -y chromium", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="inbox-shots-") as tmp:
        port, token, secret = free_port(), secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        config = Path(tmp) / "config.toml"
        config.write_text(CONFIG.format(port=port, store=Path(tmp) / "inbox.sqlite3"))
        env = {**os.environ, "SHOTS_API_TOKENS": token, "SHOTS_SHOP_SECRET": secret}
        bot = [sys.executable, "-m", "bot", "--config", str(config)]
        subprocess.run([*bot, "migrate"], env=env, check=True, cwd=tmp, stdout=subprocess.DEVNULL)
        server = subprocess.Popen([*bot, "serve"], env=env, cwd=tmp)
        try:
            asyncio.run(seed_and_shoot(f"http://127.0.0.1:{port}", token, secret, server))
        finally:
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
