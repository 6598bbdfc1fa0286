"""Running jobs: submit chunks, poll, collect results, resume after a crash, cancel.

A :class:`Job` is a handle on a row of the ledger; all of its state lives there and in its job
directory, so any process can pick a job up (``Job.load``) and carry on where another stopped.

The logic is written once, as coroutines awaiting the adapters' async lifecycle (the SDKs' async
clients). The blocking API (``submit``, ``Job.wait``, ``Job.cancel``) runs the same coroutines
on polybatch's portal loop (:mod:`polybatch.portal`); the async API (``asubmit``, ``arun``,
``Job.await_results``) awaits them on the caller's loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import signal
import sys
import threading
import time
import warnings
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from tqdm import tqdm

from . import config as _config
from . import portal
from .errors import JobError, PricingError, ProviderError, UnknownProviderError
from .inputs import coerce_items, read_numbered_items
from .items import BatchItem, BatchResult, ItemError, OutputCheck, Usage
from .ledger import ChunkRow, JobRow, Ledger
from .planner import (
    ITEMS_FILE,
    PlannedChunk,
    chunk_items_file,
    iter_chunk_checks,
    iter_chunk_items,
    plan_job,
)
from .plugins import get_registry
from .providers import META_CHUNK, META_JOB, BatchProvider, BatchStatus, SubmittedBatch

if TYPE_CHECKING:
    from .pricing import Cost, Estimate, Estimator

log = logging.getLogger("polybatch")

#: default bounds of the adaptive poll interval, seconds
POLL_MIN = 1.0
POLL_MAX = 60.0
DEFAULT_MAX_IN_FLIGHT = 4

# Providers built in this process for a job (an in-process sandbox cannot be rebuilt from the
# ledger, which holds no secrets), so Job.load in the same process reuses them.
_live_providers: dict[str, BatchProvider] = {}
_live_lock = threading.Lock()


def open_ledger(home: Path | None = None) -> Ledger:
    """The ledger under ``home`` (default: ``polybatch.config.home()``)."""
    return Ledger((home or _config.home()) / "ledger.sqlite3")


def make_provider(name: str, settings: Mapping[str, Any] | None = None) -> BatchProvider:
    """Instantiate the registered provider ``name`` with its settings."""
    cls = get_registry().provider_class(name)
    settings = dict(settings or {})
    api_key = settings.pop("api_key", None)
    base_url = settings.pop("base_url", None)
    return cls(api_key=api_key, base_url=base_url, settings=settings)


def _public_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Provider settings without secrets: what the ledger may keep."""
    return {
        k: v
        for k, v in settings.items()
        if not _config.is_secret_key(k) and not (isinstance(v, str) and _config.looks_secret(v))
    }


@dataclass
class JobStatus:
    """Where a job stands."""

    job_id: str
    state: str
    provider: str
    model: str
    total: int
    succeeded: int
    failed: int
    chunks: dict[str, int]

    @property
    def done(self) -> bool:
        """True once results are final."""
        return self.state in ("completed", "cancelled")


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


def _custom_id(line: str) -> str:
    return str(json.loads(line)["custom_id"])


def _retryable(r: BatchResult) -> bool:
    """Worth sending again: expired, cancelled, or an error the provider calls transient."""
    if r.ok:
        return False
    if r.status in ("expired", "canceled"):
        return True
    return r.error is not None and r.error.retryable


async def _aclose(stream: AsyncIterator[Any]) -> None:
    """Close an async generator left early (an error while writing), so its download ends."""
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()


def _wire_name(idx: int) -> str:
    return f"chunk-{idx:04d}.wire.jsonl"


