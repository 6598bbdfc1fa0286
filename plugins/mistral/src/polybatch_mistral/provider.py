"""The Mistral batch adapter: the official ``mistralai`` SDK's async methods behind the seam."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import aclosing
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from mistralai.client import Mistral, models
from mistralai.client.errors import MistralError, NoResponseError, ResponseValidationError
from mistralai.client.utils import BackoffStrategy, RetryConfig

from polybatch import wire
from polybatch.errors import ProviderError, ProviderHTTPError
from polybatch.items import BatchItem, BatchResult
from polybatch.providers import BatchStatus, Limits, SubmittedBatch
from polybatch.sdk import SDKProvider, connection, failure, http

from . import codec, embeddings
from .codec import TERMINAL_STATUSES

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from polybatch.sandbox.engine import SandboxEngine

#: Mistral's documented ``timeout_hours`` default; the upper bound is not documented (UNVERIFIED)
DEFAULT_TIMEOUT_HOURS = 24


class MistralProvider(SDKProvider[Mistral]):
    """Mistral's batch jobs (chat completions and embeddings) through the ``mistralai`` SDK.

    Async-first on the SDK's ``*_async`` methods: it implements ``asubmit``, ``apoll``,
    ``aresults``, ``acancel``, ``afind_batch`` and ``acleanup``; the blocking ``submit``,
    ``poll`` ... are the base class's, run on polybatch's portal loop.

    Settings: ``timeout_hours`` (job timeout, default 24), ``retries`` (let the SDK retry 429/5xx
    and connection errors with backoff, default on; never the job create), ``retry_max_elapsed_ms``
    (default 30000), ``timeout`` (seconds per HTTP request), ``find_batch_limit`` (how many recent
    jobs ``find_batch`` scans, default 2000), ``find_batch_page_size`` (jobs per list request,
    default 100).
    """

    name = "mistral"
    credential_env = ("MISTRAL_API_KEY",)
    # Mistral's batch docs: "large batches of up to 1M requests"; files.upload's docstring in the
    # SDK: "individual files can be a maximum of 512 MB". 512 MB is taken as 512 MiB minus a
    # margin for the multipart framing, so one chunk never sits exactly on the limit.
    limits = Limits(
        max_requests=1_000_000,
        max_bytes=500 * 1024 * 1024,
        completion_windows=("24h",),
    )
    sandbox_prefix = "/mistral"

    #: the ``endpoint`` of created chat jobs (an embeddings job's is ``/v1/embeddings``)
    endpoint: ClassVar[models.APIEndpoint] = "/v1/chat/completions"
    #: ``kind="embedding"`` items are accepted: they go to ``/v1/embeddings`` jobs
    supports_embeddings: ClassVar[bool] = True

    #: the SDK reads no base-URL variable; this one follows the vendors' convention
    base_url_env: ClassVar[str | None] = "MISTRAL_BASE_URL"
    errors = {
        MistralError: http(lambda e: e.status_code, lambda e: _detail(e)),
        # a 2xx body the SDK cannot read: not a status worth retrying
        ResponseValidationError: failure(lambda e: f"unexpected response: {e.message}"),
        NoResponseError: connection(),
    }

    # -- the client ------------------------------------------------------------------------
    def make_client(self) -> Mistral:
        """Build an SDK client; the base URL becomes the SDK's ``server_url``.

        Only its async methods are used (each ``Mistral`` also builds a sync httpx2 client, idle).
        """
        options: dict[str, Any] = {}
        if "timeout" in self.settings:
            options["timeout_ms"] = int(float(self.settings["timeout"]) * 1000)
        if self.settings.get("retries", True):
            # the SDK retries nothing unless told to; its status set is 429 and 5xx
            max_elapsed = int(self.settings.get("retry_max_elapsed_ms", 30_000))
            options["retry_config"] = RetryConfig(
                "backoff",
                BackoffStrategy(500, 8_000, 2.0, max_elapsed),
                retry_connection_errors=True,
            )
        return Mistral(
            api_key=self.require_api_key(), server_url=self.resolved_base_url(), **options
        )

    @staticmethod
    async def close_client(client: Mistral) -> None:
        """What ``async with Mistral(...)`` does on exit, for both of the SDK's own HTTP clients
        (each ``Mistral`` builds a sync one too, idle here); the references stay, so a straggler
        gets httpx2's "client has been closed", not a None."""
        config = client.sdk_configuration
        if config.async_client is not None and not config.async_client_supplied:
            await config.async_client.aclose()
        if config.client is not None and not config.client_supplied:
            config.client.close()

    # -- items -----------------------------------------------------------------------------
    def validate_item(self, item: BatchItem, model: str) -> None:
        """Reject what Mistral's chat-completions (or embeddings) API would refuse for every
        model: :func:`codec.check_item`, the rules the sandbox answers with."""
        codec.check_item(item, model)

    def encode(self, item: BatchItem, model: str) -> bytes:
        """One JSONL input line for ``item`` (the model goes on the job, not on the line)."""
        cid = item.custom_id
        return codec.encode_line(item, custom_id=self.wire_custom_id(cid) if cid else None)

    # -- lifecycle -------------------------------------------------------------------------
    async def asubmit(
        self, lines_path: Path, *, model: str, metadata: Mapping[str, str]
    ) -> SubmittedBatch:
        """Upload the lines file (streamed from disk) and create a batch job from it."""
        client = self.client  # first: a missing key fails before the file is opened
        filename = lines_path.name if lines_path.suffix == ".jsonl" else f"{lines_path.stem}.jsonl"
        with self.sdk_errors("uploading the batch file"), lines_path.open("rb") as fh:
            # an open file handle goes to httpx2 as is: its multipart stream reads it in 64 KiB
            # chunks as the body is sent (from the start again on an SDK retry), never whole
            uploaded = await client.files.upload_async(
                file=models.File(file_name=filename, content=fh, content_type="application/jsonl"),
                purpose="batch",
            )
        try:
            with self.sdk_errors("creating the batch job"):
                job = await client.batch.jobs.create_async(
                    endpoint=self.endpoint_for(lines_path),
                    input_files=[uploaded.id],
                    model=model,
                    metadata=dict(metadata) or None,
                    timeout_hours=int(self.settings.get("timeout_hours", DEFAULT_TIMEOUT_HOURS)),
                    # no SDK-level retry of the create: it sends no idempotency key, so a retry
                    # after a lost answer makes a second job. The runner retries instead, after
                    # looking for the first one with afind_batch (the job carries the metadata).
                    retries=None,
                )
        except ProviderError as exc:
            await self.drop_refused_upload(exc, uploaded.id)
            raise
        return SubmittedBatch(batch_id=job.id, input_file_id=uploaded.id)

    def endpoint_for(self, lines_path: Path) -> models.APIEndpoint:
        """The job ``endpoint`` of a lines file, from its first line: the planner never mixes
        chat and embedding items in one chunk. An empty or unreadable file gets the chat one."""
        first = wire.first_line(lines_path)
        if first is not None and embeddings.is_embeddings_line(first):
            return embeddings.EMBEDDINGS_ENDPOINT
        return self.endpoint

    async def _job(self, batch_id: str, action: str) -> models.BatchJob:
        client = self.client
        with self.sdk_errors(action):
            return await client.batch.jobs.get_async(job_id=batch_id)

    async def apoll(self, batch_id: str) -> BatchStatus:
        """The job's state and counts; a failed job's errors become the message."""
        return self._status(await self._job(batch_id, f"polling batch job {batch_id}"))

    @staticmethod
    def _status(job: models.BatchJob) -> BatchStatus:
        status = str(job.status)
        message = None
        if job.errors:
            message = "; ".join(
                f"{e.message} (x{e.count})" if e.count and e.count > 1 else e.message
                for e in job.errors
            )
        elif status == "FAILED":
            message = "batch job failed (no reason given)"
        return BatchStatus(
            batch_id=job.id,
            state=codec.batch_state(status),
            total=job.total_requests,
            completed=job.succeeded_requests,
            failed=job.failed_requests,
            message=message,
            output_file_id=job.output_file,
            error_file_id=job.error_file,
        )

    async def aresults(self, batch_id: str) -> AsyncIterator[BatchResult]:
        """Stream the output file, then the error file; then account for requests never run.

        A cancelled or timed-out job has no lines for the requests it did not get to (Mistral
        does not document any), so those are read back from the input file and reported as
        canceled/expired, both retryable.
        """
        job = await self._job(batch_id, f"retrieving batch job {batch_id}")
        status = str(job.status)
        if status not in TERMINAL_STATUSES:
            raise ProviderError(
                f"batch job {batch_id} is {status}; results exist only once it has ended",
                provider=self.name,
            )
        seen: set[str] = set()
        for file_id in (job.output_file, job.error_file):
            if file_id:
                # aclosing: a consumer that stops early closes the download now, not at GC
                async with aclosing(self._file_results(file_id, batch_id)) as results:
                    async for result in results:
                        seen.add(result.custom_id)
                        yield result
        leftover = {"CANCELLED": "cancelled", "TIMEOUT_EXCEEDED": "expired"}.get(status)
        if leftover is None:
            return
        for file_id in job.input_files:
            async with aclosing(self._input_ids(file_id, batch_id)) as cids:
                async for cid in cids:
                    if cid not in seen:
                        seen.add(cid)
                        yield codec.synthetic_result(
                            cid,
                            "cancelled" if leftover == "cancelled" else "expired",
                            provider=self.name,
                            batch_id=batch_id,
                        )

    async def _lines(self, file_id: str, action: str) -> AsyncGenerator[bytes, None]:
        """The file's JSONL lines, streamed; the response is closed however the caller stops."""
        client = self.client
        with self.sdk_errors(action):
            # download_async sends with stream=True and hands back the open httpx2 response,
            # body unread (error statuses are read and raised as SDKError inside the SDK)
            response = await client.files.download_async(file_id=file_id)
        try:
            lines = wire.aiter_jsonl(response.aiter_bytes())
            while True:
                # only the SDK's step is translated: a transport error mid-body becomes a
                # ProviderConnectionError, and the runner downloads again
                with self.sdk_errors(action):
                    line = await anext(lines, None)
                if line is None:
                    return
                yield line
        finally:
            # back to the pool (or dropped) even when the caller stops early or a line is bad;
            # the suspended byte iterators hold nothing once the response is closed
            with self.sdk_errors(action):
                await response.aclose()

    async def _file_results(self, file_id: str, batch_id: str) -> AsyncGenerator[BatchResult, None]:
        action = f"downloading file {file_id} of batch job {batch_id}"
        async with aclosing(self._lines(file_id, action)) as lines:
            results = wire.adecode_lines(
                lines,
                lambda line: codec.decode_result(line, provider=self.name, batch_id=batch_id),
                file=file_id,
                provider=self.name,
            )
            async for result in results:
                yield result

    async def _input_ids(self, file_id: str, batch_id: str) -> AsyncGenerator[str, None]:
        try:
            action = f"reading input file {file_id} of {batch_id}"
            async with aclosing(self._lines(file_id, action)) as lines:
                async for line in lines:
                    cid = codec.input_custom_id(line)
                    if cid is not None:
                        yield cid
        except ProviderHTTPError as exc:
            if exc.status_code != 404:
                raise
            # already cleaned up: the runner reports the missing ids as missing (retryable)

    async def acancel(self, batch_id: str) -> None:
        """Ask Mistral to cancel; the job moves through CANCELLATION_REQUESTED to CANCELLED."""
        job = await self._job(batch_id, f"retrieving batch job {batch_id}")
        if str(job.status) in TERMINAL_STATUSES:
            return  # nothing left to stop; the API may refuse to cancel an ended job
        client = self.client
        with self.sdk_errors(f"cancelling batch job {batch_id}"):
            await client.batch.jobs.cancel_async(job_id=batch_id)

    async def afind_batch(self, metadata: Mapping[str, str]) -> str | None:
        """The newest job whose metadata holds all of ``metadata`` (crash recovery).

        Filtering happens here, not through the list endpoint's ``metadata`` query: the SDK
        serialises it as exploded form fields, and how the API matches them is not documented.
        """
        client = self.client
        wanted = dict(metadata)
        limit = int(self.settings.get("find_batch_limit", 2000))
        page_size = int(self.settings.get("find_batch_page_size", 100))
        seen = 0
        page = 0
        while seen < limit:
            with self.sdk_errors("listing batch jobs"):
                listing = await client.batch.jobs.list_async(
                    page=page, page_size=page_size, order_by="-created"
                )
            jobs = listing.data or []
            for job in jobs:
                have = job.metadata if isinstance(job.metadata, dict) else {}
                if all(have.get(k) == v for k, v in wanted.items()):
                    return job.id
                seen += 1
                if seen >= limit:
                    break
            if len(jobs) < page_size or (page + 1) * page_size >= listing.total:
                break
            page += 1
        return None

    async def output_file_ids(self, batch_id: str) -> list[str]:
        """The job's ``output_file`` and ``error_file``."""
        job = await self._job(batch_id, f"retrieving batch job {batch_id}")
        return [f for f in (job.output_file, job.error_file) if f]

    async def sdk_delete_file(self, client: Mistral, file_id: str) -> None:
        """Delete an uploaded file (results stay with Mistral)."""
        await client.files.delete_async(file_id=file_id)

    # -- the sandbox -----------------------------------------------------------------------
    @classmethod
    def sandbox_routes(cls, engine: SandboxEngine) -> list[BaseRoute]:
        """The emulated Files and Batch Jobs API (see :mod:`polybatch_mistral.sandbox`)."""
        from .sandbox import mistral_routes

        return mistral_routes(engine)

    @classmethod
    def sandbox_settings(cls, server_url: str, api_key: str) -> dict[str, Any]:
        """Point the SDK's ``server_url`` at the sandbox's ``/mistral`` (it appends ``/v1/...``)."""
        return {"api_key": api_key, "base_url": f"{server_url}{cls.sandbox_prefix}"}


def _detail(exc: MistralError) -> str:
    """The useful part of an SDK error: the API's message if the body has one, else the text."""
    body = exc.body or ""
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if isinstance(data, dict):
        message = data.get("message")
        if message is None and isinstance(data.get("error"), dict):
            message = data["error"].get("message")
        if message is None and "detail" in data:
            message = data["detail"]
        if message is not None:
            return str(message)
    return body[:500] or exc.message
