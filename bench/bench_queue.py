"""Queue and search benchmark: the first page of `GET /api/conversations` on a large store, SQLite
and PostgreSQL, beside the naive way of searching in the same run.

    python bench/bench_queue.py [--conversations 100000] [--messages-per-conversation 10]
                                [--samples 100] [--stores sqlite,postgres]
                                [--postgres postgres://postgres@127.0.0.1:5432/postgres]

Builds a store of `--conversations` conversations and ten times as many messages in bulk (raw
multi-row INSERTs; the full-text index filled through `bot.store.search.index_messages` with
`bot.engine.search.document`, as ingest does), each store in a place of its own (a temporary
SQLite file; a PostgreSQL database created for the run and dropped after). Then times what the
list handler does for one page — the inbox service's query and the page's JSON (contacts, labels,
teams, assignees) — without the HTTP framing:

- `sort=queue` on the open conversations, alone, with `team=`, with `priority=`, with both, and
  a page deep in the queue (through its cursor);
- `q=` with one word and with two words of middling frequency (each in about 1 % of the messages),
  and with two common words (each in 2-6 %), newest first, beside the same page found the naive
  way: an unindexed `lower(text) LIKE '%word%'` scan over the messages.

Prints p50/p95 per query and the naive/indexed ratio. Targets: queue page p95 <= 50 ms, search
p95 <= 100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._stores import bench_store  # noqa: E402
from bot.domain import QueueKey  # noqa: E402
from bot.engine.search import document, terms  # noqa: E402

TEAMS = ("Billing", "Support", "Sales", "Shipping", "Returns")
PRIORITY_WEIGHTS = (5, 15, 60, 20)  # urgent, high, normal, low (%)
OPEN_SHARE = 0.4
VOCABULARY = 4000
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
TARGET_QUEUE_MS = 50.0
TARGET_SEARCH_MS = 100.0


def words(n: int, rnd: random.Random) -> list[str]:
    """`n` distinct pronounceable words (a synthetic vocabulary; rank 0 is the most frequent)."""
    onsets, vowels, codas = "bcdfghjklmnprstvz", "aeiou", ["", "n", "r", "s", "l", "t"]
    out: dict[str, None] = {}
    while len(out) < n:
        syllables = rnd.randint(2, 3)
        out["".join(rnd.choice(onsets) + rnd.choice(vowels) + rnd.choice(codas) for _ in range(syllables))] = None
    return list(out)


class Texts:
    """Message texts with word frequencies that fall off like a real language's (Zipf)."""

    def __init__(self, rnd: random.Random) -> None:
        self.rnd = rnd
        self.vocabulary = words(VOCABULARY, rnd)
        self.weights = [1.0 / (rank + 1) for rank in range(VOCABULARY)]
        self._cum = list(_accumulate(self.weights))

    def text(self) -> str:
        chosen = self.rnd.choices(self.vocabulary, cum_weights=self._cum, k=self.rnd.randint(5, 20))
        return " ".join(chosen).capitalize() + "."

    def query_words(self, low: int, high: int, k: int) -> list[str]:
        """`k` words of middling frequency (ranks `low` to `high`): what people search for."""
        return self.rnd.sample(self.vocabulary[low:high], k)


def _accumulate(values: Sequence[float]) -> list[float]:
    total, out = 0.0, []
    for v in values:
        total += v
        out.append(total)
    return out


# --- building the store ---------------------------------------------------------------------------


