"""`inbox-bot serve` with an event-loop lag probe, for the benchmarks.

    python bench/_lag_server.py LAG_FILE --config config.toml serve

A task sleeps 1 ms at a time and records how late each wake-up is; every 50 ms it appends one
line "<unix time> <worst lateness in ms>" to LAG_FILE. A rule change that blocked the loop for
40 ms shows as a line of about 40.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot import cli


async def probe(path: Path) -> None:
    with path.open("a", buffering=1) as out:
        loop = asyncio.get_running_loop()
        window_end = loop.time() + 0.05
        worst = 0.0
        while True:
            before = loop.time()
            await asyncio.sleep(0.001)
            worst = max(worst, (loop.time() - before - 0.001) * 1000)
            if loop.time() >= window_end:
                out.write(f"{time.time():.3f} {worst:.2f}\n")
                worst = 0.0
                window_end = loop.time() + 0.05


def main() -> None:
    lag_file = Path(sys.argv[1])
    serve = cli._serve

    async def serve_with_probe(*args: Any, **kwargs: Any) -> None:
        task = asyncio.create_task(probe(lag_file))
        try:
            await serve(*args, **kwargs)
        finally:
            task.cancel()

    cli._serve = serve_with_probe
    sys.exit(cli.main(sys.argv[2:]))


if __name__ == "__main__":
    main()