def _crashpoint(name: str) -> None:
    """Die here, as a SIGKILL would, when ``POLYBATCH_CRASH_AT`` names this point (crash tests)."""
    if os.environ.get("POLYBATCH_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)


def private_fd(path: Path, *, readable: bool = False) -> int:
    """Open ``path`` for writing, owner-only (results may hold sensitive model output)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = os.O_RDWR if readable else os.O_WRONLY
    return os.open(path, mode | os.O_CREAT | os.O_TRUNC, 0o600)


class Job:
    """A handle on one polybatch job: many items, one or more provider batches."""

    #: retryable failures in a row on one chunk before ``step`` gives up and raises; with the
    #: adaptive poll interval (capped at a minute) that is about half an hour of outage
    max_transient_failures: int = 30

    def __init__(self, row: JobRow, ledger: Ledger, provider: BatchProvider | None = None) -> None:
        self._row = row
        self.ledger = ledger
        self._provider = provider
        #: items done per in-flight chunk, as last polled (for the progress bar)
        self._live_counts: dict[int, int] = {}
        #: transient failures in a row per chunk; past the limit the job stops (resume later)
        self._failures: dict[int, int] = {}

    # -- identity --------------------------------------------------------------------------
    @property
    def id(self) -> str:
        """The job id (derived from the input content, model and options)."""
        return self._row.id

    @property
    def provider_name(self) -> str:
        """The provider's name."""
        return self._row.provider

    @property
    def model(self) -> str:
        """The model the job was submitted with."""
        return self._row.model

    @property
    def dir(self) -> Path:
        """The job's directory: items, per-chunk results, final results."""
        return self.ledger.path.parent / "jobs" / self.id

    @property
    def results_path(self) -> Path:
        """Where the final results JSONL is written."""
        return (
            Path(self._row.results_path) if self._row.results_path else self.dir / "results.jsonl"
        )

    @property
    def options(self) -> dict[str, Any]:
        """The job's options as recorded in the ledger."""
        return self._row.options

    def __repr__(self) -> str:
        return f"Job({self.id!r}, {self.provider_name}:{self.model}, {self._row.state})"

    # -- loading ---------------------------------------------------------------------------
    @classmethod
    def load(
        cls,
        job_id: str,
        *,
        home: Path | None = None,
        provider: BatchProvider | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
    ) -> Job:
        """Open an existing job by id (or unique id prefix), from any process."""
        ledger = open_ledger(home)
        row = ledger.get_job(job_id)
        if row is None:
            matches = ledger.find_jobs(job_id)
            if len(matches) != 1:
                why = "no job" if not matches else f"{len(matches)} jobs"
                raise JobError(f"{why} matching {job_id!r} in {ledger.path}")
            row = matches[0]
        if provider is None:
            with _live_lock:
                provider = _live_providers.get(row.id)
        if provider is None or api_key or base_url:
            settings = dict(row.options.get("provider_settings", {}))
            if api_key:
                settings["api_key"] = api_key
            if base_url:
                settings["base_url"] = base_url
            provider = make_provider(row.provider, settings)
        return cls(row, ledger, provider)

    def _refresh(self) -> None:
        row = self.ledger.get_job(self.id)
        assert row is not None
        self._row = row

    @property
    def provider(self) -> BatchProvider:
        """The provider adapter this job talks to."""
        if self._provider is None:
            self._provider = make_provider(
                self.provider_name, self.options.get("provider_settings", {})
            )
        return self._provider

    # -- status ----------------------------------------------------------------------------
    def chunks(self) -> list[ChunkRow]:
        """The job's chunks (provider batches) as the ledger has them."""
        return self.ledger.chunks(self.id)

    def status(self) -> JobStatus:
        """Counts of items and chunks, from the ledger (no provider call)."""
        self._refresh()
        chunks = self.chunks()
        by_state: dict[str, int] = {}
        ok = failed = 0
        for c in chunks:
            by_state[c.state] = by_state.get(c.state, 0) + 1
            if c.round == 0 or c.state == "collected":
                ok += c.n_ok
                failed += c.n_failed
        return JobStatus(
            job_id=self.id,
            state=self._row.state,
            provider=self.provider_name,
            model=self.model,
            total=self._row.n_items,
            succeeded=ok,
            failed=failed,
            chunks=by_state,
        )

    # -- the loop --------------------------------------------------------------------------
    def step(self) -> float | None:
        """Advance the job once: submit, poll, collect. Returns a suggested wait, None when done."""
        return portal.run(self.astep())

    async def astep(self) -> float | None:
        """:meth:`step` on the caller's event loop."""
        self._refresh()
        if self._row.state in ("completed", "cancelled"):
            return None
        max_in_flight = int(self.options.get("max_in_flight") or DEFAULT_MAX_IN_FLIGHT)
        retry_after: float | None = None
        for c in self.chunks():
            if c.state == "submitting":
                await self._recover(c)
        chunks = self.chunks()
        in_flight = sum(c.state == "submitted" for c in chunks)
        cancelling = self._row.state == "cancelling"
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
                self._failures.pop(c.idx, None)
            if st.retry_after:
                retry_after = max(retry_after or 0, st.retry_after)
            if st.state != c.batch_state:
                self.ledger.update_chunk(self.id, c.idx, batch_state=st.state, event="polled")
            self._live_counts[c.idx] = st.completed + st.failed
            if st.terminal:
                try:
                    await self._collect(c, st)
                except ProviderError as exc:
                    self._transient(c, "download", exc)
                else:
                    self._failures.pop(c.idx, None)
        chunks = self.chunks()
        if all(c.state == "collected" for c in chunks):
            last_round = max(c.round for c in chunks)
            # local file work, as long as the job is big: off the loop
            await asyncio.to_thread(self._merge_round, last_round)
            if await asyncio.to_thread(self._plan_retry, last_round):
                return 0.0
            await self._finalize(last_round)
            return None
        return retry_after if retry_after is not None else 0.0

    def _transient(self, c: ChunkRow, what: str, exc: ProviderError) -> None:
        """Let a retryable failure pass (the next step tries again), up to a limit in a row."""
        n = self._failures.get(c.idx, 0) + 1
        self._failures[c.idx] = n
        if not exc.retryable or n > self.max_transient_failures:
            raise exc
        log.warning(
            "job %s chunk %d: %s failed (%d in a row), will retry: %s", self.id, c.idx, what, n, exc
        )

    async def _submit(self, c: ChunkRow) -> None:
        wire_path = self.dir / _wire_name(c.idx)
        if not wire_path.exists():  # retry rounds are encoded now; first rounds at planning
            tmp = wire_path.with_suffix(".part")
            with os.fdopen(private_fd(tmp), "wb") as out:
                for item in iter_chunk_items(self.dir / c.items_file, c.offset, c.count):
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
        if self._row.state == "planned":
            self.ledger.update_job(self.id, state="running")
            self._row.state = "running"
        wire_path.unlink(missing_ok=True)
        log.info("job %s chunk %d submitted as %s", self.id, c.idx, submitted.batch_id)

    def _meta(self, c: ChunkRow) -> dict[str, str]:
        return {META_JOB: self.id, META_CHUNK: str(c.idx)}

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

    def _chunk_results_path(self, c: ChunkRow) -> Path:
        return self.dir / "results" / f"chunk-{c.idx:04d}.jsonl"

    def _round_results_path(self, round_: int) -> Path:
        return self.dir / "results" / f"round-{round_}.jsonl"

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
        for cid, check in iter_chunk_checks(self.dir / c.items_file, c.offset, c.count):
            ids.append(cid)
            if check is not None:
                checks[cid] = check
        wire_to_user = {self.provider.wire_custom_id(cid): cid for cid in ids}
        offsets: dict[str, int] = {}
        ok = failed = 0
        path = self._chunk_results_path(c)
        arrival = path.with_suffix(".arrival")
        with open(private_fd(arrival, readable=True), "w+b") as out:

            def emit(r: BatchResult) -> None:
                nonlocal ok, failed
                offsets[r.custom_id] = out.tell()
                ok += r.ok
                failed += not r.ok
                out.write(r.model_dump_json(exclude_none=True).encode() + b"\n")

            if st.state == "failed":
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
        path = self._chunk_results_path(c)
        err = ItemError(
            code="batch_cancelled",
            message="the job was cancelled before this request was sent",
            retryable=True,
        )
        with os.fdopen(private_fd(path), "w", encoding="utf-8") as out:
            for i in iter_chunk_items(self.dir / c.items_file, c.offset, c.count):
                r = self._synthetic(i.custom_id or "", "canceled", err, c)
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
                "provider": self.provider_name,
                "batch_id": c.batch_id,
            }
        )

    def _merge_round(self, round_: int) -> None:
        """Write round-N.jsonl: every item of the job once, in input order, latest outcome wins.

        Round 0 is the chunks' results put in input order. A retry round's items are a subset,
        in input order too, so the previous round's file and this round's results are merged in
        one pass: memory stays bounded by one chunk's index, whatever the job's size.
        """
        dest = self._round_results_path(round_)
        if dest.exists():
            return
        tmp = dest.with_name(dest.name + ".part")
        with os.fdopen(private_fd(tmp), "w", encoding="utf-8") as out:
            fresh = self._round_in_order(round_)
            if round_ == 0:
                for line in fresh:
                    out.write(line)
            else:
                pending = next(fresh, None)
                with self._round_results_path(round_ - 1).open("r", encoding="utf-8") as prev:
                    for line in prev:
                        if pending is not None and _custom_id(pending) == _custom_id(line):
                            out.write(pending)
                            pending = next(fresh, None)
                        else:
                            out.write(line)
                if pending is not None:
                    raise JobError(
                        f"job {self.id}: retry round {round_} holds results out of order"
                    )
        tmp.replace(dest)

    def _round_in_order(self, round_: int) -> Iterator[str]:
        """One round's results as lines, in the order of that round's items file."""
        for c in self.chunks():
            if c.round == round_:
                with self._chunk_results_path(c).open("r", encoding="utf-8") as fh:
                    yield from fh

    def _plan_retry(self, round_: int) -> bool:
        """Plan a retry round of the retryable failures, if rounds remain. True if one was planned."""
        if round_ >= int(self.options.get("retry_failed") or 0) or self._row.state == "cancelling":
            return False
        items_file = f"retry-{round_ + 1}.items.jsonl"
        path = self.dir / items_file
        n = 0
        with (
            os.fdopen(private_fd(path), "wb") as out,
            self._round_results_path(round_).open("r", encoding="utf-8") as results,
            (self.dir / ITEMS_FILE).open("rb") as items,
        ):
            # both files are in input order, one line per item: walk them side by side
            for line, item_line in zip(results, items, strict=True):
                r = BatchResult.model_validate_json(line)
                if _retryable(r):
                    out.write(item_line)
                    n += 1
        if n == 0:
            path.unlink()
            return False
        planned = chunk_items_file(path, self.provider, self.model, self.options.get("chunk_size"))
        base = max(c.idx for c in self.chunks()) + 1
        self.ledger.add_chunks(
            planned_rows(self.id, planned, round_=round_ + 1, items_file=items_file, first_idx=base)
        )
        log.info("job %s: retry round %d for %d requests", self.id, round_ + 1, n)
        return True

    def _publish(self, round_: int) -> None:
        """Copy the last round's merged results to results.jsonl, atomically."""
        final = self.results_path
        tmp = final.with_name(final.name + ".part")
        with (
            self._round_results_path(round_).open("rb") as src,
            os.fdopen(private_fd(tmp), "wb") as out,
        ):
            shutil.copyfileobj(src, out)
        tmp.replace(final)

    async def _finalize(self, round_: int) -> None:
        """Publish the last round's merged results as results.jsonl (atomically), end the job."""
        await asyncio.to_thread(self._publish, round_)
        state = "cancelled" if self._row.state == "cancelling" else "completed"
        self.ledger.update_job(self.id, state=state)
        if not self.options.get("keep_files"):
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
        self._refresh()

    def wait(
        self,
        *,
        progress: bool = False,
        timeout: float | None = None,
        poll_min: float | None = None,
        poll_max: float | None = None,
    ) -> Job:
        """Drive the job until its results are final; with ``progress``, a tqdm bar on stderr."""
        return portal.run(
            self.await_done(
                progress=progress, timeout=timeout, poll_min=poll_min, poll_max=poll_max
            )
        )

    async def await_done(
        self,
        *,
        progress: bool = False,
        timeout: float | None = None,
        poll_min: float | None = None,
        poll_max: float | None = None,
    ) -> Job:
        """:meth:`wait` on the caller's event loop (polls without blocking it)."""
        poll_min = (
            poll_min if poll_min is not None else float(self.options.get("poll_min", POLL_MIN))
        )
        poll_max = (
            poll_max if poll_max is not None else float(self.options.get("poll_max", POLL_MAX))
        )
        deadline = None if timeout is None else time.monotonic() + timeout
        interval = poll_min
        bar = tqdm(
            total=self._row.n_items,
            desc=f"{self.id} {self.provider_name}:{self.model}",
            unit="req",
            file=sys.stderr,
            disable=not progress,
            dynamic_ncols=True,
        )
        last_done = -1
        try:
            while True:
                hint = await self.astep()
                chunks = self.chunks()
                done = sum(
                    c.count if c.state == "collected" else self._live_counts.get(c.idx, 0)
                    for c in chunks
                    if c.round == 0
                )
                failed = sum(c.n_failed for c in chunks if c.state == "collected" and c.round == 0)
                states: dict[str, int] = {}
                for c in chunks:
                    states[c.state] = states.get(c.state, 0) + 1
                bar.n = min(done, self._row.n_items)
                bar.set_postfix(
                    failed=failed,
                    chunks=",".join(f"{k}={v}" for k, v in sorted(states.items())),
                    refresh=False,
                )
                bar.refresh()
                if hint is None:
                    return self
                if done != last_done:
                    interval = poll_min  # progress: look again soon
                    last_done = done
                else:
                    interval = min(poll_max, interval * 1.5)  # long batches: back off, up to a cap
                sleep = max(interval, hint)
                if deadline is not None and time.monotonic() + sleep > deadline:
                    raise TimeoutError(f"job {self.id} not finished within {timeout}s")
                await asyncio.sleep(sleep)
        finally:
            bar.close()
            await self._release_client()

    async def _release_client(self) -> None:
        """At the end of an async call on the caller's loop, close the client built for that loop
        (the caller may close its loop next). The portal's clients serve every blocking call."""
        if not portal.portal.in_portal():
            await self.provider.aclose()

    # -- results ---------------------------------------------------------------------------
    def results(self, status: str | None = None) -> Iterator[BatchResult]:
        """Stream the final results (in input order), optionally only those of one status."""
        self._refresh()
        if self._row.state not in ("completed", "cancelled"):
            raise JobError(
                f"job {self.id} is {self._row.state}: results are not final yet (wait or resume it)"
            )
        with self.results_path.open("r", encoding="utf-8") as fh:
            for line in fh:
                r = BatchResult.model_validate_json(line)
                if status is None or r.status == status or (status == "failed" and not r.ok):
                    yield r

    def requests(self, custom_ids: Iterable[str] | None = None) -> Iterator[BatchItem]:
        """The job's items as submitted (defaults applied), optionally only some ids."""
        wanted = set(custom_ids) if custom_ids is not None else None
        with (self.dir / ITEMS_FILE).open("rb") as fh:
            for line in fh:
                item = BatchItem.model_validate_json(line)
                if wanted is None or item.custom_id in wanted:
                    yield item

    def estimate(self) -> dict[str, Any] | None:
        """The cost range estimated before submission (strings for money), if prices were known."""
        est: dict[str, Any] | None = self.options.get("estimate")
        return est

    def cost(self, mode: Literal["batch", "standard"] = "batch") -> Cost:
        """What the finished job cost (or would have cost at ``standard`` prices), per bucket.

        Raises PriceNotFoundError when a model that used tokens has no price.
        """
        from .accounting import job_cost

        return job_cost(self, mode=mode)

    def usage(self) -> Usage:
        """Total token usage over the job's results."""
        total = Usage()
        for r in self.results():
            total = total + r.usage
        return total

    def export_results(self, path: str | Path) -> Path:
        """Copy the final results to ``path`` (owner-only permissions)."""
        dest = Path(path)
        self.results()  # raises if not final
        tmp = dest.with_name(dest.name + ".part")
        with self.results_path.open("rb") as src, os.fdopen(private_fd(tmp), "wb") as out:
            shutil.copyfileobj(src, out)
        tmp.replace(dest)
        return dest

    def retry(self, rounds: int = 1) -> bool:
        """Resubmit the retryable failures of a finished job as new rounds; False if none.

        Only requests that expired, were cancelled or failed transiently are sent again;
        permanent errors (an invalid request) keep their result. Call ``wait()`` afterwards.
        """
        self._refresh()
        if self._row.state != "completed":
            raise JobError(
                f"job {self.id} is {self._row.state}: only a completed job can be retried"
            )
        last = max(c.round for c in self.chunks())
        options = {**self.options, "retry_failed": last + rounds}
        self.ledger.update_job(self.id, options=options, state="running")
        self._refresh()
        if self._plan_retry(last):
            return True
        self.ledger.update_job(self.id, state="completed")
        self._refresh()
        return False

    async def await_results(self, status: str | None = None, **wait: Any) -> list[BatchResult]:
        """Wait for the job on the caller's loop (Jupyter's too), then return its results.

        ``wait`` takes :meth:`wait`'s options. The provider calls go through the adapter's async
        client on this loop; reading the results file runs in a worker thread.
        """
        await self.await_done(**wait)
        return await asyncio.to_thread(lambda: list(self.results(status)))

    # -- cancel ----------------------------------------------------------------------------
    def cancel(self) -> None:
        """Cancel the job: in-flight batches are cancelled, queued chunks never submitted.

        Results already produced are kept; call ``wait()`` to collect them.
        """
        portal.run(self.acancel())

    async def acancel(self) -> None:
        """:meth:`cancel` on the caller's event loop."""
        try:
            await self._cancel()
        finally:
            await self._release_client()

    async def _cancel(self) -> None:
        self._refresh()
        if self._row.state in ("completed", "cancelled"):
            return
        self.ledger.update_job(self.id, state="cancelling")
        for c in self.chunks():
            if c.state == "submitted" and c.batch_id:
                await self.provider.acancel(c.batch_id)
                self.ledger.update_chunk(self.id, c.idx, event="cancel-requested")
        self._refresh()