class Loader:
    """Multi-row INSERTs through the store's own connection, a batch per transaction."""

    def __init__(self, sqlite: bool) -> None:
        self.sqlite = sqlite

    @property
    def conn(self) -> Any:
        from tortoise import connections

        return connections.get("default")  # inside in_transaction: the transaction's connection

    def stamp(self, dt: datetime | None) -> Any:
        # the text Tortoise writes on SQLite (str of an aware datetime); a datetime for asyncpg
        return None if dt is None else (str(dt) if self.sqlite else dt)

    async def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        per_statement = max(1, 30000 // len(columns))  # PostgreSQL binds at most 32,767 values
        for start in range(0, len(rows), per_statement):
            chunk = rows[start : start + per_statement]
            params: list[Any] = []
            groups = []
            for row in chunk:
                marks = []
                for value in row:
                    params.append(value)
                    marks.append("?" if self.sqlite else f"${len(params)}")
                groups.append("(" + ", ".join(marks) + ")")
            sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES {', '.join(groups)}"
            await self.conn.execute_query(sql, params)


async def build(url: str, *, conversations: int, per_conversation: int, seed: int = 11) -> Texts:
    from tortoise.transactions import in_transaction

    from bot.store import db, search

    sqlite = url.startswith("sqlite")
    await db.migrate(url)
    rnd = random.Random(seed)
    texts = Texts(rnd)
    started = time.perf_counter()

    def progress(what: str, done: int, total: int) -> None:
        print(f"  {what:<22} {done:>9,} / {total:,}   {time.perf_counter() - started:6.0f} s", flush=True)

    async with db.open_store(url, pool_max=4):
        load = Loader(sqlite)
        created = load.stamp(NOW - timedelta(days=30))
        async with in_transaction("default"):
            await load.insert("teams", ["name", "key", "created_at"], [(t, t.casefold(), created) for t in TEAMS])
            await load.insert(
                "users",
                ["email", "email_key", "name", "role", "active", "password_hash", "session_epoch", "created_at",
                 "updated_at"],
                [(f"agent{i}@example.com", f"agent{i}@example.com", f"Agent {i}", "agent", True, "-", 0, created,
                  created) for i in range(1, 21)],
            )  # fmt: skip
            await load.insert(
                "labels",
                ["kind", "name", "key", "priority", "created_at"],
                [("tag", "vip", "vip", 2, created)] + [("topic", t, t.casefold(), 2, created) for t in TEAMS],
            )
        batch = 5000
        message_id = 0
        total_messages = conversations * per_conversation
        # messages per conversation: 1 to twice the mean, adjusted so the total is exact
        counts = [rnd.randint(1, max(1, 2 * per_conversation - 1)) for _ in range(conversations)]
        gap = total_messages - sum(counts)
        while gap:
            i = rnd.randrange(conversations)
            if gap > 0 or counts[i] > 1:
                counts[i] += 1 if gap > 0 else -1
                gap += -1 if gap > 0 else 1
        for first in range(1, conversations + 1, batch):
            ids = range(first, min(first + batch, conversations + 1))
            contacts, convs, msgs, index, topics, tags = [], [], [], [], [], []
            for cid in ids:
                name = f"{rnd.choice(texts.vocabulary[:500]).capitalize()} {rnd.choice(texts.vocabulary).capitalize()}"
                contacts.append((cid, "shop", f"c-{cid}", name, name.casefold(), created))
                opened = NOW - timedelta(seconds=rnd.randint(60, 30 * 86400))
                is_open = rnd.random() < OPEN_SHARE
                n = counts[cid - 1]
                last_outbound = rnd.random() < 0.3
                moment = opened
                waiting: datetime | None = None
                for k in range(n):
                    message_id += 1
                    outbound = k == n - 1 and last_outbound and n > 1
                    moment += timedelta(seconds=rnd.randint(1, 3600))
                    text = texts.text()
                    msgs.append((message_id, cid, "shop", None if outbound else f"m-{message_id}",
                                 "outbound" if outbound else "inbound", text, load.stamp(moment),
                                 "sent" if outbound else None, load.stamp(moment)))  # fmt: skip
                    index.append((message_id, cid, document(text)))
                    if not outbound and waiting is None:
                        waiting = moment
                    if rnd.random() < 0.02:
                        tags.append((message_id, cid, "vip", "vip"))
                if last_outbound and n > 1:
                    waiting = None
                priority = rnd.choices(range(4), weights=PRIORITY_WEIGHTS)[0]
                team = rnd.randint(1, len(TEAMS)) if rnd.random() < 0.8 else None
                if team is not None:
                    topics.append((cid, TEAMS[team - 1], TEAMS[team - 1].casefold()))
                assignee = rnd.randint(1, 20) if rnd.random() < 0.5 else None
                status, open_key = ("open", f"shop\x1ft-{cid}") if is_open else ("resolved", None)
                since = load.stamp(waiting if is_open else None)
                convs.append((cid, "shop", f"t-{cid}", open_key, "direct", status, cid, "[]", "{}", priority, team,
                              assignee, since, load.stamp(opened), load.stamp(moment)))  # fmt: skip
            async with in_transaction("default"):
                await load.insert("contacts", ["id", "channel", "platform_id", "name", "name_key", "created_at"],
                                  contacts)  # fmt: skip
                await load.insert(
                    "conversations",
                    ["id", "channel", "thread_key", "open_key", "type", "status", "contact_id", "keyword_progress",
                     "reply_to", "priority", "team_id", "assignee_id", "waiting_since", "created_at", "updated_at"],
                    convs,
                )  # fmt: skip
                await load.insert(
                    "messages",
                    ["id", "conversation_id", "channel", "platform_id", "direction", "text", "sent_at", "delivery",
                     "created_at"],
                    msgs,
                )  # fmt: skip
                await load.insert("conversation_topics", ["conversation_id", "name", "key"], topics)
                await load.insert("message_tags", ["message_id", "conversation_id", "name", "key"], tags)
                await search.index_messages(index)
            progress("conversations", ids[-1], conversations)
            progress("messages", message_id, total_messages)
        if not sqlite:  # identity columns continue after the ids written here
            for table in ("contacts", "conversations", "messages"):
                await load.conn.execute_script(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT MAX(id) FROM {table}))"
                )
        await load.conn.execute_script("ANALYZE")  # the planner's statistics, as autovacuum keeps them
        print(f"  built: {conversations:,} conversations, {message_id:,} messages in "
              f"{time.perf_counter() - started:.0f} s", flush=True)  # fmt: skip
    return texts


