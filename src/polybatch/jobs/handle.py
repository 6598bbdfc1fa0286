"""The public handle on a job: :class:`Job`, :class:`JobStatus` and :func:`jobs`.

A :class:`Job` is a handle on a row of the ledger; all of its state lives there and in its job
directory, so any process can pick a job up (``Job.load``) and carry on where another stopped.

The logic is written once, as coroutines awaiting the adapters' async lifecycle (the SDKs' async
clients). The blocking API (``Job.wait``, ``Job.cancel``) runs the same coroutines on polybatch's
portal loop (:mod:`polybatch.portal`); the async API (``Job.await_results``) awaits them on the
caller's loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

from .. import portal
from ..errors import ConfigError, JobError
from ..items import BatchItem, BatchResult, Usage, result_status
from ..pricing import Cost
from ..providers import BatchProvider
from . import costs, lease, queue, stream, waiting
from .cleanup import delete_at_provider
from .clients import make_provider, remembered
from .driver import MAX_TRANSIENT_FAILURES, JobDriver
from .files import ResultList, copy_private, ensure_final
from .ledger import ChunkRow, JobRow, Ledger, open_ledger
from .sandboxed import is_sandbox_job, sandbox_settings_for
from .status import BatchInfo, JobStatus, request_counts
from .stream import Deliveries, ResultCallback
from .tally import final_tally


def job_settings(row: JobRow, ledger: Ledger, *, sandbox: bool = True) -> dict[str, Any]:
    """The provider settings ``row`` was recorded with; for a sandbox job (unless ``sandbox`` is
    False), pointed at this process's sandbox on the state kept beside ``ledger``."""
    if sandbox and is_sandbox_job(row):
        return dict(sandbox_settings_for(row, ledger.path.parent))
    return dict(row.options.get("provider_settings", {}))


