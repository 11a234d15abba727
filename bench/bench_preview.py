"""Preview benchmark: an automation replayed over a large store, SQLite and PostgreSQL, beside the
live ingest's per-message evaluation of the same automation in the same run.

    python bench/bench_preview.py [--messages 1000000] [--per-conversation 5]
                                  [--stores sqlite,postgres]
                                  [--postgres postgres://postgres@127.0.0.1:5432/postgres]

Builds a store of `--messages` inbound messages (`--per-conversation` per conversation, texts of
60–120 characters from a synthetic vocabulary, about 10 % holding one of the keywords, 5 % with
accents, 2 % of the conversations naming all five keywords over their messages) in bulk
(multi-row INSERTs, as bench_queue.py does), each store in a place of its own (a temporary SQLite
file; a PostgreSQL database created for the run and dropped after). Then:

- **preview**: `Insight.preview` of a 5-keyword `match=all` automation (the case that needs each
  conversation's keyword progress) over every stored message, as `POST /api/automations/preview`
  runs it: messages scanned per second;
- **memory**: the process's resident memory, sampled every 20 ms during the preview: its peak
  above what it was when the preview began (the growth a preview costs, whatever the store's size);
- **live**: `RuleSet.evaluate` of the same automation on the same texts, one message at a time,
  as ingest does per message (no store round trip): messages per second, and the ratio.

Targets: preview >= 50,000 messages/s on SQLite, <= 50 MB growth.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._stores import bench_store  # noqa: E402
from bench.bench_queue import Loader  # noqa: E402
from bot.config import settings_from_dict  # noqa: E402
from bot.domain import Action, ActionType, ConversationType, MatchMode  # noqa: E402
from bot.engine.rules import Rule, RuleSet  # noqa: E402

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
KEYWORDS = ("refund", "invoice", "late delivery", "cancel", "remboursement")
TARGET_RATE = 50_000
TARGET_MB = 50.0
VOCABULARY = 3000


def vocabulary(rnd: random.Random) -> list[str]:
    onsets, vowels, codas = "bcdfghjklmnprstvz", "aeiou", ["", "n", "r", "s", "l", "t"]
    out: dict[str, None] = {}
    while len(out) < VOCABULARY:
        out["".join(rnd.choice(onsets) + rnd.choice(vowels) + rnd.choice(codas) for _ in range(rnd.randint(1, 3)))] = (
            None
        )
    return list(out)


def text(rnd: random.Random, words: list[str]) -> str:
    parts = [rnd.choice(words) for _ in range(rnd.randint(10, 18))]
    if rnd.random() < 0.10:
        parts.insert(
            rnd.randrange(len(parts)), rnd.choice(KEYWORDS).upper() if rnd.random() < 0.3 else rnd.choice(KEYWORDS)
        )
    if rnd.random() < 0.05:
        parts.append("très déçu, merci")
    return " ".join(parts).capitalize() + rnd.choice((".", "!", " ?", ""))


class RssPeak:
    """The process's resident memory sampled every 20 ms from a thread: the peak above the
    resident memory when started (what the measured work adds, whatever ran before it)."""

    def __init__(self) -> None:
        self._page = os.sysconf("SC_PAGE_SIZE")
        self._base = self._rss()
        self._peak = self._base
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _rss(self) -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * self._page

    def _watch(self) -> None:
        while not self._done.wait(0.02):
            self._peak = max(self._peak, self._rss())

    def stop(self) -> int:
        self._done.set()
        self._thread.join()
        return max(self._peak, self._rss()) - self._base


def the_rule() -> Rule:
    return Rule(
        id=1,
        name="Refunds",
        keywords=KEYWORDS,
        match=MatchMode.ALL,
        actions=(Action(ActionType.TAG, "vip"),),
        channels=frozenset({"shop"}),
        types=frozenset({ConversationType.DIRECT}),
    )


async def build(url: str, *, messages: int, per_conversation: int, seed: int = 7) -> list[str]:
    """Fill the store; returns a sample of the texts (for the live evaluation)."""
    from tortoise.transactions import in_transaction

    from bot.store import db

    sqlite = url.startswith("sqlite")
    await db.migrate(url)
    rnd = random.Random(seed)
    words = vocabulary(rnd)
    sample: list[str] = []
    started = time.perf_counter()
    conversations = messages // per_conversation
    async with db.open_store(url, pool_max=4):
        load = Loader(sqlite)
        batch = 4000
        mid = 0
        for first in range(1, conversations + 1, batch):
            ids = range(first, min(first + batch, conversations + 1))
            contacts, convs, msgs = [], [], []
            for cid in ids:
                opened = NOW - timedelta(seconds=rnd.randint(60, 20 * 86400))
                stamp = load.stamp(opened)
                contacts.append((cid, "shop", f"c-{cid}", None, None, stamp))
                convs.append((cid, "shop", f"t-{cid}", None, "direct", "resolved", cid, "[]", "{}", 2, stamp, stamp))
                moment = opened
                complaint = rnd.random() < 0.02  # names every keyword, one per message: `all` fires
                for k in range(per_conversation):
                    mid += 1
                    moment += timedelta(seconds=rnd.randint(1, 3600))
                    t = text(rnd, words)
                    if complaint:
                        t = f"{t} {KEYWORDS[k % len(KEYWORDS)]}"
                    if len(sample) < 100_000:
                        sample.append(t)
                    msgs.append((mid, cid, "shop", f"m-{mid}", "inbound", t, load.stamp(moment), load.stamp(moment)))
            async with in_transaction("default"):
                await load.insert(
                    "contacts", ["id", "channel", "platform_id", "name", "name_key", "created_at"], contacts
                )
                await load.insert(
                    "conversations",
                    ["id", "channel", "thread_key", "open_key", "type", "status", "contact_id", "keyword_progress",
                     "reply_to", "priority", "created_at", "updated_at"],
                    convs,
                )  # fmt: skip
                await load.insert(
                    "messages",
                    ["id", "conversation_id", "channel", "platform_id", "direction", "text", "sent_at", "created_at"],
                    msgs,
                )
            if (ids[-1] // batch) % 25 == 0 or ids[-1] == conversations:
                print(f"  messages {mid:>10,} / {messages:,}   {time.perf_counter() - started:6.0f} s", flush=True)
        if not sqlite:
            for table in ("contacts", "conversations", "messages"):
                await load.conn.execute_script(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT MAX(id) FROM {table}))"
                )
        await load.conn.execute_script("ANALYZE")
    print(f"  built: {mid:,} messages in {time.perf_counter() - started:.0f} s", flush=True)
    return sample


async def measure(url: str, sample: list[str], *, messages: int) -> list[str]:
    from bot.services.admin import Admin, RuleCache
    from bot.services.insight import Insight
    from bot.store import db

    settings = settings_from_dict({"database": {"url": url}, "organization": {"plan": "enterprise"}}, env={})
    insight = Insight(settings, Admin(settings, RuleCache(settings)))
    rule = the_rule()
    since = NOW - timedelta(days=365)
    async with db.open_store(url, pool_max=4):
        peak = RssPeak()
        started = time.perf_counter()
        out = await insight.preview(rule, since=since)
        seconds = time.perf_counter() - started
        growth_mb = peak.stop() / 1e6
        c = out.counts
        assert c.messages_scanned == messages, c.messages_scanned

    rules = RuleSet([rule])
    seen: frozenset[str] = frozenset()
    started = time.perf_counter()
    for i, t in enumerate(sample):
        seen = rules.evaluate(
            text=t, channel="shop", type=ConversationType.DIRECT, first_message=i % 5 == 0, seen=seen
        ).seen
    live_rate = len(sample) / (time.perf_counter() - started)
    rate = c.messages_scanned / seconds
    return [
        f"  preview: {c.messages_scanned:,} messages in {seconds:.1f} s = {rate:,.0f} messages/s "
        f"(target >= {TARGET_RATE:,}); would fire on {c.would_fire_messages:,} messages, "
        f"{c.would_fire_conversations:,} conversations",
        f"  peak memory growth during a preview: {growth_mb:.1f} MB (target <= {TARGET_MB:.0f} MB)",
        f"  live ingest evaluation of the same automation: {1e6 / live_rate:.2f} µs/message = {live_rate:,.0f} "
        f"messages/s; preview / live evaluation = {rate / live_rate:.2f}",
    ]


async def run_store(kind: str, args: argparse.Namespace, tmp: Path) -> list[str]:
    print(f"\n[{kind}] building {args.messages:,} messages ...", flush=True)
    async with bench_store(kind, name="bench_preview", tmp=tmp, postgres=args.postgres) as url:
        messages = (args.messages // args.per_conversation) * args.per_conversation
        sample = await build(url, messages=messages, per_conversation=args.per_conversation)
        print(f"[{kind}] previewing ...", flush=True)
        return [f"{kind} ({messages:,} messages)", *await measure(url, sample, messages=messages)]


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--messages", type=int, default=1_000_000)
    p.add_argument("--per-conversation", type=int, default=5)
    p.add_argument("--stores", default="sqlite,postgres")
    p.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432/postgres",
                   help="a PostgreSQL server where a database may be created (and dropped) for the run")  # fmt: skip
    args = p.parse_args()
    lines: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-preview-") as tmp:
        for kind in args.stores.split(","):
            lines += await run_store(kind.strip(), args, Path(tmp))
    print("\n" + "\n".join(lines))


if __name__ == "__main__":
    asyncio.run(main())
