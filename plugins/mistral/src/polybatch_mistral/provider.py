"""The Mistral batch adapter: the official ``mistralai`` SDK behind polybatch's BatchProvider seam."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import httpx2
from mistralai.client import Mistral, models
from mistralai.client.errors import MistralError, NoResponseError
from mistralai.client.utils import BackoffStrategy, RetryConfig

from polybatch import wire
from polybatch.errors import ItemValidationError, ProviderError
from polybatch.items import BatchItem, BatchResult
from polybatch.providers import BatchProvider, BatchState, BatchStatus, Limits, SubmittedBatch

from . import codec

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from polybatch.sandbox.engine import SandboxEngine

#: Mistral job statuses -> neutral states. QUEUED has not started, which is what "validating"
#: means to the runner; a status newer than this table reads as in progress.
STATES: dict[str, BatchState] = {
    "QUEUED": "validating",
    "RUNNING": "in_progress",
    "SUCCESS": "completed",
    "FAILED": "failed",
    "TIMEOUT_EXCEEDED": "expired",
    "CANCELLATION_REQUESTED": "cancelling",
    "CANCELLED": "cancelled",
}
TERMINAL_STATUSES = frozenset({"SUCCESS", "FAILED", "TIMEOUT_EXCEEDED", "CANCELLED"})
#: body fields BatchItem spells itself; setting them through ``extra`` would be ambiguous
_STRUCTURAL_EXTRA = frozenset({"model", "messages", "stream"})
_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
#: a ``Bearer <key>`` echoed back in an error body, masked before it reaches a message
_BEARER_RE = re.compile(r"(?i)(bearer\s+)[^\s\"',]+")
#: Mistral's documented ``timeout_hours`` default; the upper bound is not documented (UNVERIFIED)
DEFAULT_TIMEOUT_HOURS = 24


class MistralProvider(BatchProvider):
    """Mistral's batch jobs (chat completions) through the ``mistralai`` SDK.

    Settings: ``timeout_hours`` (job timeout, default 24), ``retries`` (let the SDK retry 429/5xx
    and connection errors with backoff, default on), ``retry_max_elapsed_ms`` (default 30000),
    ``timeout`` (seconds per HTTP request), ``find_batch_limit`` (how many recent jobs
    ``find_batch`` scans, default 2000), ``find_batch_page_size`` (jobs per list request, default 100).
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

    #: the ``endpoint`` of created jobs
    endpoint: ClassVar[models.APIEndpoint] = "/v1/chat/completions"

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(api_key=api_key, base_url=base_url, settings=settings)
        self._client: Mistral | None = None
        self._client_key: str | None = None
        self._client_lock = threading.Lock()

    # -- the client ------------------------------------------------------------------------
    @property
    def client(self) -> Mistral:
        """The SDK client, built on first use (so listing providers needs no key)."""
        with self._client_lock:
            if self._client is None:
                self._client = self.make_client()
            return self._client

    def make_client(self) -> Mistral:
        """Build the SDK client; ``base_url`` becomes the SDK's ``server_url``."""
        key = self.require_api_key()
        self._client_key = key
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
        return Mistral(api_key=key, server_url=self.base_url or None, **options)

    # -- errors ----------------------------------------------------------------------------
    def _scrub(self, text: str) -> str:
        for key in (self.api_key, self._client_key):
            if key:
                text = text.replace(key, "***")
        return _BEARER_RE.sub(r"\1***", text)

    @contextmanager
    def _sdk_errors(self, action: str) -> Iterator[None]:
        """Translate every SDK (and transport) exception into ProviderError, once, here."""
        try:
            yield
        except MistralError as exc:
            status = exc.status_code
            detail = self._scrub(_detail(exc))
            hint = f" (check {self.credential_env[0]})" if status in (401, 403) else ""
            raise ProviderError(
                f"{action} failed: HTTP {status}: {detail}{hint}",
                provider=self.name,
                status_code=status,
            ) from exc
        except (NoResponseError, httpx2.HTTPError) as exc:
            # no status: ProviderError.retryable treats it as transient
            raise ProviderError(
                f"{action} failed: {type(exc).__name__}: {self._scrub(str(exc))}",
                provider=self.name,
            ) from exc

    # -- items -----------------------------------------------------------------------------
    def validate_item(self, item: BatchItem, model: str) -> None:
        """Reject what Mistral's chat-completions API would refuse for every model."""

        def bad(message: str, field: str) -> ItemValidationError:
            return ItemValidationError(message, field=field)

        if item.kind == "embedding":
            # Mistral's batch API has /v1/embeddings, but this adapter only speaks chat
            # completions (codec, sandbox): refuse before anything is uploaded, never mis-encode
            raise bad(
                "polybatch's Mistral adapter does not offer embedding batches "
                "(use openai or azure for embeddings)",
                "kind",
            )
        if not (item.model or model):
            raise bad("a model is required", "model")
        clash = _STRUCTURAL_EXTRA & item.extra.keys()
        if clash:
            name = sorted(clash)[0]
            raise bad(
                f"'{name}' cannot be set through extra; use the item's own field", f"extra.{name}"
            )
        for neutral, body_key in codec.PARAM_TO_BODY.items():
            if getattr(item, neutral) is not None and body_key in item.extra:
                raise bad(f"{neutral} is set both on the item and as extra.{body_key}", "extra")
        if "seed" in item.extra:
            raise bad("Mistral calls the seed 'random_seed'; use the item's seed field", "extra")
        for i, message in enumerate(item.messages):
            if isinstance(message.content, list):
                allowed = (
                    codec.SYSTEM_CONTENT_TYPES if message.role == "system" else codec.CONTENT_TYPES
                )
                for j, part in enumerate(message.content):
                    kind = part.get("type")
                    if kind not in allowed:
                        raise bad(
                            f"Mistral {message.role} messages cannot hold {kind!r} parts",
                            f"messages[{i}].content[{j}]",
                        )
        if item.seed is not None and not 0 <= item.seed <= codec.INT64_MAX:
            raise bad("Mistral's random_seed is a non-negative integer", "seed")
        rf = item.response_format
        if rf is not None and rf.get("type") == "json_schema":
            js = rf.get("json_schema")
            if not isinstance(js, dict) or not _NAME_RE.match(str(js.get("name", ""))):
                raise bad(
                    "json_schema needs a 'name' of letters, digits, '_' or '-' (at most 64)",
                    "response_format.json_schema.name",
                )
            if not isinstance(js.get("schema"), dict):
                raise bad("json_schema needs a 'schema' object", "response_format.json_schema")

    def encode(self, item: BatchItem, model: str) -> bytes:
        """One JSONL input line for ``item`` (the model goes on the job, not on the line)."""
        cid = item.custom_id
        return codec.encode_line(item, custom_id=self.wire_custom_id(cid) if cid else None)

    # -- lifecycle -------------------------------------------------------------------------
    def submit(
        self, lines_path: Path, *, model: str, metadata: Mapping[str, str]
    ) -> SubmittedBatch:
        """Upload the lines file (streamed from disk) and create a batch job from it."""
        client = self.client
        filename = lines_path.name if lines_path.suffix == ".jsonl" else f"{lines_path.stem}.jsonl"
        with self._sdk_errors("uploading the batch file"), lines_path.open("rb") as fh:
            # an open file handle goes to httpx as is, which streams the multipart body in chunks
            uploaded = client.files.upload(
                file=models.File(file_name=filename, content=fh, content_type="application/jsonl"),
                purpose="batch",
            )
        try:
            with self._sdk_errors("creating the batch job"):
                job = client.batch.jobs.create(
                    endpoint=self.endpoint,
                    input_files=[uploaded.id],
                    model=model,
                    metadata=dict(metadata) or None,
                    timeout_hours=int(self.settings.get("timeout_hours", DEFAULT_TIMEOUT_HOURS)),
                )
        except ProviderError:
            # don't leave an orphan upload behind; the original error is what matters
            self._delete_file(uploaded.id)
            raise
        return SubmittedBatch(batch_id=job.id, input_file_id=uploaded.id)

    def _job(self, batch_id: str, action: str) -> models.BatchJob:
        with self._sdk_errors(action):
            return self.client.batch.jobs.get(job_id=batch_id)

    def poll(self, batch_id: str) -> BatchStatus:
        """The job's state and counts; a failed job's errors become the message."""
        return self._status(self._job(batch_id, f"polling batch job {batch_id}"))

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
            state=STATES.get(status, "in_progress"),
            total=job.total_requests,
            completed=job.succeeded_requests,
            failed=job.failed_requests,
            message=message,
        )

    def results(self, batch_id: str) -> Iterator[BatchResult]:
        """Stream the output file, then the error file; then account for requests never run.

        A cancelled or timed-out job has no lines for the requests it did not get to (Mistral
        does not document any), so those are read back from the input file and reported as
        canceled/expired, both retryable.
        """
        job = self._job(batch_id, f"retrieving batch job {batch_id}")
        status = str(job.status)
        if status not in TERMINAL_STATUSES:
            raise ProviderError(
                f"batch job {batch_id} is {status}; results exist only once it has ended",
                provider=self.name,
            )
        seen: set[str] = set()
        for file_id in (job.output_file, job.error_file):
            if file_id:
                for result in self._file_results(file_id, batch_id):
                    seen.add(result.custom_id)
                    yield result
        leftover = {"CANCELLED": "canceled", "TIMEOUT_EXCEEDED": "expired"}.get(status)
        if leftover is None:
            return
        for file_id in job.input_files:
            for cid in self._input_ids(file_id, batch_id):
                if cid not in seen:
                    seen.add(cid)
                    yield codec.synthetic_result(
                        cid,
                        "canceled" if leftover == "canceled" else "expired",
                        provider=self.name,
                        batch_id=batch_id,
                    )

    @contextmanager
    def _download(self, file_id: str, action: str) -> Iterator[Iterator[bytes]]:
        """The file's bytes, streamed; the response is closed however the caller stops."""
        with self._sdk_errors(action):
            response = self.client.files.download(file_id=file_id)
        try:
            with self._sdk_errors(action):
                yield response.iter_bytes()
        finally:
            response.close()

    def _file_results(self, file_id: str, batch_id: str) -> Iterator[BatchResult]:
        with self._download(file_id, f"downloading file {file_id} of batch job {batch_id}") as data:
            for number, line in enumerate(wire.iter_jsonl(data), 1):
                try:
                    result = codec.decode_result(line, provider=self.name, batch_id=batch_id)
                except (codec.WireError, ValueError, TypeError) as exc:
                    # a line we cannot attribute to a custom_id: losing it silently is worse
                    raise ProviderError(
                        f"file {file_id} line {number}: {exc}", provider=self.name
                    ) from exc
                yield result

    def _input_ids(self, file_id: str, batch_id: str) -> Iterator[str]:
        try:
            with self._download(file_id, f"reading input file {file_id} of {batch_id}") as data:
                for line in wire.iter_jsonl(data):
                    cid = codec.input_custom_id(line)
                    if cid is not None:
                        yield cid
        except ProviderError as exc:
            if exc.status_code != 404:
                raise
            # already cleaned up: the runner reports the missing ids as missing (retryable)

    def cancel(self, batch_id: str) -> None:
        """Ask Mistral to cancel; the job moves through CANCELLATION_REQUESTED to CANCELLED."""
        job = self._job(batch_id, f"retrieving batch job {batch_id}")
        if str(job.status) in TERMINAL_STATUSES:
            return  # nothing left to stop; the API may refuse to cancel an ended job
        with self._sdk_errors(f"cancelling batch job {batch_id}"):
            self.client.batch.jobs.cancel(job_id=batch_id)

    def find_batch(self, metadata: Mapping[str, str]) -> str | None:
        """The newest job whose metadata holds all of ``metadata`` (crash recovery).

        Filtering happens here, not through the list endpoint's ``metadata`` query: the SDK
        serialises it as exploded form fields, and how the API matches them is not documented.
        """
        wanted = dict(metadata)
        limit = int(self.settings.get("find_batch_limit", 2000))
        page_size = int(self.settings.get("find_batch_page_size", 100))
        seen = 0
        page = 0
        while seen < limit:
            with self._sdk_errors("listing batch jobs"):
                listing = self.client.batch.jobs.list(
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

    def cleanup(self, submitted: SubmittedBatch) -> None:
        """Delete the uploaded input file (results stay with Mistral)."""
        if submitted.input_file_id:
            self._delete_file(submitted.input_file_id, quiet=False)

    def _delete_file(self, file_id: str, *, quiet: bool = True) -> None:
        try:
            with self._sdk_errors(f"deleting file {file_id}"):
                self.client.files.delete(file_id=file_id)
        except ProviderError as exc:
            if quiet or exc.status_code == 404:
                return  # already gone is the goal reached
            raise

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

    @classmethod
    def sandbox_env(cls, server_url: str, api_key: str) -> dict[str, str]:
        """What a user exports: the SDK reads the key from the environment, never the URL."""
        return {"MISTRAL_API_KEY": api_key}


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
