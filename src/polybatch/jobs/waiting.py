"""The waiting loop of :meth:`Job.wait <polybatch.jobs.handle.Job.wait>`: step, show progress,
hand collected results over, back off between polls while nothing changes."""

from __future__ import annotations

import asyncio
import sys
import time
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from .status import request_counts
from .stream import Deliveries

if TYPE_CHECKING:
    from .driver import JobDriver
    from .handle import Job

#: default bounds of the adaptive poll interval, seconds
POLL_MIN = 1.0
POLL_MAX = 60.0


async def until_done(
    job: Job,
    driver: JobDriver,
    *,
    progress: bool = False,
    timeout: float | None = None,
    poll_min: float | None = None,
    poll_max: float | None = None,
    deliveries: Deliveries | None = None,
) -> None:
    """Step ``job`` until its results are final, polling adaptively between ``poll_min`` and
    ``poll_max`` seconds (the job's options, else 1 and 60); a tqdm bar on stderr with
    ``progress``; each step's collected results to ``deliveries``. TimeoutError past
    ``timeout``."""
    poll_min = poll_min if poll_min is not None else float(job.options.get("poll_min", POLL_MIN))
    poll_max = poll_max if poll_max is not None else float(job.options.get("poll_max", POLL_MAX))
    deadline = None if timeout is None else time.monotonic() + timeout
    interval = poll_min
    bar = tqdm(
        total=driver.row.n_items,
        desc=f"{job.id} {job.provider_name}:{job.model}",
        unit="req",
        file=sys.stderr,
        disable=not progress,
        dynamic_ncols=True,
    )
    last_seen: tuple[Any, ...] = ()
    try:
        while True:
            hint = await job.astep()
            chunks = job.chunks()
            done = sum(
                c.count if c.state == "collected" else c.live_ok + c.live_failed
                for c in chunks
                if c.round == 0
            )
            failed = request_counts(job.ledger, driver.row, driver.files, chunks)[1]
            states: dict[str, int] = {}
            for c in chunks:
                states[c.state] = states.get(c.state, 0) + 1
            bar.n = min(done, driver.row.n_items)
            bar.set_postfix(
                failed=failed,
                chunks=",".join(f"{k}={v}" for k, v in sorted(states.items())),
                refresh=False,
            )
            bar.refresh()
            if deliveries is not None:
                await deliveries.after_step(driver, done=hint is None)
            if hint is None:
                return
            seen = (done, tuple(sorted(states.items())))
            if seen != last_seen:
                # progress (items done, or a chunk submitted or collected): look again soon
                interval = poll_min
                last_seen = seen
            else:
                interval = min(poll_max, interval * 1.5)  # long batches: back off, up to a cap
            sleep = max(interval, hint)
            if deadline is not None and time.monotonic() + sleep > deadline:
                raise TimeoutError(f"job {job.id} not finished within {timeout}s")
            await asyncio.sleep(sleep)
    finally:
        bar.close()
        await job._release_client()