def jobs(*, home: Path | None = None, since: float | None = None) -> list[Job]:
    """Every job in the ledger, newest first (``since``: a Unix time)."""
    ledger = open_ledger(home)
    return [Job(row, ledger) for row in ledger.list_jobs(since=since)]


def submit(
    items: Iterable[BatchItem | dict[str, Any] | str] | str | Path,
    model: str | None = None,
    *,
    profile: str | None = None,
    system: str | None = None,
    max_tokens: int | None = None,
    temperature: float | None = None,
    top_p: float | None = None,
    seed: int | None = None,
    stop: str | list[str] | None = None,
    api_key: str | None = None,
    base_url: str | None = None,
    provider_settings: Mapping[str, Any] | None = None,
    chunk_size: int | None = None,
    max_in_flight: int | None = None,
    keep_files: bool = False,
    retry_failed: int = 0,
    max_cost: Decimal | str | None = None,
    new: bool = False,
    home: Path | None = None,
    sandbox: Any = None,
    poll_min: float | None = None,
    poll_max: float | None = None,
    start: bool = True,
) -> Job:
    """Plan and start a job. ``items`` is a JSONL path or an iterable of items/dicts/prompts.

    The same input, model and options give the same job id: submitting again resumes that job
    (``new=True`` starts a fresh one). ``retry_failed`` rounds resubmit the requests that
    expired, were cancelled or failed with a transient error. ``sandbox`` is a running
    ``SandboxServer`` to point the provider at. Nothing is submitted if any item is invalid.
    With ``start=False`` the job is planned and recorded only; ``wait()`` or ``step()`` sends it.
    """
    resolved = _config.resolve(
        model=model,
        profile=profile,
        system_prompt=system,
        max_tokens=max_tokens,
        temperature=temperature,
        top_p=top_p,
        seed=seed,
        stop=stop,
        chunk_size=chunk_size,
        max_in_flight=max_in_flight,
        max_cost=Decimal(str(max_cost)) if max_cost is not None else None,
        provider_settings=dict(provider_settings or {}),
    )
    settings = dict(resolved.provider_settings)
    try:
        cls = get_registry().provider_class(resolved.provider)
    except UnknownProviderError as exc:
        source = resolved.sources.get("model", "")
        if source.startswith("profile ") and resolved.config_file:
            # the model came from a file: say which key of which file to fix
            raise UnknownProviderError(
                f"{resolved.config_file}: key 'profiles.{resolved.profile}.model': {exc}"
            ) from None
        if source.startswith("env "):
            raise UnknownProviderError(f"{source.removeprefix('env ')}: {exc}") from None
        raise
    if sandbox is not None:
        pointed = dict(cls.sandbox_settings(sandbox.url, sandbox.engine.api_key or "sandbox"))
        settings.update(pointed.pop("settings", None) or {})  # constructor kwargs: flatten
        settings.update(pointed)
    if api_key:
        settings["api_key"] = api_key
    if base_url:
        settings["base_url"] = base_url
    provider = make_provider(resolved.provider, settings)
    provider.preflight()

    if isinstance(items, (str, Path)):
        src_path: str | None = str(items)
        stream: Iterator[tuple[BatchItem, tuple[str | None, int | None]]] = (
            (it, (src_path, n)) for it, n in read_numbered_items(items)
        )
    else:
        src_path = None
        stream = ((it, ("<items>", n)) for n, it in enumerate(coerce_items(items), start=1))

    ledger = open_ledger(home)
    public = _public_settings(settings)
    estimator = _Estimating(provider)
    plan = plan_job(
        stream,
        provider=provider,
        model=resolved.model,
        staging_dir=ledger.path.parent / "jobs",
        defaults=resolved.defaults,
        system_prompt=resolved.system_prompt,
        chunk_size=resolved.chunk_size,
        identity={"settings": public},
        observe=estimator.add,
    )
    job_id = plan.job_id
    existing = ledger.get_job(job_id)
    if existing is not None and not new:
        plan.discard()
        log.info("job %s exists: resuming it", job_id)
        job = Job(existing, ledger, provider)
        with _live_lock:
            _live_providers[job.id] = provider
        if start and existing.state == "planned":
            job.step()
        return job
    try:
        estimate = estimator.result(resolved.max_cost)
    except BaseException:
        plan.discard()
        raise
    if existing is not None:
        n = 2
        while ledger.get_job(f"{plan.job_id}-{n}") is not None:
            n += 1
        job_id = f"{plan.job_id}-{n}"

    job_dir = ledger.path.parent / "jobs" / job_id
    job_dir.mkdir(parents=True, exist_ok=True)
    plan.staging_path.replace(job_dir / ITEMS_FILE)
    for i, wire in enumerate(plan.wire_files):
        wire.replace(job_dir / _wire_name(i))
    now = time.time()
    options: dict[str, Any] = {
        "provider_settings": public,
        "max_in_flight": resolved.max_in_flight or DEFAULT_MAX_IN_FLIGHT,
        "chunk_size": resolved.chunk_size,
        "keep_files": keep_files,
        "retry_failed": retry_failed,
        "max_cost": str(resolved.max_cost) if resolved.max_cost is not None else None,
        "estimate": _estimate_dict(estimate),
        "profile": resolved.profile,
        "sandbox": sandbox is not None,
    }
    if poll_min is not None:
        options["poll_min"] = poll_min
    if poll_max is not None:
        options["poll_max"] = poll_max
    row = JobRow(
        id=job_id,
        created_at=now,
        updated_at=now,
        provider=resolved.provider,
        model=resolved.model,
        state="planned",
        n_items=plan.n_items,
        input_path=src_path,
        results_path=None,
        options=options,
    )
    chunks = planned_rows(job_id, plan.chunks, round_=0, items_file=ITEMS_FILE, first_idx=0)
    ledger.add_job(row, chunks)
    job = Job(row, ledger, provider)
    with _live_lock:
        _live_providers[job.id] = provider
    if start:
        job.step()
    return job


