"""Benchmark: what idle live-update streams (`GET /events`) cost a serving inbox-bot, and how fast
one inbound message reaches all of them (SQLite, one worker).

The server runs in its own process (the whole app, with a sign-in that accepts everyone as one
user, since only the streams are measured). Resident memory is read from /proc after opening N
idle keep-alive connections (the baseline: what any idle client costs), then N streams.

    python bench/bench_live.py [--clients 200]

Target (issue): 200 idle streams cost <= 30 MB more resident memory.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SECRET = "bench-live-secret"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def serve(port: int, db_url: str) -> None:
    """The server process: migrate, create the one user, serve with a sign-in that is always them."""
    from aiohttp import web

    from bot.app import build_app
    from bot.config import settings_from_dict
    from bot.domain import User
    from bot.services.people import People
    from bot.store import db

    settings = settings_from_dict(
        {
            "database": {"url": db_url},
            "server": {"host": "127.0.0.1", "port": port},
            "channels": [{"name": "bench", "kind": "webhook", "secret_env": "BENCH_SECRET"}],
        },
        env={"BENCH_SECRET": SECRET},
    )
    asyncio.run(db.migrate(db_url))

    async def first_user() -> User:
        async with db.open_store(db_url):
            return (
                await People().add_user(
                    email="bench@example.com", role="agent", password="bench password", actor="bench"
                )
            ).user

    user = asyncio.run(first_user())

    async def everyone(request: web.Request) -> User | None:
        return user

    web.run_app(build_app(settings, authenticate=everyone), host="127.0.0.1", port=port, access_log=None, print=None)


async def wait_http(url: str) -> None:
    async with aiohttp.ClientSession() as s:
        for _ in range(600):
            try:
                async with s.get(url) as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise SystemExit(f"server did not answer at {url}")


async def settle(pid: int) -> float:
    await asyncio.sleep(1.0)
    return rss_mb(pid)


async def measure(port: int, pid: int, clients: int, *, streams: bool) -> float:
    """Resident growth (MB) of the server after `clients` idle streams (else keep-alive
    connections); with streams, also how fast one webhook message reaches all of them."""
    from connectors.webhook.connector import signed_headers

    base = f"http://127.0.0.1:{port}"
    await wait_http(f"{base}/healthz")
    idle = await settle(pid)
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    try:
        if not streams:
            # the baseline: as many idle keep-alive connections, each after one small request
            plain = [aiohttp.ClientSession() for _ in range(clients)]
            for s in plain:
                async with s.get(f"{base}/healthz") as r:
                    await r.read()
            grown = await settle(pid) - idle
            for s in plain:
                await s.close()
            return grown
        opened = [await session.get(f"{base}/events") for _ in range(clients)]
        assert all(r.status == 200 for r in opened)
        grown = await settle(pid) - idle

        async def first_event(resp: aiohttp.ClientResponse) -> float:
            while True:
                line = await resp.content.readline()
                if line.startswith(b"event: conversation"):
                    return time.perf_counter()

        waits = [asyncio.create_task(first_event(r)) for r in opened]
        body = json.dumps({"id": f"m-{uuid.uuid4().hex}", "contact": {"id": "c-1"}, "text": "hello"}).encode()
        started = time.perf_counter()
        async with session.post(f"{base}/webhooks/bench", data=body, headers=signed_headers(SECRET, body)) as r:
            assert r.status == 200, await r.text()
        arrived = await asyncio.wait_for(asyncio.gather(*waits), timeout=30)
        lags = sorted((t - started) * 1000 for t in arrived)
        print(
            f"one webhook message to all {clients} streams: median {statistics.median(lags):.0f} ms, "
            f"last {lags[-1]:.0f} ms (one client process reading them all)"
        )
        for r in opened:
            r.close()
        return grown
    finally:
        await session.close()


def run_server(clients: int, *, streams: bool) -> float:
    """A fresh server process for one measurement (memory freed by one would serve the other)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    tmp = Path(tempfile.mkdtemp(prefix="inbox-live-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("INBOX_")}
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(port), f"sqlite://{tmp}/inbox.sqlite3"],
        cwd=tmp,
        env=env,
        stderr=subprocess.DEVNULL,
    )
    try:
        return asyncio.run(measure(port, server.pid, clients, streams=streams))
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--serve", nargs=2, metavar=("PORT", "DB_URL"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(int(args.serve[0]), args.serve[1])
        return
    plain = run_server(args.clients, streams=False)
    live = run_server(args.clients, streams=True)
    print(f"{args.clients} idle keep-alive connections (baseline): {plain:+7.1f} MB")
    print(f"{args.clients} idle /events streams:                 {live:+7.1f} MB  (target <= +30 MB)")
    per_stream, per_plain = live * 1024 / args.clients, plain * 1024 / args.clients
    print(f"per stream {per_stream:.1f} KB; per keep-alive connection {per_plain:.1f} KB")
    if plain > 0.05:
        print(f"ratio streams / keep-alive connections: {live / plain:.1f}x")


if __name__ == "__main__":
    main()
