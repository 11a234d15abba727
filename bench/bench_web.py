"""Web inbox benchmark: the queue page and a 200-message conversation page, served by a real
`inbox-bot serve` to a signed-in browser session, beside `/healthz` measured the same way in the
same run; and the resident memory 200 idle live-update (SSE) clients cost.

    python bench/bench_web.py [--conversations 100000] [--messages-per-conversation 10]
                              [--duration 10] [--connections 8] [--sse-clients 200]

Builds the store of `bench/bench_queue.py` (its builder: `--conversations` conversations, ten
times as many messages) in a temporary SQLite file, adds one conversation of 200 messages and an
agent, starts the server, signs in through `/login` like a browser, then drives each page with
`wrk` (Debian package `wrk`; installed with apt-get when missing) for `--duration` seconds at
`--connections` connections, the session cookie on every request. p50/p95/p99 come from wrk's
own latency histogram (a Lua `done` hook); a page answered with anything but 200 counts as an
error and is reported. Targets: each page p95 <= 100 ms (the whole HTML), 200 idle SSE clients
<= 30 MB more resident memory.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_queue import NOW, Loader, build  # noqa: E402

TARGET_PAGE_MS = 100.0
TARGET_SSE_MB = 30.0
LONG_CONVERSATION = 200
PASSWORD = "bench-password-1"
WRK_SCRIPT = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT p50=%d p95=%d p99=%d requests=%d errors=%d\\n",
    latency:percentile(50), latency:percentile(95), latency:percentile(99), summary.requests,
    e.status + e.connect + e.read + e.write + e.timeout))
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def need_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    print("wrk is missing: installing the Debian package (apt-get install -y wrk)", flush=True)
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True)
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("bench_web: wrk could not be installed")
    return found


async def add_long_conversation_and_agent(url: str, conversations: int) -> int:
    """One more conversation, of 200 messages (every fifth one ours), and the agent who signs in."""
    from tortoise import connections
    from tortoise.transactions import in_transaction

    from bot.services.people import People
    from bot.store import db

    sqlite = url.startswith("sqlite")
    async with db.open_store(url):
        load = Loader(sqlite)
        cid = conversations + 1
        conn = connections.get("default")
        _, rows = await conn.execute_query("SELECT MAX(id) FROM messages")
        first_id = int(next(iter(dict(rows[0]).values())) or 0) + 1
        started = NOW - timedelta(days=1)
        msgs = []
        for k in range(LONG_CONVERSATION):
            outbound = k % 5 == 4
            at = load.stamp(started + timedelta(minutes=k))
            text = f"Message {k}: " + ("thanks, we are on it" if outbound else "my parcel has not arrived yet") * 3
            direction, delivery = ("outbound", "sent") if outbound else ("inbound", None)
            msgs.append(
                (first_id + k, cid, "shop", None if outbound else f"long-{k}", direction, text, at, delivery, at)
            )
        async with in_transaction("default"):
            await load.insert("contacts", ["id", "channel", "platform_id", "name", "name_key", "created_at"],
                              [(cid, "shop", "c-long", "Long Talker", "long talker", load.stamp(started))])  # fmt: skip
            await load.insert(
                "conversations",
                ["id", "channel", "thread_key", "open_key", "type", "status", "contact_id", "keyword_progress",
                 "reply_to", "priority", "team_id", "assignee_id", "waiting_since", "created_at", "updated_at"],
                [(cid, "shop", "t-long", "shop\x1ft-long", "direct", "open", cid, "[]", "{}", 2, None, None,
                  load.stamp(started), load.stamp(started), load.stamp(started))],
            )  # fmt: skip
            await load.insert(
                "messages",
                ["id", "conversation_id", "channel", "platform_id", "direction", "text", "sent_at", "delivery",
                 "created_at"],
                msgs,
            )  # fmt: skip
        await People().add_user(
            email="bench-agent@example.com", role="agent", name="Bench Agent", password=PASSWORD, actor="bench"
        )
    return cid


def write_config(tmp: Path, url: str) -> Path:
    cfg = tmp / "config.toml"
    cfg.write_text(
        f'log_level = "ERROR"\n[database]\nurl = "{url}"\n[server]\nsession_key_env = "BENCH_SESSION_KEY"\n'
        '[api]\ntokens_env = "BENCH_TOKENS"\n'
        '[[channels]]\nname = "shop"\nkind = "webhook"\nsecret_env = "BENCH_SHOP_SECRET"\n',
        encoding="utf-8",
    )
    return cfg


async def wait_up(base: str, proc: subprocess.Popen[bytes]) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as client:
        for _ in range(600):
            if proc.poll() is not None:
                raise SystemExit(f"bench_web: the server exited with code {proc.returncode}")
            try:
                async with client.get(f"{base}/healthz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise SystemExit("bench_web: the server did not answer /healthz within 60 s")


async def sign_in(base: str) -> str:
    """The session cookie (`name=value`) of the agent, signed in through the form."""
    import aiohttp

    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as client:
        async with client.get(f"{base}/login") as resp:
            csrf = re.search(r'name="csrf" value="([^"]+)"', await resp.text())
        if csrf is None:
            raise SystemExit("bench_web: no CSRF token on /login")
        form = {"csrf": csrf.group(1), "email": "bench-agent@example.com", "password": PASSWORD, "next": "/inbox"}
        async with client.post(f"{base}/login", data=form, allow_redirects=False) as resp:
            if resp.status != 303:
                raise SystemExit(f"bench_web: sign-in answered {resp.status}")
        cookie = next(c for c in jar if c.key == "inbox_session")
        return f"{cookie.key}={cookie.value}"


def run_wrk(wrk: str, script: Path, url: str, *, cookie: str, duration: int, connections: int) -> dict[str, int]:
    out = subprocess.run(
        [wrk, "-t", "1", "-c", str(connections), "-d", f"{duration}s", "-s", str(script), "-H", f"Cookie: {cookie}",
         url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    match = re.search(r"RESULT (.*)", out)
    if match is None:
        raise SystemExit(f"bench_web: unexpected wrk output:\n{out}")
    return {k: int(v) for k, v in (pair.split("=") for pair in match.group(1).split())}


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def sse_memory(base: str, cookie: str, pid: int, clients: int) -> str:
    """Resident memory before and with `clients` idle SSE streams open on `/events`."""
    import aiohttp

    name, value = cookie.split("=", 1)
    async with aiohttp.ClientSession(cookies={name: value}) as probe, probe.get(f"{base}/events") as resp:
        if resp.status == 404:
            # TODO(lead): /events arrives with the live updates branch; run this again after the merge.
            return "SSE: TODO — GET /events is not on this branch (404): measure again once live updates are merged"
        if resp.status != 200:
            return f"SSE: GET /events answered {resp.status}: not measured"
    await asyncio.sleep(1)
    before = rss_mb(pid)
    sessions: list[Any] = []
    streams: list[Any] = []
    try:
        for _ in range(clients):
            session = aiohttp.ClientSession(cookies={name: value}, timeout=aiohttp.ClientTimeout(total=None))
            sessions.append(session)
            streams.append(await session.get(f"{base}/events"))
        await asyncio.sleep(3)
        with_clients = rss_mb(pid)
        answered = sum(1 for s in streams if s.status == 200)
    finally:
        for stream in streams:
            stream.close()
        for session in sessions:
            await session.close()
    cost = with_clients - before
    verdict = "meets" if cost <= TARGET_SSE_MB and answered == clients else "MISSES"
    each = cost * 1024 / max(answered, 1)
    return (
        f"SSE: {answered}/{clients} idle clients: RSS {before:.1f} MB -> {with_clients:.1f} MB "
        f"(+{cost:.1f} MB, {each:.0f} KB each) — {verdict} the <= {TARGET_SSE_MB:.0f} MB target"
    )


def store_path(given: str | None, tmp: Path) -> tuple[Path, bool]:
    """Where the store is, and whether it was built by an earlier run."""
    store = Path(given).resolve() if given else tmp / "bench-web.sqlite3"
    return store, store.exists()


def load_round(
    wrk: str, script: Path, base: str, cookie: str, long_id: int, *, duration: int, connections: int
) -> list[str]:
    """The baseline and both pages at one level of concurrency: a line each, then the verdicts."""
    lines = []
    results: dict[str, dict[str, int]] = {}
    for label, path in (
        ("/healthz (baseline)", "/healthz"),
        ("queue page /inbox", "/inbox"),
        (f"conversation page, {LONG_CONVERSATION} messages", f"/inbox/{long_id}"),
    ):
        r = run_wrk(wrk, script, base + path, cookie=cookie, duration=duration, connections=connections)
        results[path] = r
        lines.append(
            f"{label:<36} p50 {r['p50'] / 1000:7.1f} ms  p95 {r['p95'] / 1000:7.1f} ms  "
            f"p99 {r['p99'] / 1000:7.1f} ms  {r['requests'] / duration:7.0f} req/s  errors {r['errors']}"
        )
    base_p95 = max(results["/healthz"]["p95"], 1)
    for path in ("/inbox", f"/inbox/{long_id}"):
        r = results[path]
        verdict = "meets" if r["p95"] / 1000 <= TARGET_PAGE_MS and r["errors"] == 0 else "MISSES"
        lines.append(
            f"{path}: p95 = {r['p95'] / base_p95:.1f}x the /healthz p95 of the same run; "
            f"{verdict} the p95 <= {TARGET_PAGE_MS:.0f} ms target"
        )
    return lines


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--conversations", type=int, default=100_000)
    p.add_argument("--messages-per-conversation", type=int, default=10)
    p.add_argument("--duration", type=int, default=10, help="seconds of load per page")
    p.add_argument("--connections", default="1,8", help="comma-separated: one round of load per value")
    p.add_argument("--sse-clients", type=int, default=200)
    p.add_argument("--store", help="a SQLite file to build once and reuse on later runs (default: a temporary one)")
    args = p.parse_args()
    wrk = need_wrk()
    with tempfile.TemporaryDirectory(prefix="bench-web-") as tmp_name:
        tmp = Path(tmp_name)
        store, built = store_path(args.store, tmp)
        url = f"sqlite://{store}"
        long_id = args.conversations + 1
        if built:
            print(f"reusing {store} (built with --conversations {args.conversations:,})", flush=True)
        else:
            print(f"building {args.conversations:,} conversations ...", flush=True)
            await build(url, conversations=args.conversations, per_conversation=args.messages_per_conversation)
            long_id = await add_long_conversation_and_agent(url, args.conversations)
        script = tmp / "report.lua"
        script.write_text(WRK_SCRIPT, encoding="utf-8")
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        from bot.config import generate_session_key

        env = {**os.environ, "BENCH_SESSION_KEY": generate_session_key(), "BENCH_TOKENS": "t", "BENCH_SHOP_SECRET": "s"}
        # Popen returns at once (the server runs beside this loop); wrk runs while nothing else does
        proc = subprocess.Popen(  # noqa: ASYNC220
            [sys.executable, "-m", "bot", "serve", "--config", str(write_config(tmp, url)), "--port", str(port)],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            await wait_up(base, proc)
            cookie = await sign_in(base)
            lines = []
            for connections in (int(c) for c in args.connections.split(",")):
                lines.append(f"-- {connections} connection(s), {args.duration} s per page")
                lines += load_round(wrk, script, base, cookie, long_id, duration=args.duration, connections=connections)
            lines.append(await sse_memory(base, cookie, proc.pid, args.sse_clients))
            print(f"\n{args.conversations:,} conversations")
            print("\n".join(lines), flush=True)
        finally:
            proc.terminate()
            proc.wait(timeout=30)


if __name__ == "__main__":
    asyncio.run(main())
