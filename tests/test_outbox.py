"""The durable outbox: claims (SKIP LOCKED on PostgreSQL), leases, ordering, backoff, failing for good,
surviving restarts — with real stores, and over the API / `inbox-bot check` as users see it."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web

from bot.check import run_check
from bot.config import Settings
from bot.metrics import Metrics
from bot.outbox import Outbox, PermanentFailure
from bot.store import db, models, repo
from tests.conftest import STORES, Bot, eventually, make_settings

MakeBot = Callable[[Settings], Awaitable[Bot]]
PG_ONLY = [pytest.param("postgres", marks=pytest.mark.postgres)]
BOTH = STORES


# --- claiming on PostgreSQL ---------------------------------------------------------------------


@pytest.mark.parametrize("db_url", PG_ONLY, indirect=True)
async def test_two_workers_run_each_job_exactly_once(db_url: str) -> None:
    async with db.open_store(db_url, pool_max=10):
        for i in range(120):
            key = f"k{i % 7}" if i % 3 == 0 else None  # some jobs share an ordering key
            await repo.enqueue("t", {"n": i}, ordering_key=key)
        runs: list[tuple[str, int]] = []

        def handler(worker: str) -> Callable[[dict[str, Any]], Awaitable[None]]:
            async def run(payload: dict[str, Any]) -> None:
                runs.append((worker, int(payload["n"])))
                await asyncio.sleep(0)  # let the other worker claim meanwhile

            return run

        workers = []
        for name in ("a", "b"):
            w = Outbox(metrics=Metrics(), skip_locked=True, batch=8)
            w.register("t", handler(name))
            workers.append(w)

        async def work(w: Outbox) -> None:
            idle = 0
            while idle < 3:  # a few empty claims in a row: the other worker has the rest
                idle = 0 if await w.run_once() else idle + 1
                await asyncio.sleep(0)

        await asyncio.gather(*(work(w) for w in workers))
        counts = Counter(n for _, n in runs)
        assert sorted(counts) == list(range(120))
        assert set(counts.values()) == {1}
        assert await repo.count_jobs("done") == 120


@pytest.mark.parametrize("db_url", PG_ONLY, indirect=True)
async def test_a_locked_job_is_skipped_not_waited_for(db_url: str) -> None:
    async with db.open_store(db_url, pool_max=10):
        first = await repo.enqueue("t", {})
        second = await repo.enqueue("t", {})
        locked, release = asyncio.Event(), asyncio.Event()

        async def hold() -> None:
            async with repo.transaction():
                # another worker's claim, holding the row's lock (the ORM row: only the store has them)
                await models.OutboxJob.filter(id=first.id).select_for_update().first()
                locked.set()
                await release.wait()

        holder = asyncio.create_task(hold())
        await locked.wait()
        try:
            claimed = await asyncio.wait_for(repo.claim_jobs(limit=10, lease_seconds=60, skip_locked=True), 10)
            assert [j.id for j in claimed] == [second.id]
        finally:
            release.set()
            await holder


# --- leases, ordering, backoff -------------------------------------------------------------------


@pytest.mark.parametrize("db_url", BOTH, indirect=True)
async def test_lease_and_ordering_key(db_url: str) -> None:
    async with db.open_store(db_url):
        a = await repo.enqueue("t", {}, ordering_key="crm:1")
        b = await repo.enqueue("t", {}, ordering_key="crm:1")
        c = await repo.enqueue("t", {}, ordering_key="crm:2")
        claimed = await repo.claim_jobs(limit=10, lease_seconds=0, skip_locked=True)
        assert {j.id for j in claimed} == {a.id, c.id}  # b waits for a
        # A crashed worker: the lease ran out, so the same jobs are due again — still not b.
        again = await repo.claim_jobs(limit=10, lease_seconds=60, skip_locked=True)
        assert {j.id for j in again} == {a.id, c.id}
        (a_again,) = [j for j in again if j.id == a.id]
        assert await repo.finish_job(a_again)
        assert [j.id for j in await repo.claim_jobs(limit=10, lease_seconds=60, skip_locked=True)] == [b.id]


def test_backoff_grows_with_jitter_and_is_capped() -> None:
    box = Outbox(metrics=Metrics(), skip_locked=False, base_delay=1.0, max_delay=30.0)
    for attempts in range(1, 12):
        cap = min(30.0, 2.0 ** (attempts - 1))
        delays = {box._delay(attempts) for _ in range(50)}
        assert all(cap / 2 <= d <= cap for d in delays)
        assert len(delays) > 1  # jitter


async def test_retries_then_fails_for_good_visible_in_api_and_check(
    make_bot: MakeBot, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = make_settings(db_url)
    bot = await make_bot(settings)
    calls: list[int] = []
    healthy = False

    async def flaky(payload: dict[str, Any]) -> None:
        calls.append(1)
        if not healthy:
            raise ConnectionError("remote is down")

    bot.state.outbox.register("test_flaky", flaky)
    job = await repo.enqueue("test_flaky", {"x": 1}, conversation_id=None)
    bot.state.outbox.wake()

    async def failed() -> bool:
        return bool((await bot.api("GET", "/api/outbox?status=failed"))["items"])

    await eventually(failed, "the job failed for good")
    (item,) = (await bot.api("GET", "/api/outbox?status=failed"))["items"]
    assert item["id"] == job.id
    assert item["attempts"] == settings.outbox.max_attempts == len(calls)
    assert "ConnectionError: remote is down" in item["last_error"]

    await bot.client.close()  # check opens the store itself
    assert await run_check(settings) == 1
    assert "outbox: FAIL 1 job(s) failed for good" in capsys.readouterr().out

    bot = await make_bot(settings)
    bot.state.outbox.register("test_flaky", flaky)
    healthy = True
    await bot.api("POST", f"/api/outbox/{job.id}/retry")

    async def done() -> bool:
        return (await repo.get_job(job.id)).status == "done"  # type: ignore[union-attr]

    await eventually(done, "the retried job ran")


async def test_permanent_failure_is_not_retried(make_bot: MakeBot, db_url: str) -> None:
    bot = await make_bot(make_settings(db_url))
    calls: list[int] = []

    async def broken(payload: dict[str, Any]) -> None:
        calls.append(1)
        raise PermanentFailure("bad request")

    bot.state.outbox.register("test_broken", broken)
    job = await repo.enqueue("test_broken", {})
    bot.state.outbox.wake()

    async def failed() -> bool:
        return (await repo.get_job(job.id)).status == "failed"  # type: ignore[union-attr]

    await eventually(failed, "failed")
    assert len(calls) == 1


# --- channel replies survive a restart --------------------------------------------------------


async def test_reply_survives_restart_and_is_sent_once(make_bot: MakeBot, db_url: str, aiohttp_server: Any) -> None:
    received: list[dict[str, Any]] = []
    up = False

    async def reply_url(request: web.Request) -> web.Response:
        if not up:
            return web.json_response({"error": "maintenance"}, status=503)
        received.append(json.loads(await request.read()))
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/replies", reply_url)
    server = await aiohttp_server(app)
    settings = make_settings(
        db_url,
        outbox={"max_attempts": 50, "base_delay": 0.02, "max_delay": 0.05},
        channels=[
            {"name": "shop", "kind": "webhook", "secret_env": "TEST_SHOP_SECRET",
             "reply_url": str(server.make_url("/replies"))},
        ],
    )  # fmt: skip
    bot = await make_bot(settings)
    cid = (await bot.webhook("hello"))["conversation_id"]
    await bot.api("POST", f"/api/conversations/{cid}/messages", json={"text": "Hi Marie"}, expect=201)

    async def retried() -> bool:
        jobs = (await bot.api("GET", f"/api/outbox?conversation_id={cid}"))["items"]
        return any(j["kind"] == "reply" and j["attempts"] >= 1 for j in jobs)

    await eventually(retried, "the reply was tried while the remote is down")
    await bot.client.close()  # the server stops with the reply still pending

    up = True
    bot = await make_bot(settings)

    async def delivered() -> bool:
        return bool(await bot.delivered(cid))

    await eventually(delivered, "the reply went out after the restart")
    assert [r["text"] for r in received] == ["Hi Marie"]


# --- fairness and leases (review findings) ----------------------------------------------------------


@pytest.mark.parametrize("db_url", BOTH, indirect=True)
async def test_jobs_queued_behind_a_backed_off_key_do_not_starve_other_work(db_url: str) -> None:
    """A Salesforce outage leaves one crm key backing off with many jobs queued behind it; a reply
    on another conversation must still be claimed."""
    async with db.open_store(db_url):
        head = await repo.enqueue("crm_sync", {}, ordering_key="crm:1")
        (claimed,) = await repo.claim_jobs(limit=1, lease_seconds=60, skip_locked=True)
        assert claimed.id == head.id
        assert await repo.retry_job(claimed, attempts=1, delay=3600, error="down", failed=False)
        for _ in range(80):
            await repo.enqueue("crm_sync", {}, ordering_key="crm:1")
        reply = await repo.enqueue("reply", {}, ordering_key="reply:2")
        got = await repo.claim_jobs(limit=16, lease_seconds=60, skip_locked=True)
        assert [j.id for j in got] == [reply.id]


@pytest.mark.parametrize("db_url", BOTH, indirect=True)
async def test_a_worker_that_lost_its_lease_cannot_finish_the_job(db_url: str) -> None:
    async with db.open_store(db_url):
        await repo.enqueue("t", {})
        (stale,) = await repo.claim_jobs(limit=1, lease_seconds=0, skip_locked=True)
        await asyncio.sleep(0.01)
        (fresh,) = await repo.claim_jobs(limit=1, lease_seconds=60, skip_locked=True)  # lease ran out
        assert fresh.id == stale.id
        assert not await repo.finish_job(stale)
        assert not await repo.renew_job(stale, lease_seconds=60)
        assert await repo.finish_job(fresh)


async def test_a_long_job_keeps_its_lease_and_runs_once(db_url: str) -> None:
    """Two workers, a handler slower than the lease: renewal keeps the second worker off it."""
    async with db.open_store(db_url):
        await repo.enqueue("slow", {})
        runs: list[int] = []

        release = asyncio.Event()

        async def slow(payload: dict[str, Any]) -> None:
            runs.append(1)
            await release.wait()  # runs until the test lets it finish, however slow the machine

        # a lease long enough that a busy machine still renews in time (every lease/3 s)
        boxes = [Outbox(metrics=Metrics(), skip_locked=True, lease_seconds=3.0) for _ in range(2)]
        for box in boxes:
            box.register("slow", slow)
        first = asyncio.create_task(boxes[0].run_once())

        async def claimed() -> Any:
            (job,) = await repo.list_jobs()
            return job.locked_until if runs else None

        first_lease = await eventually(claimed, "the first worker to take the job")

        async def past_first_lease() -> bool:  # bounded polling on the store's own clock
            (job,) = await repo.list_jobs()
            return job.locked_until is not None and job.locked_until > first_lease and datetime.now(UTC) > first_lease

        await eventually(past_first_lease, "the first lease to run out and be renewed", tries=1500)
        assert await boxes[1].run_once() == 0  # only renewal keeps the job: the second worker gets nothing
        release.set()
        assert await first == 1
        assert runs == [1]
        assert [j.status for j in await repo.list_jobs()] == ["done"]
