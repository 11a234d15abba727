"""Start-up on a large store: from `inbox-bot serve` to answering, with 10,000 enabled automations
and 1,000,000 messages (SQLite).

    python bench/bench_startup.py [--automations 10000] [--conversations 100000]
                                  [--messages-per-conversation 10]

Builds the store in bulk (bench/bench_queue.py's builder: conversations, messages, the full-text
index), adds the automations, then starts `serve` three times and reports the seconds until
`/healthz` answers and until a signed webhook message is stored (its automations compiled).
The baseline of the same run is the bare aiohttp server of bench_ingest starting on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_ingest import SECRET, free_port, make_request_factory  # noqa: E402
from bench.bench_queue import build  # noqa: E402
from bench.bench_rule_change import keywords  # noqa: E402


async def add_automations(db_url: str, n: int) -> None:
    import random

    from bot.store import db, repo

    rnd = random.Random(7)
    async with db.open_store(db_url):
        await repo.create_label("tag", "bench")
        async with repo.transaction():
            for i in range(n):
                await repo.create_automation(
                    name=f"rule {i}",
                    keywords=keywords(rnd),
                    match="any",
                    actions=[{"type": "tag", "tag": "bench"}],
                    channels=[],
                    types=[],
                    enabled=True,
                )
            await repo.bump_automations_revision()


def until_answers(
    url: str, started: float, *, body: bytes | None = None, headers: dict[str, str] | None = None, timeout: float = 300
) -> float:
    """Seconds from `started` until `url` answers 200 (GET, or POST of `body`)."""
    while time.perf_counter() - started < timeout:
        try:
            req = urllib.request.Request(url, data=body, headers=headers or {}, method="POST" if body else "GET")
            with urllib.request.urlopen(req, timeout=5) as resp:
                if resp.status == 200:
                    return time.perf_counter() - started
        except Exception:
            time.sleep(0.02)
    raise SystemExit(f"{url} did not answer within {timeout:.0f} s")


def start_once(tmp: Path, db_url: str, run: int) -> tuple[float, float]:
    port = free_port()
    (tmp / "config.toml").write_text(
        f'[server]\nhost = "127.0.0.1"\nport = {port}\n[database]\nurl = "{db_url}"\n'
        '[api]\ntokens_env = "BENCH_TOKEN"\n'
        '[[channels]]\nname = "bench"\nkind = "webhook"\nsecret_env = "BENCH_SECRET"\n'
    )
    env = {**os.environ, "BENCH_SECRET": SECRET, "BENCH_TOKEN": "t", "INBOX_LOG_LEVEL": "ERROR"}
    started = time.perf_counter()
    server = subprocess.Popen(
        [sys.executable, "-m", "bot", "--config", str(tmp / "config.toml"), "serve"],
        env=env,
        cwd=tmp,
        stdout=subprocess.DEVNULL,
    )
    try:
        healthy = until_answers(f"http://127.0.0.1:{port}/healthz", started)
        body, headers = make_request_factory(f"startup-{run}")(0)
        stored = until_answers(f"http://127.0.0.1:{port}/webhooks/bench", started, body=body, headers=headers)
    finally:
        server.terminate()
        server.wait(timeout=60)
    return healthy, stored


def bare_start() -> float:
    port = free_port()
    started = time.perf_counter()
    server = subprocess.Popen([sys.executable, str(ROOT / "bench" / "_bare_server.py"), str(port)])
    try:
        return until_answers(f"http://127.0.0.1:{port}/webhooks/x", started, body=b"{}", headers={})
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--automations", type=int, default=10_000)
    ap.add_argument("--conversations", type=int, default=100_000)
    ap.add_argument("--messages-per-conversation", type=int, default=10)
    ap.add_argument("--store", type=Path, help="a folder this bench built before: start on its store again")
    args = ap.parse_args()
    tmp = args.store or Path(tempfile.mkdtemp(prefix="inbox-startup-bench-"))
    db_url = f"sqlite://{tmp / 'inbox.sqlite3'}"
    print(f"start-up benchmark: load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; store in {tmp}")
    t0 = time.perf_counter()
    if args.store is None:
        asyncio.run(build(db_url, conversations=args.conversations, per_conversation=args.messages_per_conversation))
        asyncio.run(add_automations(db_url, args.automations))
    import sqlite3

    con = sqlite3.connect(tmp / "inbox.sqlite3")
    messages = con.execute("SELECT count(*) FROM messages").fetchone()[0]
    automations = con.execute("SELECT count(*) FROM automations WHERE enabled").fetchone()[0]
    con.close()
    print(
        f"store: {messages:,} messages, {automations:,} enabled automations ({time.perf_counter() - t0:.0f} s to build)"
    )
    runs = [start_once(tmp, db_url, i) for i in range(3)]
    bare = statistics.median(bare_start() for _ in range(3))
    healthy = statistics.median(r[0] for r in runs)
    stored = statistics.median(r[1] for r in runs)
    print(f"baseline: bare aiohttp process answering after {bare:.2f} s (median of 3)")
    print(
        f"inbox-bot serve: /healthz answers after {healthy:.2f} s, first webhook stored after {stored:.2f} s "
        "(median of 3: "
        + ", ".join(f"{s:.2f}" for _, s in runs)
        + f")   (target <= 5 s); {stored / bare:.1f}x the bare process"
    )


if __name__ == "__main__":
    main()
