"""The step: advance a job once (recover, submit, poll, collect), with the transient-failure policy.

A :class:`JobDriver` works on a job's ledger rows and files only; the public handle
(:class:`~polybatch.jobs.handle.Job`) owns one and adds waiting, results and cancelling on top.
Every side effect is recorded in the ledger before it happens and again after, so a process that
dies at any point can be resumed by another without submitting anything twice.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Coroutine
from typing import Any

from ..errors import JobError, ProviderError, QueueFullError
from ..items import BatchResult, ItemError
from ..providers import META_CHUNK, META_JOB, BatchProvider, BatchStatus
from . import adopt, lost, queue
from .cancel import cancel_all
from .cleanup import delete_at_provider
from .collect import collect, crashpoint
from .files import JobFiles, private_fd
from .ledger import FINAL_STATES, ChunkRow, JobRow, Ledger
from .planner import PlannedChunk, chunk_items_file, iter_chunk_items
from .tally import Tally, add_line, batch_days, chunk_tally, day_of, round_tally

log = logging.getLogger("polybatch")

DEFAULT_MAX_IN_FLIGHT = 4
#: retryable failures in a row on one chunk before a step gives up and raises; with the
#: adaptive poll interval (capped at five minutes) that is over two hours of outage
MAX_TRANSIENT_FAILURES = 30
#: chunks downloaded and collected at once (one is read while the next downloads)
MAX_CONCURRENT_COLLECTS = 2
#: chunks whose calls (upload and create, poll) run at once: 500 batches in flight are polled
#: 32 at a time, not in one burst that times out at the server
MAX_CONCURRENT_LANES = 32


def planned_rows(
    job_id: str, chunks: list[PlannedChunk], *, round_: int, items_file: str, first_idx: int
) -> list[ChunkRow]:
    """Ledger rows for freshly planned chunks (numbered on from ``first_idx``)."""
    return [
        ChunkRow(
            job_id=job_id,
            idx=first_idx + i,
            round=round_,
            items_file=items_file,
            offset=pc.offset,
            start=pc.start,
            count=pc.count,
            nbytes=pc.nbytes,
            model=pc.model,
            tokens=pc.tokens,
        )
        for i, pc in enumerate(chunks)
    ]


class JobDriver:
    """Advances one job; ``provider`` is called for the adapter when one is needed."""

    def __init__(self, row: JobRow, ledger: Ledger, provider: Callable[[], BatchProvider]) -> None:
        self.row = row
        self.ledger = ledger
        self._provider = provider
        self.files = JobFiles.of(ledger, row)
        #: transient failures in a row per chunk; past the limit the job stops (resume later)
        self.failures: dict[int, int] = {}
        self.max_transient_failures = MAX_TRANSIENT_FAILURES
        self._collecting: asyncio.Semaphore | None = None

    @property
    def id(self) -> str:
        return self.row.id

    @property
    def provider(self) -> BatchProvider:
        return self._provider()

    def refresh(self) -> None:
        """Read the job's row again (another process may have moved it on)."""
        row = self.ledger.get_job(self.id)
        assert row is not None
        self.row = row

    def chunks(self) -> list[ChunkRow]:
        return self.ledger.chunks(self.id)

    # -- the step ---------------------------------------------------------------------------
    async def astep(self) -> float | None:
        """Advance the job once. Returns a suggested wait, None when done."""
        self.refresh()
        if self.row.state in FINAL_STATES:
            return None
        if self.row.state == "abandoned":
            raise JobError(
                f"job {self.id} was abandoned (`polybatch forget`): nothing more is sent or "
                "collected; run the input again with --new to start afresh"
            )
        max_in_flight = int(self.row.options.get("max_in_flight") or DEFAULT_MAX_IN_FLIGHT)
        retry_after: float | None = None
        # chunks whose create answer was lost; those with the same request count are rivals
        # for the same unnamed batches (see .adopt)
        lost = {c.idx: c for c in self.chunks() if c.state == "submitting"}
        for c in list(lost.values()):
            rivals = sum(o.count == c.count for o in lost.values()) - 1
            try:
                if await self._recover(c, rivals):
                    del lost[c.idx]
            except ProviderError as exc:
                # the lookup failed: the chunk stays "submitting", the next step looks again
                self._transient(c, "recover", exc)
        chunks = self.chunks()
        to_submit: list[ChunkRow] = []
        if self.row.state == "cancelling":
            for c in chunks:
                if c.state == "planned":
                    self._collect_unsubmitted(c)
        else:
            # within max_in_flight and the queue limit (max_enqueued_tokens), see .queue
            to_submit = queue.admit(self, chunks, max_in_flight)
            chunks = self.chunks()  # admission may have halved a chunk
        polled = [c for c in chunks if c.state == "submitted"]
        # made per step: a step may run on the portal's loop or on the caller's
        self._collecting = asyncio.Semaphore(MAX_CONCURRENT_COLLECTS)
        # each chunk's calls (upload and create, poll, download) run concurrently with the
        # others' on this loop, so that one chunk's results are read while the provider works on
        # the next; an adapter that cannot take concurrent calls sets ``concurrent_calls = False``
        lanes = [self._submit_and_poll(c) for c in to_submit] + [self._poll(c) for c in polled]
        if self.provider.concurrent_calls:
            room = asyncio.Semaphore(MAX_CONCURRENT_LANES)

            async def bounded(lane: Coroutine[Any, Any, float | None]) -> float | None:
                async with room:
                    return await lane

            outcomes = await asyncio.gather(*map(bounded, lanes), return_exceptions=True)
        else:
            outcomes = []
            for lane in lanes:
                try:
                    outcomes.append(await lane)
                except Exception as exc:  # re-raised below, as gather's would be
                    outcomes.append(exc)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
            if outcome is not None:
                retry_after = max(retry_after or 0, outcome)
        chunks = self.chunks()
        if all(c.state == "collected" for c in chunks):
            last_round = max(c.round for c in chunks)
            # local file work, as long as the job is big: off the loop
            await asyncio.to_thread(self._merge, last_round, chunks)
            if await asyncio.to_thread(self.plan_retry, last_round):
                return 0.0
            await self._finalize(last_round)
            return None
        return retry_after if retry_after is not None else 0.0

    async def _submit_and_poll(self, c: ChunkRow) -> float | None:
        """Submit a planned chunk, then poll it once; a suggested wait, if the provider gave one."""
        try:
            await self._submit(c)
        except QueueFullError as exc:  # refused at create: no batch was made
            await queue.refused(self, c, exc)
            return None
        except ProviderError as exc:
            # the chunk stays "submitting": the next step looks for the batch, then resubmits
            self._transient(c, "submit", exc)
            return None
        row = next(r for r in self.chunks() if r.idx == c.idx)
        return await self._poll(row)

    async def _poll(self, c: ChunkRow) -> float | None:
        """Poll a submitted chunk once and collect it if its batch has ended."""
        assert c.batch_id is not None
        try:
            st = await self.provider.apoll(c.batch_id)
        except QueueFullError as exc:  # accepted, then failed for the queue limit
            await queue.refused(self, c, exc)
            return None
        except ProviderError as exc:
            if lost.is_not_found(exc):  # gone at the provider: confirmed lost after a window
                lost.on_not_found(self, c, exc)
            else:
                self._transient(c, "polling", exc)
            return None
        if not st.terminal:
            self.failures.pop(c.idx, None)
        if st.state != c.batch_state:
            self.ledger.update_chunk(self.id, c.idx, batch_state=st.state, event="polled")
        if (st.output_file_id, st.error_file_id) != (c.output_file_id, c.error_file_id):
            self.ledger.update_chunk(
                self.id, c.idx, output_file_id=st.output_file_id, error_file_id=st.error_file_id
            )
        if (st.completed, st.failed) != (c.live_ok, c.live_failed):
            # the provider's progress, for status and the progress bar while the batch runs
            self.ledger.update_chunk(self.id, c.idx, live_ok=st.completed, live_failed=st.failed)
        if st.terminal:
            try:
                assert self._collecting is not None
                async with self._collecting:
                    await self._collect(c, st)
            except ProviderError as exc:
                if lost.is_not_found(exc):  # its results are gone at the provider
                    lost.on_results_not_found(self, c, exc)
                else:
                    self._transient(c, "download", exc)
            else:
                self.failures.pop(c.idx, None)
        return st.retry_after or None

    def _merge(self, round_: int, chunks: list[ChunkRow]) -> None:
        """Merge round ``round_`` into the job's results and record the merged tally: the
        previous round's, less the results this round replaced, plus this round's chunks'."""
        days = batch_days(self.row, chunks)
        default_day = day_of(None, self.row.created_at)
        tally = Tally() if round_ == 0 else round_tally(self.ledger, self.row, round_ - 1, chunks)
        removed = Tally()

        def replaced(line: str) -> None:
            add_line(removed, line, self.row.provider, self.row.model, days, default_day)

        if not self.files.merge_round(round_, chunks, replaced):
            return  # merged before a crash: the tally is recomputed from the file when asked
        for c in chunks:
            if c.round == round_:
                tally.merge(chunk_tally(self.ledger, self.row, c, days))
        tally.merge(removed, -1)
        self.ledger.set_job_tally(self.id, round_, tally.dumps())

    def _transient(self, c: ChunkRow, what: str, exc: ProviderError) -> None:
        """Let a retryable failure pass (the next step tries again), up to a limit in a row."""
        n = self.failures.get(c.idx, 0) + 1
        self.failures[c.idx] = n
        if not exc.retryable or n > self.max_transient_failures:
            raise exc
        log.warning(
            "job %s chunk %d: %s failed (%d in a row), will retry: %s", self.id, c.idx, what, n, exc
        )

    def meta(self, c: ChunkRow) -> dict[str, str]:
        """The metadata a chunk's batch is created with (and found again by)."""
        return {META_JOB: self.id, META_CHUNK: str(c.idx)}

    async def _submit(self, c: ChunkRow) -> None:
        wire_path = self.files.wire_path(c.idx)
        if not wire_path.exists():  # retry rounds are encoded now; first rounds at planning
            tmp = wire_path.with_suffix(".part")
            with os.fdopen(private_fd(tmp), "wb") as out:
                for item in iter_chunk_items(self.files.dir / c.items_file, c.offset, c.count):
                    out.write(self.provider.encode(item, item.model or c.model) + b"\n")
            tmp.replace(wire_path)
        # record intent before the side effect, so a crash in between is recoverable
        self.ledger.update_chunk(self.id, c.idx, state="submitting", event="submitting")
        crashpoint("before-create")
        submitted = await self.provider.asubmit(wire_path, model=c.model, metadata=self.meta(c))
        crashpoint("after-create")
        self.ledger.update_chunk(
            self.id,
            c.idx,
            state="submitted",
            batch_id=submitted.batch_id,
            input_file_id=submitted.input_file_id,
            submitted_at=time.time(),
            queue_full_at=None,
            event="submitted",
        )
        if self.row.state == "planned":
            self.ledger.update_job(self.id, state="running")
            self.row.state = "running"
        wire_path.unlink(missing_ok=True)
        log.info("job %s chunk %d submitted as %s", self.id, c.idx, submitted.batch_id)

    async def _recover(self, c: ChunkRow, rivals: int = 0) -> bool:
        """A crash (or a lost answer) came between recording intent and recording the batch id:
        find the batch again, or resubmit (see :func:`.adopt.recover`)."""
        return await adopt.recover(self, c, rivals)

    async def _collect(self, c: ChunkRow, st: BatchStatus) -> None:
        """Download a terminal batch's results (see :func:`.collect.collect`)."""
        await collect(self, c, st)

    def _collect_unsubmitted(self, c: ChunkRow) -> None:
        """A queued chunk of a cancelled job: its items end as canceled, never sent."""
        err = ItemError(
            code="batch_cancelled",
            message="the job was cancelled before this request was sent",
            retryable=True,
        )
        self.end_unsubmitted(c, "cancelled", err, event="not-submitted")

    def end_unsubmitted(self, c: ChunkRow, status: str, err: ItemError, *, event: str) -> None:
        """End a chunk that has no batch: each of its items gets ``err`` (``status``)."""
        path = self.files.chunk_results(c.idx)
        tally = Tally()
        day = day_of(None, self.row.created_at)
        with os.fdopen(private_fd(path), "w", encoding="utf-8") as out:
            for i in iter_chunk_items(self.files.dir / c.items_file, c.offset, c.count):
                r = self._synthetic(i.custom_id or "", status, err, c)
                tally.add_result(r, self.row.provider, self.row.model, day)
                out.write(r.model_dump_json(exclude_none=True) + "\n")
        self.ledger.update_chunk(
            self.id,
            c.idx,
            state="collected",
            n_failed=c.count,
            tally=tally.dumps(),
            ended_at=time.time(),
            event=event,
        )

    def _synthetic(self, cid: str, status: str, err: ItemError, c: ChunkRow) -> BatchResult:
        return BatchResult.model_validate(
            {
                "custom_id": cid,
                "status": status,
                "error": err,
                "provider": self.row.provider,
                "batch_id": c.batch_id,
            }
        )

    def plan_retry(self, round_: int) -> bool:
        """Plan a retry round of the retryable failures, if rounds remain. True if one was planned."""
        options = self.row.options
        if round_ >= int(options.get("retry_failed") or 0) or self.row.state == "cancelling":
            return False
        path, n = self.files.write_retry_items(round_)
        if n == 0:
            return False
        planned = chunk_items_file(path, self.provider, self.row.model, options.get("chunk_size"))
        base = max(c.idx for c in self.chunks()) + 1
        self.ledger.add_chunks(
            planned_rows(self.id, planned, round_=round_ + 1, items_file=path.name, first_idx=base)
        )
        log.info("job %s: retry round %d for %d requests", self.id, round_ + 1, n)
        return True

    async def _finalize(self, round_: int) -> None:
        """Publish the last round's merged results (atomically), end the job, delete uploads
        (and, with ``delete_outputs``, the output and error files) at the provider."""
        await asyncio.to_thread(self.files.publish, round_)
        state = "cancelled" if self.row.state == "cancelling" else "completed"
        self.ledger.update_job(self.id, state=state)
        await delete_at_provider(
            self.id,
            self.provider,
            self.chunks(),
            inputs=not self.row.options.get("keep_files"),
            outputs=bool(self.row.options.get("delete_outputs")),
        )
        # the job is over: its connections need not stay open in a process that runs many jobs
        # (the provider stays cached for Job.load; a later call builds a new client)
        await self.provider.aclose()
        self.refresh()

    # -- cancel -----------------------------------------------------------------------------
    async def acancel(self) -> None:
        """Mark the job cancelling and cancel every in-flight batch (queued chunks never go);
        then take one step, which collects what has ended (see :mod:`.cancel`)."""
        self.refresh()
        if self.row.state in FINAL_STATES:
            return
        self.ledger.update_job(self.id, state="cancelling")
        await cancel_all(self)
        self.refresh()