class _Estimating:
    """Feeds the cost estimator during planning; a missing price is kept, not raised, until
    the budget is checked (without a budget, a job on an unpriced model still runs)."""

    def __init__(self, provider: BatchProvider) -> None:
        from .accounting import estimator

        self.problem: PricingError | None = None
        self.estimator: Estimator | None = None
        try:
            self.estimator = estimator(provider)
        except PricingError as exc:
            self.problem = exc

    def add(self, item: BatchItem, model: str) -> None:
        if self.estimator is None or self.problem is not None:
            return
        try:
            self.estimator.add(item, model)
        except PricingError as exc:
            self.problem = exc

    def result(self, max_cost: Decimal | None) -> Estimate | None:
        """The estimate, after enforcing the budget (BudgetExceededError, nothing submitted)."""
        from .accounting import check_budget

        if self.problem is not None or self.estimator is None:
            check_budget(None, max_cost, why_missing=str(self.problem))
            warnings.warn(f"no estimate: {self.problem}", stacklevel=3)
            return None
        estimate = self.estimator.result()
        check_budget(estimate, max_cost)
        return estimate


def _estimate_dict(e: Estimate | None) -> dict[str, Any] | None:
    if e is None:
        return None
    return {
        "low": str(e.low),
        "high": str(e.high),
        "input_tokens": e.input_tokens,
        "max_output_tokens": e.max_output_tokens,
        "method": e.method,
    }


