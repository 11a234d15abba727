"""A small closed-loop HTTP load generator shared by the benchmarks (aiohttp client, one process).

Each of `concurrency` senders posts its next pre-built request as soon as the previous one was
answered, for `seconds`; it reports requests/s and latency percentiles. The same generator
drives the baseline (a bare aiohttp handler) and the system under test in one run, so both pay
the same client cost. The ratio is not a fair measure of the server alone: the generator shares
the machine's two cores with the server, which caps the baseline (about 10,700 req/s here, where
wrk reaches 24,000) more than the slower system under test, so the ratio flatters the server.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp


@dataclass
class LoadResult:
    requests: int
    errors: int
    acked: int  # every 2xx answer, warm-up included (to check they were all committed)
    seconds: float
    latencies_ms: list[float]

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def pct(self, p: float) -> float:
        if not self.latencies_ms:
            return 0.0
        data = sorted(self.latencies_ms)
        return data[min(len(data) - 1, int(len(data) * p / 100))]

    def line(self, label: str) -> str:
        return (
            f"{label:<34} {self.rate:9.0f} req/s   p50 {statistics.median(self.latencies_ms):6.2f} ms"
            f"   p99 {self.pct(99):6.2f} ms   errors {self.errors}"
        )


async def run_load(
    url: str,
    make_request: Callable[[int], tuple[bytes, dict[str, str]]],
    *,
    concurrency: int = 32,
    seconds: float = 5.0,
    warmup: float = 1.0,
    expect_status: int = 200,
) -> LoadResult:
    """POST `make_request(i)` bodies to `url` from `concurrency` senders; measured after `warmup`."""
    counter = 0
    latencies: list[float] = []
    errors = 0
    acked = 0
    measuring = False
    stop_at = 0.0
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def sender() -> None:
            nonlocal counter, errors, acked
            while time.perf_counter() < stop_at:
                i = counter
                counter += 1
                body, headers = make_request(i)
                t0 = time.perf_counter()
                async with session.post(url, data=body, headers=headers) as resp:
                    await resp.read()
                    ok = resp.status == expect_status
                    acked += ok
                if measuring:
                    latencies.append((time.perf_counter() - t0) * 1000)
                    if not ok:
                        errors += 1

        stop_at = time.perf_counter() + warmup + seconds
        tasks = [asyncio.create_task(sender()) for _ in range(concurrency)]
        await asyncio.sleep(warmup)
        measuring = True
        t_start = time.perf_counter()
        n_before = len(latencies)
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - t_start
    return LoadResult(len(latencies) - n_before, errors, acked, elapsed, latencies[n_before:])
