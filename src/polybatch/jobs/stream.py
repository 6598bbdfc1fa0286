"""Results as each chunk lands: the ``on_result`` / ``on_error`` callbacks of ``Job.wait`` and
``Job.stream`` / ``Job.astream``.

A result is handed over once it is final, as soon as its chunk is collected, while the job's
other batches still run: a success at once; a failure at once unless a retry round will send it
again (then its last round's outcome is handed over instead). Each call of ``wait`` / ``stream``
hands over every final result of the job once, those of chunks collected before the call
included, so a caller that resumes a job (after a crash, or an exception in its own callback)
gets the whole job again, in chunk order (input order within a chunk). Memory: one chunk's
index of delivered chunks (ints), results read one line at a time from the chunk's file.

A callback that raises stops the waiting: the exception propagates out of ``wait`` /
``stream``, nothing is lost at the provider or in the ledger, and the job stays resumable
(``Job.load(job_id).wait(on_result=...)`` or ``polybatch resume JOB``).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ..items import BatchResult
from .files import retryable

if TYPE_CHECKING:
    from .driver import JobDriver
    from .ledger import ChunkRow

#: a callback taking one result; sync, or async (its awaitable is awaited)
ResultCallback = Callable[[BatchResult], Awaitable[Any] | Any]

#: results an ``astream`` consumer may lag behind the job before the job waits for it
STREAM_BUFFER = 256


class Deliveries:
    """Hands the final results of each collected chunk to ``on_result`` / ``on_error``."""

    def __init__(self, on_result: ResultCallback | None, on_error: ResultCallback | None) -> None:
        self.on_result = on_result
        self.on_error = on_error
        self.delivered: set[int] = set()
        #: chunks whose retryable failures were held back for a retry round
        self.deferred: set[int] = set()

    @property
    def active(self) -> bool:
        return self.on_result is not None or self.on_error is not None

    async def after_step(self, driver: JobDriver, done: bool) -> None:
        """Deliver the chunks collected since the last call; when the job is ``done``, also the
        held-back failures of its last round (no round came to retry them)."""
        if not self.active:
            return
        driver.refresh()
        chunks = driver.chunks()
        rounds = int(driver.row.options.get("retry_failed") or 0)
        for c in chunks:
            if c.state == "collected" and c.idx not in self.delivered:
                self.delivered.add(c.idx)
                # a cancelled job plans no retry round: its failures are final
                hold = c.round < rounds and driver.row.state not in ("cancelling", "cancelled")
                await self._chunk(driver, c, held=False, hold=hold)
        if done and chunks:
            last = max(c.round for c in chunks)
            for c in chunks:
                if c.idx in self.deferred and c.round == last:
                    self.deferred.discard(c.idx)
                    await self._chunk(driver, c, held=True, hold=False)

    async def _chunk(self, driver: JobDriver, c: ChunkRow, *, held: bool, hold: bool) -> None:
        """Hand over chunk ``c``'s results: with ``held``, only its held-back failures; with
        ``hold``, all but the failures a retry round will send again."""
        with driver.files.chunk_results(c.idx).open("r", encoding="utf-8") as fh:
            for line in fh:
                r = BatchResult.model_validate_json(line)
                again = retryable(r)
                if held and not again:
                    continue
                if hold and again:
                    self.deferred.add(c.idx)
                    continue
                await _call(self.on_result if r.ok else self.on_error, r)


async def _call(callback: ResultCallback | None, result: BatchResult) -> None:
    if callback is None:
        return
    outcome = callback(result)
    if inspect.isawaitable(outcome):
        await outcome


async def astream(
    wait: Callable[[Deliveries], Awaitable[Any]], *, errors: bool = True
) -> AsyncIterator[BatchResult]:
    """Drive a job with ``wait`` (its waiting loop, given the deliveries) and yield each final
    result as its chunk lands; with ``errors=False``, only the successes. A consumer that falls
    behind by :data:`STREAM_BUFFER` results holds the job's waiting back (constant memory)."""
    queue: asyncio.Queue[BatchResult | None] = asyncio.Queue(STREAM_BUFFER)
    deliveries = Deliveries(queue.put, queue.put if errors else None)

    async def drive() -> None:
        # the end mark follows the last result; not after a cancel (the consumer has left)
        try:
            await wait(deliveries)
        except Exception:
            await queue.put(None)
            raise
        await queue.put(None)

    task = asyncio.ensure_future(drive())
    try:
        while (r := await queue.get()) is not None:
            yield r
        await task  # re-raises what stopped the job
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