class Job:
    """A handle on one polybatch job: many items, one or more provider batches."""

    #: retryable failures in a row on one chunk before ``step`` gives up and raises; with the
    #: adaptive poll interval (capped at five minutes) that is over two hours of outage
    max_transient_failures: int = MAX_TRANSIENT_FAILURES

    def __init__(self, row: JobRow, ledger: Ledger, provider: BatchProvider | None = None) -> None:
        self.ledger = ledger
        self._provider = provider
        self._driver = JobDriver(row, ledger, lambda: self.provider)

    @property
    def _row(self) -> JobRow:
        return self._driver.row

    # -- identity --------------------------------------------------------------------------
    @property
    def id(self) -> str:
        """The job id (derived from the input content, model and options)."""
        return self._row.id

    @property
    def name(self) -> str | None:
        """The job's name (``name=`` / ``--name``), if it was given one."""
        name = self.options.get("name")
        return str(name) if name else None

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
        return self._driver.files.dir

    @property
    def results_path(self) -> Path:
        """Where the final results JSONL is written."""
        return self._driver.files.results_path

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
        client: Any = None,
        provider_settings: Mapping[str, Any] | None = None,
    ) -> Job:
        """Open an existing job by id, unique id prefix or name, from any process.

        ``client``: your own SDK client (an ``openai.AsyncOpenAI``, ``anthropic.AsyncAnthropic``,
        ...), built with your proxies, timeouts and credentials; the adapter talks through it and
        never closes it. ``provider_settings`` are laid over the settings the job recorded.
        """
        ledger = open_ledger(home)
        row = ledger.job_by_prefix(job_id)
        if provider is None and client is None and not provider_settings:
            provider = remembered(row.id)
        if provider is None and not (api_key or base_url) and is_sandbox_job(row):
            return cls(row, ledger)  # its sandbox starts when the job first needs the provider
        if provider is None or api_key or base_url:
            settings = job_settings(row, ledger, sandbox=not base_url)
            settings.update(provider_settings or {})
            if api_key:
                settings["api_key"] = api_key
            if base_url:
                settings["base_url"] = base_url
            provider = make_provider(row.provider, settings)
        if client is not None:
            provider.use_client(client)
        return cls(row, ledger, provider)

    def _refresh(self) -> None:
        self._driver.refresh()

    @property
    def provider(self) -> BatchProvider:
        """The provider adapter this job talks to."""
        if self._provider is None:
            self._provider = make_provider(self.provider_name, job_settings(self._row, self.ledger))
        return self._provider

    # -- status ----------------------------------------------------------------------------
    def chunks(self) -> list[ChunkRow]:
        """The job's chunks (provider batches) as the ledger has them."""
        return self.ledger.chunks(self.id)

    def batches(self) -> list[BatchInfo]:
        """Each provider batch of the job (id, state, chunk, file ids), from the ledger."""
        return [BatchInfo.of(c) for c in self.chunks()]

    def status(self) -> JobStatus:
        """Counts of items and chunks, from the ledger (no provider call).

        Each request is counted once, by its latest outcome: the merged results of the last
        finished round, updated by the chunks of a retry round as they are collected; while a
        batch runs, its progress as the provider reported it at the last poll.
        """
        self._refresh()
        chunks = self.chunks()
        by_state: dict[str, int] = {}
        for c in chunks:
            by_state[c.state] = by_state.get(c.state, 0) + 1
        ok, failed = request_counts(self.ledger, self._row, self._driver.files, chunks)
        return JobStatus(
            job_id=self.id,
            state=self._row.state,
            provider=self.provider_name,
            model=self.model,
            total=self._row.n_items,
            succeeded=ok,
            failed=failed,
            chunks=by_state,
            waiting_for_queue=sum(queue.waiting(c) for c in chunks),
            name=self.name,
        )

    # -- the loop --------------------------------------------------------------------------
    def step(self) -> float | None:
        """Advance the job once: submit, poll, collect. Returns a suggested wait, None when done."""
        return portal.run(self.astep())

    async def astep(self) -> float | None:
        """:meth:`step` on the caller's event loop.

        The step holds the job's lease (:mod:`.lease`): JobBusyError, and nothing sent, while
        another live process owns the job."""
        self._driver.max_transient_failures = self.max_transient_failures
        with lease.owning(self.ledger, self.id):
            return await self._driver.astep()

    def wait(
        self,
        *,
        progress: bool = False,
        timeout: float | None = None,
        poll_min: float | None = None,
        poll_max: float | None = None,
        on_result: ResultCallback | None = None,
        on_error: ResultCallback | None = None,
    ) -> Job:
        """Drive the job until its results are final; with ``progress``, a tqdm bar on stderr.

        ``on_result`` / ``on_error`` (sync or async callables) get each final success / failure
        as its chunk lands, while the rest of the job runs (see :mod:`polybatch.jobs.stream`:
        an exception in a callback stops the waiting; the job stays resumable)."""
        return portal.run(
            self.await_done(
                progress=progress,
                timeout=timeout,
                poll_min=poll_min,
                poll_max=poll_max,
                on_result=on_result,
                on_error=on_error,
            )
        )

    def stream(self, *, errors: bool = True, **wait: Any) -> Iterator[BatchResult]:
        """Drive the job and yield each final result as its chunk lands (failures too unless
        ``errors=False``); ``wait`` takes :meth:`wait`'s options. Constant memory."""
        return portal.portal.iterate(self.astream(errors=errors, **wait))

    def astream(self, *, errors: bool = True, **wait: Any) -> AsyncIterator[BatchResult]:
        """:meth:`stream` on the caller's loop: ``async for r in job.astream(): ...``."""

        async def waiting(deliveries: Deliveries) -> None:
            with lease.owning(self.ledger, self.id):
                await self._await_done(deliveries=deliveries, **wait)

        return stream.astream(waiting, errors=errors)

    async def await_done(
        self,
        *,
        progress: bool = False,
        timeout: float | None = None,
        poll_min: float | None = None,
        poll_max: float | None = None,
        on_result: ResultCallback | None = None,
        on_error: ResultCallback | None = None,
    ) -> Job:
        """:meth:`wait` on the caller's event loop (polls without blocking it).

        The job's lease is held throughout, between the polls too (JobBusyError at once if
        another live process owns the job)."""
        with lease.owning(self.ledger, self.id):
            return await self._await_done(
                progress=progress,
                timeout=timeout,
                poll_min=poll_min,
                poll_max=poll_max,
                deliveries=Deliveries(on_result, on_error),
            )

    async def _await_done(self, **options: Any) -> Job:
        """The waiting loop (:func:`.waiting.until_done`); the caller holds the lease."""
        await waiting.until_done(self, self._driver, **options)
        return self

    async def _release_client(self) -> None:
        """At the end of an async call on the caller's loop, close the client built for that loop
        (the caller may close its loop next). The portal's clients serve every blocking call."""
        if not portal.portal.in_portal():
            await self.provider.aclose()

    # -- results ---------------------------------------------------------------------------
    def results(self, status: str | None = None) -> Iterator[BatchResult]:
        """Stream the final results (in input order), optionally only those of one status:
        ``succeeded``, ``errored``, ``expired``, ``cancelled``, or ``failed`` (every result that
        did not succeed). An unknown status is a ConfigError naming the valid ones."""
        if status is not None and status != "failed":
            try:
                status = result_status(status)
            except ValueError as exc:
                raise ConfigError(f"{exc} (or 'failed')") from None
        self._refresh()
        ensure_final(self._row)
        return self._driver.files.results(status)

    def requests(self, custom_ids: Iterable[str] | None = None) -> Iterator[BatchItem]:
        """The job's items as submitted (defaults applied), optionally only some ids."""
        return self._driver.files.requests(custom_ids)

    def estimate(self) -> dict[str, Any] | None:
        """The cost range estimated before submission (strings for money), if prices were known."""
        est: dict[str, Any] | None = self.options.get("estimate")
        return est

    def cost(self, mode: Literal["batch", "standard"] = "batch") -> Cost:
        """What the finished job cost (or would have cost at ``standard`` prices), per bucket.

        Raises PriceNotFoundError when a model that used tokens has no price.
        """
        return costs.job_cost(self, mode=mode)

    def usage(self) -> Usage:
        """Total token usage over the job's results (from the ledger's tally, not the file)."""
        self._refresh()
        return final_tally(self.ledger, self._row).total_usage()

    def counts(self) -> dict[str, int]:
        """How many final results have each status (one per custom_id), from the ledger."""
        self._refresh()
        return dict(sorted(final_tally(self.ledger, self._row).statuses.items()))

    def export_results(self, path: str | Path) -> Path:
        """Copy the final results to ``path`` (owner-only permissions)."""
        self._refresh()
        ensure_final(self._row)
        return copy_private(self.results_path, Path(path))

    def retry(self, rounds: int = 1) -> bool:
        """Resubmit the retryable failures of a finished job as new rounds; False if none.

        Only requests that expired, were cancelled or failed transiently are sent again;
        permanent errors (an invalid request) keep their result. Call ``wait()`` afterwards.
        JobBusyError while another live process owns the job.
        """
        with lease.owning(self.ledger, self.id):
            return self._retry(rounds)

    def _retry(self, rounds: int) -> bool:
        self._refresh()
        if self._row.state != "completed":
            raise JobError(
                f"job {self.id} is {self._row.state}: only a completed job can be retried"
            )
        last = max(c.round for c in self.chunks())
        options = {**self.options, "retry_failed": last + rounds}
        self.ledger.update_job(self.id, options=options, state="running")
        self._refresh()
        if self._driver.plan_retry(last):
            return True
        self.ledger.update_job(self.id, state="completed")
        self._refresh()
        return False

    async def await_results(self, status: str | None = None, **wait: Any) -> ResultList:
        """Wait for the job on the caller's loop (Jupyter's too), then return its results.

        ``wait`` takes :meth:`wait`'s options. The provider calls go through the adapter's async
        client on this loop. The results are a :class:`~polybatch.jobs.files.ResultList`, read
        from the results file as they are iterated.
        """
        await self.await_done(**wait)
        return await asyncio.to_thread(self.result_list, status)

    def result_list(self, status: str | None = None) -> ResultList:
        """The final results as a sequence read on demand (see :class:`~.files.ResultList`)."""
        self._refresh()
        ensure_final(self._row)
        counts = final_tally(self.ledger, self._row)
        if status is None:
            n = counts.total
        elif status == "failed":
            n = counts.failed
        else:
            n = counts.statuses.get(status, 0)
        return ResultList(self._driver.files, n, status)

    # -- clean-up --------------------------------------------------------------------------
    def cleanup(self, *, inputs: bool | None = None, outputs: bool = True) -> list[str]:
        """Delete what the finished job's batches left at the provider: the output and error
        files (``outputs``), where the provider allows (OpenAI-style Files APIs, Mistral,
        Gemini), and the uploaded input files (``inputs``; by default only if the job kept them
        with ``keep_files``, as it deletes them itself otherwise). The results stay on disk.
        Returns the output file ids deleted; a file that cannot be deleted is a warning.
        JobError unless the job finished."""
        return portal.run(self.acleanup(inputs=inputs, outputs=outputs))

    async def acleanup(self, *, inputs: bool | None = None, outputs: bool = True) -> list[str]:
        """:meth:`cleanup` on the caller's event loop."""
        self._refresh()
        ensure_final(self._row)
        if inputs is None:
            inputs = bool(self.options.get("keep_files"))
        try:
            with lease.owning(self.ledger, self.id):
                return await delete_at_provider(
                    self.id, self.provider, self.chunks(), inputs=inputs, outputs=outputs
                )
        finally:
            await self._release_client()

    # -- cancel ----------------------------------------------------------------------------
    def abandon(self) -> None:
        """Mark the job abandoned (it can never finish): nothing more is sent or collected; the
        results written so far stay on disk."""
        self.ledger.update_job(self.id, state="abandoned")
        self._refresh()

    def cancel(self) -> None:
        """Cancel the job: in-flight batches are cancelled, queued chunks never submitted.

        Results already produced are kept; call ``wait()`` to collect them.
        """
        portal.run(self.acancel())

    async def acancel(self) -> None:
        """:meth:`cancel` on the caller's event loop (JobBusyError while another live process
        owns the job: cancel it there, or once it has stopped)."""
        try:
            with lease.owning(self.ledger, self.id):
                await self._driver.acancel()
        finally:
            await self._release_client()


def jobs(*, home: Path | None = None, since: float | None = None) -> list[Job]:
    """Every job in the ledger, newest first (``since``: a Unix time)."""
    ledger = open_ledger(home)
    return [Job(row, ledger) for row in ledger.list_jobs(since=since)]
