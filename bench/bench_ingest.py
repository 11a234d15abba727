"""Ingest benchmark: signed webhook messages end to end (signature, store, 1,000 automations,
commit, 200) on SQLite with its default durability (synchronous=FULL), against a bare aiohttp
handler that parses the same JSON and answers 200 — both driven by `wrk` in the same run.

    python bench/bench_ingest.py [--seconds 10] [--concurrency 32] [--automations 1000]

`wrk` (Debian package `wrk`) sends pre-signed, distinct bodies (bench/_wrk.lua): every run — the
warm-up and the measured one, for each server — uses ids never sent before, so the bot stores each
message once rather than answering duplicates. Without `wrk` the Python load generator
(bench/_load.py) drives both, and the output says so: that generator saturates near 10,000 req/s,
so its baseline measures the generator, not the server.

Prints requests/s and p50/p99 for both, the ratio, and checks that every acknowledged message is
in the store (a benchmark that loses messages is not a result).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._load import run_load  # noqa: E402
from connectors.webhook.connector import SIGNATURE_HEADER, TIMESTAMP_HEADER, signed_headers  # noqa: E402

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


def wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing listens on port {port}")


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


def has_uvloop() -> bool:
    """Whether `inbox-bot serve` runs on uvloop here (it does wherever uvloop is installed)."""
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def make_request_factory(run: str) -> Callable[[int], tuple[bytes, dict[str, str]]]:
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


@dataclass
class Run:
    """One measured run against one server."""

    rate: float  # 200 answers per second
    p50_ms: float
    p99_ms: float
    errors: int  # non-200 answers and socket errors
    acked: int  # 200 answers, warm-up included (each must be in the store)
    exhausted: bool = False  # wrk ran out of distinct bodies: raise --bodies-per-second

    def line(self, label: str) -> str:
        note = "   (ran out of bodies: too few for this rate)" if self.exhausted else ""
        return (
            f"{label:<44} {self.rate:9.0f} req/s   p50 {self.p50_ms:6.2f} ms   p99 {self.p99_ms:6.2f} ms"
            f"   errors {self.errors}{note}"
        )


def write_requests(path: Path, make: Callable[[int], tuple[bytes, dict[str, str]]], count: int) -> None:
    """`count` signed requests, one a line: timestamp, signature, body (what bench/_wrk.lua reads)."""
    with path.open("w") as f:
        for i in range(count):
            body, headers = make(i)
            f.write(f"{headers[TIMESTAMP_HEADER]}\t{headers[SIGNATURE_HEADER]}\t{body.decode()}\n")


def run_wrk(wrk: str, url: str, requests: Path, *, seconds: float, concurrency: int, threads: int) -> Run:
    out = subprocess.run(
        [
            *(wrk, "-t", str(threads), "-c", str(concurrency), "-d", f"{seconds:g}s", "--timeout", "10s"),
            *("-s", str(ROOT / "bench" / "_wrk.lua"), url, "--", str(requests), str(threads)),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = next((x for x in out.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise SystemExit(f"wrk printed no result:\n{out}")
    f = {k: int(v) for k, v in (kv.split("=") for kv in line.split()[1:])}
    errors = f["connect_errors"] + f["read_errors"] + f["write_errors"] + f["timeouts"] + f["status_errors"]
    return Run(
        rate=f["ok"] / (f["duration_us"] / 1e6),
        p50_ms=f["p50_us"] / 1000,
        p99_ms=f["p99_us"] / 1000,
        errors=errors,
        acked=f["ok"],
        exhausted=bool(f["exhausted"]),
    )


def measure_wrk(wrk: str, url: str, name: str, args: argparse.Namespace, tmp: Path) -> Run:
    """A 2-second warm-up, then the measured run; each with its own never-sent ids."""
    threads = max(1, min(2, args.concurrency))
    warm, main_ = tmp / f"{name}-warm.tsv", tmp / f"{name}.tsv"
    write_requests(warm, make_request_factory(f"{name}-warm"), int(args.bodies_per_second * 2))
    write_requests(main_, make_request_factory(name), int(args.bodies_per_second * args.seconds))
    first = run_wrk(wrk, url, warm, seconds=2, concurrency=args.concurrency, threads=threads)
    run = run_wrk(wrk, url, main_, seconds=args.seconds, concurrency=args.concurrency, threads=threads)
    run.acked += first.acked
    run.exhausted |= first.exhausted
    return run


def measure_python(url: str, name: str, args: argparse.Namespace) -> Run:
    r = asyncio.run(run_load(url, make_request_factory(name), concurrency=args.concurrency, seconds=args.seconds))
    return Run(r.rate, statistics.median(r.latencies_ms), r.pct(99), r.errors, r.acked)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--automations", type=int, default=1000)
    ap.add_argument("--bodies-per-second", type=float, default=30_000, help="distinct bodies written per second of run")
    ap.add_argument("--python-load", action="store_true", help="use the Python load generator even if wrk is there")
    args = ap.parse_args()

    wrk = None if args.python_load else shutil.which("wrk")
    tmp = Path(tempfile.mkdtemp(prefix="inbox-bench-"))
    db_path = tmp / "inbox.sqlite3"
    db_url = f"sqlite://{db_path}"
    asyncio.run(seed(db_url, args.automations))
    bot, bare, port_bot, port_bare = start_servers(tmp, db_url)
    try:
        wait_http(f"http://127.0.0.1:{port_bot}/healthz")
        time.sleep(0.5)
        driver = (
            f"wrk ({wrk}), pre-signed distinct bodies"
            if wrk
            else "FALLBACK: the Python load generator (wrk not found) — it caps the baseline; install wrk"
        )
        print(
            f"ingest benchmark: {args.concurrency} connections, {args.seconds:.0f} s each, {args.automations} "
            f"enabled automations, SQLite synchronous=FULL, {os.cpu_count()} cores (load average "
            f"{os.getloadavg()[0]:.1f}: other work on the machine lowers every figure)\nload: {driver}"
        )
        bare_url = f"http://127.0.0.1:{port_bare}/webhooks/bench"
        bot_url = f"http://127.0.0.1:{port_bot}/webhooks/bench"
        if wrk:
            base = measure_wrk(wrk, bare_url, "bare", args, tmp)
            ours = measure_wrk(wrk, bot_url, "bot", args, tmp)
        else:
            base = measure_python(bare_url, "bare", args)
            ours = measure_python(bot_url, "bot", args)
        print(base.line("baseline: bare aiohttp (parse the JSON, 200)"))
        print(ours.line(f"inbox-bot ingest (verify, store, 200){' on uvloop' if has_uvloop() else ''}"))
        print(f"ratio inbox-bot / bare: {ours.rate / base.rate:.3f}   (target >= 0.25, p99 <= 50 ms)")
        if wrk and has_uvloop():
            # inbox-bot serves on uvloop: the same bare server on uvloop, for the fair comparison
            port_fast = free_port()
            fast = subprocess.Popen([sys.executable, str(ROOT / "bench" / "_bare_server.py"), str(port_fast), "uvloop"])
            try:
                wait_port(port_fast)
                quick = measure_wrk(wrk, f"http://127.0.0.1:{port_fast}/webhooks/bench", "bare-uvloop", args, tmp)
            finally:
                fast.terminate()
                fast.wait(timeout=30)
            print(quick.line("reference: bare aiohttp on uvloop"))
            print(f"ratio inbox-bot / bare on uvloop: {ours.rate / quick.rate:.3f}   (for reference)")
    finally:
        for p in (bot, bare):
            p.terminate()
        for p in (bot, bare):
            p.wait(timeout=30)
    con = sqlite3.connect(db_path)
    stored = con.execute("SELECT count(*) FROM messages WHERE direction='inbound'").fetchone()[0]
    distinct = con.execute("SELECT count(DISTINCT platform_id) FROM messages WHERE direction='inbound'").fetchone()[0]
    runs = con.execute("SELECT count(*) FROM automation_runs").fetchone()[0]
    con.close()
    lost = ours.acked - stored
    print(
        f"acknowledged {ours.acked}, stored {stored} ({distinct} distinct ids), lost {max(lost, 0)}, "
        f"automation runs {runs}: " + ("acknowledged = stored" if lost <= 0 and distinct == stored else "MISMATCH")
    )
    if lost > 0 or distinct != stored:
        raise SystemExit("acknowledged messages are missing from the store, or stored twice")


if __name__ == "__main__":
    main()
