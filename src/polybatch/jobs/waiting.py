"""The waiting loop of :meth:`Job.wait <polybatch.jobs.handle.Job.wait>`: step, show progress,
hand collected results over, back off between polls while no chunk changes state, and (with
webhooks on) sleep until the provider says a batch ended."""

from __future__ import annotations

import asyncio
import sys
import time
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from . import hooks, queue
from .status import request_counts
from .stream import Deliveries

if TYPE_CHECKING:
    from .driver import JobDriver
    from .handle import Job

#: default bounds of the adaptive poll interval, seconds: it starts at POLL_MIN after a chunk is
#: submitted or collected and triples while no chunk changes state (a batch's own progress does
#: not reset it), so a 10-minute batch is polled 8 times, its create's poll included (48 status
#: calls per batch-hour; the budget is 60)
POLL_MIN = 1.0
POLL_MAX = 300.0
POLL_GROWTH = 3.0


def next_interval(interval: float, changed: bool, poll_min: float, poll_max: float) -> float:
    """The wait before the next poll: ``poll_min`` after a chunk changed state, else longer."""
    return poll_min if changed else min(poll_max, interval * POLL_GROWTH)


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
    ``poll_max`` seconds (the job's options, else :data:`POLL_MIN` and :data:`POLL_MAX`); a
    tqdm bar on stderr with ``progress``; each step's collected results to ``deliveries``.
    TimeoutError past ``timeout``."""
    poll_min = poll_min if poll_min is not None else float(job.options.get("poll_min", POLL_MIN))
    poll_max = poll_max if poll_max is not None else float(job.options.get("poll_max", POLL_MAX))
    deadline = None if timeout is None else time.monotonic() + timeout
    interval = poll_min
    webhooks = hooks.settings()
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
            postfix: dict[str, object] = {
                "failed": failed,
                "chunks": ",".join(f"{k}={v}" for k, v in sorted(states.items())),
            }
            waiting = sum(queue.waiting(c) for c in chunks)
            if waiting:  # chunks the provider refused for a full queue, waiting for room
                postfix["queue_wait"] = waiting
            bar.set_postfix(postfix, refresh=False)
            bar.refresh()
            if deliveries is not None:
                await deliveries.after_step(driver, done=hint is None)
            if hint is None:
                return
            # a chunk submitted, refused or collected: look again soon; long batches: back off
            seen = tuple(sorted(states.items()))
            interval = next_interval(interval, seen != last_seen, poll_min, poll_max)
            last_seen = seen
            sleep = max(interval, hint)
            if webhooks.enabled and not any(c.state == "planned" for c in chunks):
                # the provider says when a batch ends: poll only as the fallback
                sleep = max(hint, webhooks.poll_interval_with_webhooks)
            if deadline is not None and time.monotonic() + sleep > deadline:
                if not webhooks.enabled or time.monotonic() >= deadline:
                    raise TimeoutError(f"job {job.id} not finished within {timeout}s")
                sleep = deadline - time.monotonic()  # a webhook may still come in time
            if webhooks.enabled:
                await hooks.sleep_until_webhook(job.ledger, job.id, sleep)
            else:
                await asyncio.sleep(sleep)
    finally:
        bar.close()
        await job._release_client()
