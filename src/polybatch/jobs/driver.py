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
import signal
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from ..errors import ProviderError
from ..items import BatchResult, ItemError, OutputCheck
from ..providers import META_CHUNK, META_JOB, BatchProvider, BatchStatus, SubmittedBatch
from .files import JobFiles, private_fd
from .ledger import FINAL_STATES, ChunkRow, JobRow, Ledger
from .planner import PlannedChunk, chunk_items_file, iter_chunk_checks, iter_chunk_items

log = logging.getLogger("polybatch")

DEFAULT_MAX_IN_FLIGHT = 4
#: retryable failures in a row on one chunk before a step gives up and raises; with the
#: adaptive poll interval (capped at a minute) that is about half an hour of outage
MAX_TRANSIENT_FAILURES = 30


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
        )
        for i, pc in enumerate(chunks)
    ]


async def _aclose(stream: AsyncIterator[Any]) -> None:
    """Close an async generator left early (an error while writing), so its download ends."""
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()


def _crashpoint(name: str) -> None:
    """Die here, as a SIGKILL would, when ``POLYBATCH_CRASH_AT`` names this point (crash tests)."""
    if os.environ.get("POLYBATCH_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)


class JobDriver:
    """Advances one job; ``provider`` is called for the adapter when one is needed."""

    def __init__(self, row: JobRow, ledger: Ledger, provider: Callable[[], BatchProvider]) -> None:
        self.row = row
        self.ledger = ledger
        self._provider = provider
        self.files = JobFiles.of(ledger, row)
        #: items done per in-flight chunk, as last polled (for the progress bar)
        self.live_counts: dict[int, int] = {}
        #: transient failures in a row per chunk; past the limit the job stops (resume later)
        self.failures: dict[int, int] = {}
        self.max_transient_failures = MAX_TRANSIENT_FAILURES

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
        max_in_flight = int(self.row.options.get("max_in_flight") or DEFAULT_MAX_IN_FLIGHT)
        retry_after: float | None = None
        for c in self.chunks():
            if c.state == "submitting":
                try:
                    await self._recover(c)
                except ProviderError as exc:
                    # the lookup failed: the chunk stays "submitting", the next step looks again
                    self._transient(c, "recover", exc)
        chunks = self.chunks()
        in_flight = sum(c.state == "submitted" for c in chunks)
        cancelling = self.row.state == "cancelling"
        for c in chunks:
            if c.state != "planned":
                continue
            if cancelling:
                self._collect_unsubmitted(c)
                continue
            if in_flight >= max_in_flight:
                break
            try:
                await self._submit(c)
            except ProviderError as exc:
                # the chunk stays "submitting": the next step looks for the batch, then resubmits
                self._transient(c, "submit", exc)
                break
            in_flight += 1
        for c in [c for c in self.chunks() if c.state == "submitted"]:
            assert c.batch_id is not None
            try:
                st = await self.provider.apoll(c.batch_id)
            except ProviderError as exc:
                self._transient(c, "polling", exc)
                continue
            if not st.terminal:
                self.failures.pop(c.idx, None)
            if st.retry_after:
                retry_after = max(retry_after or 0, st.retry_after)
            if st.state != c.batch_state:
                self.ledger.update_chunk(self.id, c.idx, batch_state=st.state, event="polled")
            self.live_counts[c.idx] = st.completed + st.failed
            if st.terminal:
                try:
                    await self._collect(c, st)
                except ProviderError as exc:
                    self._transient(c, "download", exc)
                else:
                    self.failures.pop(c.idx, None)
        chunks = self.chunks()
        if all(c.state == "collected" for c in chunks):
            last_round = max(c.round for c in chunks)
            # local file work, as long as the job is big: off the loop
            await asyncio.to_thread(self.files.merge_round, last_round, chunks)
            if await asyncio.to_thread(self.plan_retry, last_round):
                return 0.0
            await self._finalize(last_round)
            return None
        return retry_after if retry_after is not None else 0.0

    def _transient(self, c: ChunkRow, what: str, exc: ProviderError) -> None:
        """Let a retryable failure pass (the next step tries again), up to a limit in a row."""
        n = self.failures.get(c.idx, 0) + 1
        self.failures[c.idx] = n
        if not exc.retryable or n > self.max_transient_failures:
            raise exc
        log.warning(
            "job %s chunk %d: %s failed (%d in a row), will retry: %s", self.id, c.idx, what, n, exc
        )

    def _meta(self, c: ChunkRow) -> dict[str, str]:
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
        _crashpoint("before-create")
        submitted = await self.provider.asubmit(wire_path, model=c.model, metadata=self._meta(c))
        _crashpoint("after-create")
        self.ledger.update_chunk(
            self.id,
            c.idx,
            state="submitted",
            batch_id=submitted.batch_id,
            input_file_id=submitted.input_file_id,
            submitted_at=time.time(),
            event="submitted",
        )
        if self.row.state == "planned":
            self.ledger.update_job(self.id, state="running")
            self.row.state = "running"
        wire_path.unlink(missing_ok=True)
        log.info("job %s chunk %d submitted as %s", self.id, c.idx, submitted.batch_id)

    async def _recover(self, c: ChunkRow) -> None:
        """A crash (or a timeout) happened between recording intent and recording the batch id."""
        found = await self.provider.afind_batch(self._meta(c))
        if found:
            log.info(
                "job %s chunk %d: found batch %s created before a crash", self.id, c.idx, found
            )
            self.ledger.update_chunk(
                self.id,
                c.idx,
                state="submitted",
                batch_id=found,
                submitted_at=time.time(),
                event="recovered",
            )
        else:
            self.ledger.update_chunk(self.id, c.idx, state="planned", event="resubmit")

    async def _collect(self, c: ChunkRow, st: BatchStatus) -> None:
        """Download a terminal batch's results; every item of the chunk gets exactly one.

        Results arrive in any order; they are written as they come, then copied into the
        chunk's file in item order (memory: one offset per item of the chunk).
        """
        ids: list[str] = []
        # structured-output items: each reply is checked against its model here, where the items
        # are known, so the results on disk are final (a reply that does not validate is an
        # ``invalid_output`` item error) and carry the model's ref for ``BatchResult.parsed``
        checks: dict[str, OutputCheck] = {}
        for cid, check in iter_chunk_checks(self.files.dir / c.items_file, c.offset, c.count):
            ids.append(cid)
            if check is not None:
                checks[cid] = check
        wire_to_user = {self.provider.wire_custom_id(cid): cid for cid in ids}
        offsets: dict[str, int] = {}
        ok = failed = 0
        path = self.files.chunk_results(c.idx)
        arrival = path.with_suffix(".arrival")
        with open(private_fd(arrival, readable=True), "w+b") as out:

            def emit(r: BatchResult) -> None:
                nonlocal ok, failed
                offsets[r.custom_id] = out.tell()
                ok += r.ok
                failed += not r.ok
                out.write(r.model_dump_json(exclude_none=True).encode() + b"\n")

            if st.state == "failed" and not self.provider.results_after_failure:
                err = ItemError(
                    code="batch_failed", message=st.message or "the provider rejected the batch"
                )
                for cid in ids:
                    emit(self._synthetic(cid, "errored", err, c))
            else:
                assert c.batch_id is not None
                stream = self.provider.aresults(c.batch_id)
                try:
                    async for r in stream:
                        user_id = wire_to_user.get(r.custom_id)
                        if user_id is None or user_id in offsets:
                            log.warning(
                                "job %s chunk %d: ignoring unexpected result %r",
                                self.id,
                                c.idx,
                                r.custom_id,
                            )
                            continue
                        r = r.model_copy(update={"custom_id": user_id})
                        check = checks.get(user_id)
                        emit(check.apply(r) if check is not None else r)
                finally:
                    await _aclose(stream)
                missing = ItemError(
                    code="missing_result",
                    message="the provider returned no result for this request",
                    retryable=True,
                )
                for cid in ids:
                    if cid not in offsets:
                        emit(self._synthetic(cid, "errored", missing, c))
            tmp = path.with_suffix(".part")
            with open(private_fd(tmp), "wb") as ordered:
                for cid in ids:
                    out.seek(offsets[cid])
                    ordered.write(out.readline())
        arrival.unlink()
        _crashpoint("before-collected")
        tmp.replace(path)
        self.ledger.update_chunk(
            self.id,
            c.idx,
            state="collected",
            batch_state=st.state,
            ended_at=time.time(),
            n_ok=ok,
            n_failed=failed,
            message=st.message,
            event="collected",
        )

    def _collect_unsubmitted(self, c: ChunkRow) -> None:
        """A queued chunk of a cancelled job: its items end as canceled, never sent."""
        path = self.files.chunk_results(c.idx)
        err = ItemError(
            code="batch_cancelled",
            message="the job was cancelled before this request was sent",
            retryable=True,
        )
        with os.fdopen(private_fd(path), "w", encoding="utf-8") as out:
            for i in iter_chunk_items(self.files.dir / c.items_file, c.offset, c.count):
                r = self._synthetic(i.custom_id or "", "cancelled", err, c)
                out.write(r.model_dump_json(exclude_none=True) + "\n")
        self.ledger.update_chunk(
            self.id, c.idx, state="collected", n_failed=c.count, event="not-submitted"
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
        """Publish the last round's merged results (atomically), end the job, delete uploads."""
        await asyncio.to_thread(self.files.publish, round_)
        state = "cancelled" if self.row.state == "cancelling" else "completed"
        self.ledger.update_job(self.id, state=state)
        if not self.row.options.get("keep_files"):
            for c in self.chunks():
                if c.batch_id and c.input_file_id:
                    try:
                        await self.provider.acleanup(
                            SubmittedBatch(batch_id=c.batch_id, input_file_id=c.input_file_id)
                        )
                    except ProviderError as exc:
                        log.warning(
                            "job %s: could not delete input file %s: %s",
                            self.id,
                            c.input_file_id,
                            exc,
                        )
        # the job is over: its connections need not stay open in a process that runs many jobs
        # (the provider stays cached for Job.load; a later call builds a new client)
        await self.provider.aclose()
        self.refresh()

    # -- cancel -----------------------------------------------------------------------------
    async def acancel(self) -> None:
        """Mark the job cancelling and cancel its in-flight batches (queued chunks never go)."""
        self.refresh()
        if self.row.state in FINAL_STATES:
            return
        self.ledger.update_job(self.id, state="cancelling")
        for c in self.chunks():
            if c.state == "submitted" and c.batch_id:
                await self.provider.acancel(c.batch_id)
                self.ledger.update_chunk(self.id, c.idx, event="cancel-requested")
        self.refresh()
