"""Scale-out benchmark: signed webhook ingest on PostgreSQL with `serve --workers 1` and
`serve --workers 2`, same run, same load generator; prints both rates and their ratio.

    python bench/bench_workers.py [--pg postgres://postgres@127.0.0.1:5432/postgres]
                                  [--seconds 8] [--concurrency 64] [--automations 200]

Creates its own database (and drops it after), seeds `--automations` tag automations, and checks
that every acknowledged message of each run is in the store (a benchmark that loses messages is
not a result). On a 2-core machine the load generator shares the cores with the workers and
PostgreSQL, so the ratio is a floor, not what two real hosts give.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._load import run_load  # noqa: E402
from bench.bench_ingest import SECRET, free_port, make_request_factory, seed, wait_http  # noqa: E402


async def admin_sql(admin_url: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def count_inbound(url: str, prefix: str) -> int:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM messages WHERE direction = 'inbound' AND platform_id LIKE $1", prefix + "-%"
            )
        )
    finally:
        await conn.close()


def start(tmp: Path, db_url: str, workers: int) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    cfg = tmp / f"config-{workers}.toml"
    cfg.write_text(
        f'[server]\nhost = "127.0.0.1"\nport = {port}\n'
        f'[database]\nurl = "{db_url}"\npool_min = 2\npool_max = 8\n'
        '[api]\ntokens_env = "BENCH_TOKEN"\n'
        '[[channels]]\nname = "bench"\nkind = "webhook"\nsecret_env = "BENCH_SECRET"\n'
    )
    env = {**os.environ, "BENCH_SECRET": SECRET, "BENCH_TOKEN": "t", "INBOX_LOG_LEVEL": "ERROR"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "--config", str(cfg), "serve", "--workers", str(workers)],
        env=env,
        cwd=tmp,
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    wait_http(f"http://127.0.0.1:{port}/healthz")
    time.sleep(1.0)  # every worker up (the kernel only spreads connections to listening ones)
    return proc, port


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--pg", default=os.environ.get("INBOX_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    )
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--automations", type=int, default=200)
    args = ap.parse_args()

    name = f"inbox_bench_{uuid.uuid4().hex[:8]}"
    db_url = urlunsplit(urlsplit(args.pg)._replace(path=f"/{name}"))
    asyncio.run(admin_sql(args.pg, f'CREATE DATABASE "{name}"'))
    tmp = Path(tempfile.mkdtemp(prefix="inbox-bench-workers-"))
    results = {}
    try:
        asyncio.run(seed(db_url, args.automations))
        print(
            f"workers benchmark: {args.concurrency} concurrent senders, {args.seconds:.0f} s per run, "
            f"{args.automations} automations, PostgreSQL ({os.cpu_count()} cores)"
        )
        for workers in (1, 2):
            proc, port = start(tmp, db_url, workers)
            try:
                run = f"w{workers}"
                res = asyncio.run(
                    run_load(
                        f"http://127.0.0.1:{port}/webhooks/bench",
                        make_request_factory(run),
                        concurrency=args.concurrency,
                        seconds=args.seconds,
                    )
                )
            finally:
                stop(proc)
            stored = asyncio.run(count_inbound(db_url, run))
            lost = max(res.acked - stored, 0)
            results[workers] = res
            print(res.line(f"inbox-bot ingest, {workers} worker{'s' if workers > 1 else ''}"))
            print(f"{'':<34} acknowledged {res.acked}, stored {stored}, lost {lost}")
            if lost:
                raise SystemExit("acknowledged messages are missing from the store")
        print(f"ratio 2 workers / 1 worker: {results[2].rate / results[1].rate:.2f}x")
    finally:
        asyncio.run(admin_sql(args.pg, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