async def asubmit(
    items: Iterable[BatchItem | dict[str, Any] | str] | str | Path,
    model: str | None = None,
    **kwargs: Any,
) -> Job:
    """:func:`submit` on the caller's event loop: ``job = await polybatch.asubmit(...)``.

    Planning (reading and validating the input, local disk work) runs in a worker thread; the
    uploads and batch creation go through the adapter's async client on this loop.
    """
    start = kwargs.pop("start", True)
    job = await asyncio.to_thread(submit, items, model, start=False, **kwargs)
    if start and job.status().state == "planned":
        try:
            await job.astep()
        finally:
            await job._release_client()
    return job


async def arun(
    items: Iterable[BatchItem | dict[str, Any] | str] | str | Path,
    model: str | None = None,
    *,
    timeout: float | None = None,
    **kwargs: Any,
) -> list[BatchResult]:
    """:func:`run` for async code: ``results = await polybatch.arun([...], "openai:gpt-4o-mini")``."""
    poll = {k: kwargs.pop(k) for k in ("poll_min", "poll_max") if k in kwargs}
    job = await asubmit(items, model, **kwargs)
    return await job.await_results(timeout=timeout, **poll)


def run(
    items: Iterable[BatchItem | dict[str, Any] | str] | str | Path,
    model: str | None = None,
    *,
    progress: bool = False,
    timeout: float | None = None,
    **kwargs: Any,
) -> list[BatchResult]:
    """Submit, wait and return every result, in input order (for notebooks and small jobs)."""
    job = submit(items, model, **kwargs)
    job.wait(progress=progress, timeout=timeout)
    return list(job.results())
