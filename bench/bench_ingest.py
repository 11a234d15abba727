"""Ingest benchmark: signed webhook messages end to end (signature, store, 1,000 automations,
commit, 200) on SQLite, against a bare aiohttp handler parsing the same JSON, same load generator.

    python bench/bench_ingest.py [--seconds 8] [--concurrency 32] [--automations 1000]

Prints requests/s and p50/p99 for both, the ratio, and checks that every acknowledged message
is in the store (a benchmark that loses messages is not a result).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._load import run_load  # noqa: E402
from connectors.webhook.connector import signed_headers  # noqa: E402

SECRET = "bench-secret-0123456789"
WORDS = (  # noqa: SIM905 - a word list reads better as prose
    "order delivery refund invoice password account login shipping package broken late help "
    "thanks hello price discount coupon payment card bank transfer address change cancel"
).split()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except Exception:
            time.sleep(0.1)
    raise SystemExit(f"server at {url} did not come up")


async def seed(db_url: str, n: int) -> None:
    from bot.store import db, repo

    await db.migrate(db_url)
    rnd = random.Random(7)
    async with db.open_store(db_url):
        await repo.create_label("tag", "bench")
        for i in range(n):
            kws = [f"{rnd.choice(WORDS)}{rnd.randint(0, 3000)}" for _ in range(rnd.randint(1, 5))]
            await repo.create_automation(
                name=f"rule {i}",
                key=f"rule {i}",
                keywords=kws,
                match="any",
                actions=[{"type": "tag", "tag": "bench"}],
                channels=[],
                types=[],
                enabled=True,
            )
        await repo.bump_automations_revision()


def start_servers(tmp: Path, db_url: str) -> tuple[subprocess.Popen[bytes], subprocess.Popen[bytes], int, int]:
    """inbox-bot (`serve` on a `bench` webhook channel) and the bare aiohttp baseline, on free ports."""
    port_bot, port_bare = free_port(), free_port()
    (tmp / "config.toml").write_text(
        f'[server]\nhost = "127.0.0.1"\nport = {port_bot}\n[database]\nurl = "{db_url}"\n'
        '[api]\ntokens_env = "BENCH_TOKEN"\n'
        '[[channels]]\nname = "bench"\nkind = "webhook"\nsecret_env = "BENCH_SECRET"\n'
    )
    env = {**os.environ, "BENCH_SECRET": SECRET, "BENCH_TOKEN": "t", "INBOX_LOG_LEVEL": "ERROR"}
    bare = subprocess.Popen([sys.executable, str(ROOT / "bench" / "_bare_server.py"), str(port_bare)])
    bot = subprocess.Popen(
        [sys.executable, "-m", "bot", "--config", str(tmp / "config.toml"), "serve"],
        env=env,
        cwd=tmp,
        stdout=subprocess.DEVNULL,
    )
    return bot, bare, port_bot, port_bare


def make_request_factory(run: str):
    rnd = random.Random(11)
    texts = []
    for _ in range(500):
        words = [rnd.choice(WORDS) + (str(rnd.randint(0, 3000)) if rnd.random() < 0.1 else "") for _ in range(30)]
        texts.append(" ".join(words)[:200])

    def make(i: int) -> tuple[bytes, dict[str, str]]:
        body = json.dumps(
            {"id": f"{run}-{i}", "contact": {"id": f"c-{i % 1000}", "name": "Bench"}, "text": texts[i % len(texts)]}
        ).encode()
        return body, signed_headers(SECRET, body)

    return make


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--automations", type=int, default=1000)
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="inbox-bench-"))
    db_path = tmp / "inbox.sqlite3"
    db_url = f"sqlite://{db_path}"
    asyncio.run(seed(db_url, args.automations))
    bot, bare, port_bot, port_bare = start_servers(tmp, db_url)
    try:
        wait_http(f"http://127.0.0.1:{port_bot}/healthz")
        time.sleep(0.5)
        print(
            f"ingest benchmark: {args.concurrency} concurrent senders, {args.seconds:.0f} s each, "
            f"{args.automations} automations, SQLite ({os.cpu_count()} cores)"
        )
        base = asyncio.run(
            run_load(
                f"http://127.0.0.1:{port_bare}/webhooks/bench",
                make_request_factory("bare"),
                concurrency=args.concurrency,
                seconds=args.seconds,
            )
        )
        ours = asyncio.run(
            run_load(
                f"http://127.0.0.1:{port_bot}/webhooks/bench",
                make_request_factory("bot"),
                concurrency=args.concurrency,
                seconds=args.seconds,
            )
        )
        print(base.line("bare aiohttp (parse JSON, 200)"))
        print(ours.line("inbox-bot ingest (SQLite)"))
        print(f"ratio inbox-bot / bare: {ours.rate / base.rate:.1%}   (target >= 20%, p99 <= 50 ms)")
    finally:
        for p in (bot, bare):
            p.terminate()
        for p in (bot, bare):
            p.wait(timeout=30)
    con = sqlite3.connect(db_path)
    stored = con.execute("SELECT count(*) FROM messages WHERE direction='inbound'").fetchone()[0]
    runs = con.execute("SELECT count(*) FROM automation_runs").fetchone()[0]
    con.close()
    lost = ours.acked - stored
    print(f"acknowledged {ours.acked}, stored {stored}, lost {max(lost, 0)}, automation runs {runs}")
    if lost > 0:
        raise SystemExit("acknowledged messages are missing from the store")


if __name__ == "__main__":
    main()
