"""Memory benchmark: resident size of a serving inbox-bot with 10,000 automations, and after
100,000 stored messages (SQLite), against a bare aiohttp process measured in the same run.

    python bench/bench_memory.py [--automations 10000] [--messages 100000]

Target: resident memory with 10,000 automations <= 150 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._load import run_load  # noqa: E402
from bench.bench_ingest import make_request_factory, seed, start_servers, wait_http  # noqa: E402


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--automations", type=int, default=10_000)
    ap.add_argument("--messages", type=int, default=100_000)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="inbox-mem-"))
    db_url = f"sqlite://{tmp}/inbox.sqlite3"
    t0 = time.time()
    asyncio.run(seed(db_url, args.automations))
    print(f"seeded {args.automations} automations in {time.time() - t0:.1f} s")
    bot, bare, port, _ = start_servers(tmp, db_url)
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz")
        time.sleep(1.0)
        base = rss_mb(bare.pid)
        idle = rss_mb(bot.pid)
        print(f"bare aiohttp process:                 {base:7.1f} MB")
        print(f"inbox-bot, {args.automations} automations, idle: {idle:7.1f} MB   (target <= 150 MB)")
        sent = 0
        rate_seconds = 10.0
        make = make_request_factory("mem")
        while sent < args.messages:
            res = asyncio.run(
                run_load(
                    f"http://127.0.0.1:{port}/webhooks/bench",
                    lambda i, off=sent: make(off + i),
                    concurrency=32,
                    seconds=rate_seconds,
                    warmup=0.0,
                )
            )
            sent += res.acked
            print(f"  stored {sent:>7} messages ({res.rate:.0f}/s), resident {rss_mb(bot.pid):7.1f} MB", flush=True)
        after = rss_mb(bot.pid)
        print(f"inbox-bot after {sent} stored messages:  {after:7.1f} MB  (growth {after - idle:+.1f} MB)")
        print(f"ratio inbox-bot idle / bare aiohttp: {idle / base:.1f}x")
    finally:
        for p in (bot, bare):
            p.terminate()
        for p in (bot, bare):
            p.wait(timeout=30)


if __name__ == "__main__":
    main()