# --- timing ---------------------------------------------------------------------------------------------


def pct(samples: Sequence[float], p: float) -> float:
    data = sorted(samples)
    return data[min(len(data) - 1, int(len(data) * p / 100))]


async def timed(fn: Callable[[int], Awaitable[int]], samples: int) -> tuple[list[float], int]:
    """Milliseconds per call (one warm-up call first) and the rows of the last call."""
    rows = await fn(0)
    out = []
    for i in range(samples):
        t = time.perf_counter()
        rows = await fn(i)
        out.append((time.perf_counter() - t) * 1000)
    return out, rows


async def measure(url: str, texts: Texts, *, samples: int, naive_samples: int) -> list[tuple[str, list[float], int]]:
    from tortoise.expressions import RawSQL

    from bot.front import views
    from bot.metrics import Metrics
    from bot.services.inbox import Inbox
    from bot.store import db, records
    from bot.store.models import Conversation

    inbox = Inbox(rules=lambda: None, metrics=Metrics())  # type: ignore[arg-type, return-value]
    # words people search for: the middle of the vocabulary (ranks 100-400, each in about 1 % of the
    # messages); and pairs of common words (ranks 20-100, each in 2-6 %), the hard case
    one_word = texts.query_words(100, 400, 20)
    two_words = [" ".join(texts.query_words(100, 400, 2)) for _ in range(20)]
    two_common = [" ".join(texts.query_words(20, 100, 2)) for _ in range(20)]
    results: list[tuple[str, list[float], int]] = []

    async with db.open_store(url, pool_max=4):

        async def page(**kw: Any) -> int:
            convs = await inbox.conversations(limit=51, **kw)
            await views.conversations_json(convs[:50])
            return len(convs[:50])

        deep: QueueKey | None = None
        for _ in range(20):  # 20 pages into the queue: where a cursor takes a reader who keeps going
            convs = await inbox.conversations(status="open", queue_order=True, after=deep, limit=51)
            if len(convs) < 51:
                break
            deep = convs[49].queue_key

        queries: list[tuple[str, Callable[[int], Awaitable[int]]]] = [
            ("queue", lambda i: page(status="open", queue_order=True)),
            ("queue team=", lambda i: page(status="open", queue_order=True, team=TEAMS[i % len(TEAMS)])),
            ("queue priority=high", lambda i: page(status="open", queue_order=True, priority="high")),
            ("queue team= priority=urgent",
             lambda i: page(status="open", queue_order=True, team=TEAMS[i % len(TEAMS)], priority="urgent")),
            ("queue page 21 (cursor)", lambda i: page(status="open", queue_order=True, after=deep)),
            ("q= one word", lambda i: page(q=one_word[i % len(one_word)])),
            ("q= two words", lambda i: page(q=two_words[i % len(two_words)])),
            ("q= two common words", lambda i: page(q=two_common[i % len(two_common)])),
        ]  # fmt: skip
        for label, fn in queries:
            ms, rows = await timed(fn, samples)
            results.append((label, ms, rows))
            print(f"  {label:<30} p50 {statistics.median(ms):7.1f} ms   p95 {pct(ms, 95):7.1f} ms   ({rows} rows)",
                  flush=True)  # fmt: skip

        def like(word: str) -> str:
            return f"SELECT conversation_id FROM messages WHERE lower(text) LIKE '%{word}%'"

        async def naive(query: str) -> int:
            sub = " INTERSECT ".join(like(t) for t in terms(query))
            rows = await Conversation.filter(id__in=RawSQL(f"({sub})")).order_by("-id").limit(51)
            await views.conversations_json([records.conversation(r) for r in rows[:50]])
            return len(rows[:50])

        for label, pool in (
            ("q= one word", one_word),
            ("q= two words", two_words),
            ("q= two common words", two_common),
        ):
            ms, rows = await timed(lambda i, pool=pool: naive(pool[i % len(pool)]), naive_samples)  # type: ignore[misc]
            results.append((f"{label}, naive LIKE scan", ms, rows))
            print(f"  {label + ', naive LIKE scan':<30} p50 {statistics.median(ms):7.1f} ms   "
                  f"p95 {pct(ms, 95):7.1f} ms   ({rows} rows)", flush=True)  # fmt: skip
    return results


