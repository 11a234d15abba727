"""Rule changes at 10,000 automations: how long one blocks the server, and what webhooks feel.

    python bench/bench_rule_change.py [--automations 10000] [--seconds 10]

A real server (`serve`, SQLite) with an event-loop lag probe (bench/_lag_server.py) and N enabled
automations (the benchmark of bench_ingest: 1–5 keywords, a tag). It measures:
- creating automation number N over the API (`POST /api/automations`, median of 20 creations
  N … N+19), and changing one (`PATCH` keywords, disable, enable);
- the worst event-loop lag while one change is applied, with no other load;
- webhook p50/p99 (wrk, 32 connections, pre-signed distinct bodies) without changes, then while
  one automation changes every second;
and prints against the baseline of the same run: compiling all N automations from scratch, which
is what every change cost on the event loop before changes were applied incrementally.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_ingest import (  # noqa: E402
    SECRET,
    WORDS,
    Run,
    free_port,
    make_request_factory,
    run_wrk,
    wait_http,
    write_requests,
)
from bot.domain import Action, ActionType, MatchMode  # noqa: E402
from bot.engine import Rule, RuleSet  # noqa: E402

TOKEN = "bench-token"


def keywords(rnd: random.Random) -> list[str]:
    return [f"{rnd.choice(WORDS)}{rnd.randint(0, 30000)}" for _ in range(rnd.randint(1, 5))]


async def seed(db_url: str, n: int) -> list[list[str]]:
    """N enabled automations in one transaction; returns their keywords."""
    from bot.store import db, repo

    await db.migrate(db_url)
    rnd = random.Random(7)
    kws = [keywords(rnd) for _ in range(n)]
    async with db.open_store(db_url):
        await repo.create_label("tag", "bench")
        async with repo.transaction():
            for i, k in enumerate(kws):
                await repo.create_automation(
                    name=f"rule {i}",
                    keywords=k,
                    match="any",
                    actions=[{"type": "tag", "tag": "bench"}],
                    channels=[],
                    types=[],
                    enabled=True,
                )
            await repo.bump_automations_revision()
    return kws


def api(port: int, method: str, path: str, body: dict[str, object] | None = None) -> tuple[float, dict[str, object]]:
    """(milliseconds, JSON answer) of one API call."""
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    t0 = time.perf_counter()
    with urllib.request.urlopen(req, timeout=30) as resp:
        data = json.loads(resp.read())
    return (time.perf_counter() - t0) * 1000, data


def lag_between(path: Path, start: float, end: float) -> float:
    """The worst loop lag (ms) the probe saw in windows ending between start and end (+50 ms)."""
    worst = 0.0
    for line in path.read_text().splitlines():
        at, lag = (float(x) for x in line.split())
        if start <= at <= end + 0.05:
            worst = max(worst, lag)
    return worst


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--automations", type=int, default=10_000)
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args()
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk not found: apt-get install wrk")
    n = args.automations
    tmp = Path(tempfile.mkdtemp(prefix="inbox-rules-bench-"))
    db_url = f"sqlite://{tmp / 'inbox.sqlite3'}"
    t0 = time.perf_counter()
    kws = asyncio.run(seed(db_url, n - 1))
    print(
        f"rule change benchmark: {n - 1:,} automations seeded in {time.perf_counter() - t0:.1f} s; SQLite; "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )

    rules = [
        Rule(i + 1, f"rule {i}", tuple(k), MatchMode.ANY, (Action(ActionType.TAG, "bench"),)) for i, k in enumerate(kws)
    ]
    t0 = time.perf_counter()
    RuleSet(rules)
    full_ms = (time.perf_counter() - t0) * 1000

    port = free_port()
    lag_file = tmp / "lag.txt"
    (tmp / "config.toml").write_text(
        f'[server]\nhost = "127.0.0.1"\nport = {port}\n[database]\nurl = "{db_url}"\n'
        '[api]\ntokens_env = "BENCH_TOKEN"\n'
        '[[channels]]\nname = "bench"\nkind = "webhook"\nsecret_env = "BENCH_SECRET"\n'
    )
    env = {**os.environ, "BENCH_SECRET": SECRET, "BENCH_TOKEN": TOKEN, "INBOX_LOG_LEVEL": "ERROR"}
    t0 = time.perf_counter()
    command = [sys.executable, str(ROOT / "bench" / "_lag_server.py"), str(lag_file)]
    server = subprocess.Popen(
        [*command, "--config", str(tmp / "config.toml"), "serve"],
        env=env,
        cwd=tmp,
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", timeout=120)
        print(f"server answering after {time.perf_counter() - t0:.1f} s")
        time.sleep(1.0)
        rnd = random.Random(3)

        # creating the Nth automation (and the 19 after it) over the API
        created: list[float] = []
        ids: list[int] = []
        for i in range(20):
            body = {
                "name": f"new {i}",
                "keywords": ", ".join(keywords(rnd)),
                "actions": [{"type": "tag", "tag": "bench"}],
            }
            ms, data = api(port, "POST", "/api/automations", body)
            created.append(ms)
            ids.append(int(str(data["id"])))

        # one change at a time, no other load: the loop's worst lag while it is applied
        changes: list[tuple[float, float]] = []  # (API ms, worst loop lag ms)
        target = ids[0]
        for i in range(15):
            time.sleep(0.3)
            start = time.time()
            if i % 3 == 0:
                ms, _ = api(port, "PATCH", f"/api/automations/{target}", {"keywords": ", ".join(keywords(rnd))})
            else:
                ms, _ = api(port, "POST", f"/api/automations/{target}/{'disable' if i % 3 == 1 else 'enable'}")
            time.sleep(0.2)  # a compaction the change started shows here too
            changes.append((ms, lag_between(lag_file, start, time.time())))
        idle_start = time.time()
        time.sleep(2.0)
        idle_lag = lag_between(lag_file, idle_start, time.time())

        # webhooks without changes, then with one change per second
        def load(name: str) -> Run:
            reqs = tmp / f"{name}.tsv"
            write_requests(reqs, make_request_factory(name), int(20_000 * args.seconds))
            return run_wrk(
                wrk, f"http://127.0.0.1:{port}/webhooks/bench", reqs, seconds=args.seconds, concurrency=32, threads=2
            )

        quiet = load("quiet")
        during: list[float] = []
        stop = threading.Event()

        def change_every_second() -> None:
            i = 0
            while not stop.wait(1.0):
                ms, _ = api(port, "POST", f"/api/automations/{target}/{'disable' if i % 2 == 0 else 'enable'}")
                during.append(ms)
                i += 1

        changer = threading.Thread(target=change_every_second)
        changer.start()
        busy = load("busy")
        stop.set()
        changer.join()
    finally:
        server.terminate()
        server.wait(timeout=60)

    api_ms = [c[0] for c in changes]
    lags = [c[1] for c in changes]
    print(f"baseline: compiling all {n - 1:,} automations from scratch (every change, before): {full_ms:.0f} ms")
    print(
        f"create automation #{n:,} over the API: {created[0]:.1f} ms; #{n:,}–#{n + 19:,} median "
        f"{statistics.median(created):.1f} ms, max {max(created):.1f} ms   (target <= 50 ms)"
    )
    print(
        f"one change (PATCH keywords / disable / enable) over the API: median {statistics.median(api_ms):.1f} ms, "
        f"max {max(api_ms):.1f} ms"
    )
    print(
        f"event loop blocked by one change: worst lag median {statistics.median(lags):.1f} ms, max {max(lags):.1f} ms "
        f"(idle: {idle_lag:.1f} ms)   (target <= 20 ms); "
        f"{full_ms / max(max(lags), 0.1):.0f}x less than a full compile"
    )
    print(quiet.line("webhooks, no rule change"))
    print(busy.line("webhooks, one rule change per second"))
    print(
        f"p99 during changes / without: {busy.p99_ms / quiet.p99_ms:.2f}x   (target p99 <= 50 ms); "
        f"{len(during)} changes took median {statistics.median(during) if during else 0:.1f} ms"
    )


if __name__ == "__main__":
    main()