def report(store: str, results: list[tuple[str, list[float], int]]) -> list[str]:
    by_label = {label: ms for label, ms, _ in results}
    lines = [f"{store}:", f"  {'first page of':<32} {'p50':>9} {'p95':>9}   target"]
    for label, ms, _ in results:
        if "naive" in label:
            continue
        target = TARGET_SEARCH_MS if label.startswith("q=") else TARGET_QUEUE_MS
        verdict = "ok" if pct(ms, 95) <= target else f"MISSED by {pct(ms, 95) - target:.0f} ms"
        lines.append(f"  {label:<32} {statistics.median(ms):7.1f}ms {pct(ms, 95):7.1f}ms   p95 <= {target:.0f} ms: "
                     f"{verdict}")  # fmt: skip
        naive = by_label.get(f"{label}, naive LIKE scan")
        if naive is not None:
            lines.append(
                f"  {'  naive LIKE scan':<32} {statistics.median(naive):7.1f}ms {pct(naive, 95):7.1f}ms   "
                f"indexed is {statistics.median(naive) / statistics.median(ms):.0f}x faster (p50), "
                f"{pct(naive, 95) / pct(ms, 95):.0f}x (p95)"
            )
    return lines


# --- main ---------------------------------------------------------------------------------------------


async def run_store(kind: str, args: argparse.Namespace, tmp: Path) -> list[str]:
    print(f"\n[{kind}] building {args.conversations:,} conversations ...", flush=True)
    async with bench_store(kind, name="bench_queue", tmp=tmp, postgres=args.postgres) as url:
        texts = await build(url, conversations=args.conversations, per_conversation=args.messages_per_conversation)
        print(f"[{kind}] timing {args.samples} samples per query ({args.naive_samples} for the naive scans)",
              flush=True)  # fmt: skip
        results = await measure(url, texts, samples=args.samples, naive_samples=args.naive_samples)
        return report(f"{kind} ({args.conversations:,} conversations)", results)


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--conversations", type=int, default=100_000)
    p.add_argument("--messages-per-conversation", type=int, default=10, help="on average (default 10)")
    p.add_argument("--samples", type=int, default=100)
    p.add_argument("--naive-samples", type=int, default=10)
    p.add_argument("--stores", default="sqlite,postgres")
    p.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432/postgres",
                   help="a PostgreSQL server where a database may be created (and dropped) for the run")  # fmt: skip
    args = p.parse_args()
    lines: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-queue-") as tmp:
        for kind in args.stores.split(","):
            lines += await run_store(kind.strip(), args, Path(tmp))
    print("\n" + "\n".join(lines))


if __name__ == "__main__":
    asyncio.run(main())
