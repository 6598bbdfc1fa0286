"""The Gemini Developer API batch-mode adapter, through the official ``google-genai`` SDK.

Submitting: a lines file up to ``inline_max_bytes`` (default :data:`INLINE_MAX_BYTES`) and
``inline_max_requests`` (default :data:`INLINE_MAX_REQUESTS`) is sent inline (the SDK's
``InlinedRequest`` list, key in each request's ``metadata``); a larger one is uploaded through the
Files API (resumable upload, mime type ``jsonl``) and the batch is created from its ``file_name``.
Inline responses come back inside the batch resource itself, on every ``batches.get`` of the ended
job, which is why the inline thresholds are set well under the API's 20 MB request limit.

State mapping (the SDK turns ``BATCH_STATE_*`` into ``JOB_STATE_*``; neutral
:data:`~polybatch.providers.BatchState` on the right):

- ``PENDING``, ``QUEUED``, ``UNSPECIFIED`` -> ``validating``;
- ``RUNNING``, ``UPDATING``, ``PAUSED`` -> ``in_progress``; ``CANCELLING`` -> ``cancelling``;
- ``SUCCEEDED``, ``PARTIALLY_SUCCEEDED`` -> ``completed``; ``FAILED`` -> ``failed``;
  ``CANCELLED`` -> ``cancelled``; ``EXPIRED`` -> ``expired``.

Results: per-request status objects become ``errored`` results (``CANCELLED`` -> ``canceled``;
``DEADLINE_EXCEEDED`` in an expired job -> ``expired``). The docs say an expired job (48 h pending
or running) has no results: then nothing is yielded and the runner fills the requests in as
retryable ``missing_result`` errors. ``batches.get`` drops ``batchStats`` and the job's ``error``
for the Developer API, so :meth:`poll` reads the job through the SDK's generic
``operations.get`` instead (:class:`RawBatchOperation`), which keeps them.

Gemini batches carry no metadata, only a ``display_name``: :meth:`submit` writes the polybatch
job/chunk tags into it (:func:`codec.display_name`) and :meth:`find_batch` searches
``batches.list`` for it.

Batch ids are the resource names (``batches/<id>``): the SDK accepts nothing else for the
Developer API.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn, Self, TypeVar

import pydantic
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from polybatch import wire
from polybatch.errors import ItemValidationError, ProviderError
from polybatch.items import BatchItem, BatchResult
from polybatch.providers import BatchProvider, BatchState, BatchStatus, Limits, SubmittedBatch

from . import codec

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from polybatch.sandbox.engine import SandboxEngine

T = TypeVar("T")

#: default inline threshold: well under the 20 MB request limit, since inline responses are
#: returned inside the batch resource and a big one makes every final ``batches.get`` heavy
INLINE_MAX_BYTES = 5 * 1024 * 1024
#: default inline request-count threshold (same reason: the responses travel in the resource)
INLINE_MAX_REQUESTS = 1000
#: the SDK's default API version for the Developer API is v1 (google-genai 3.4.0)
DEFAULT_API_VERSION = "v1"

_STATES: dict[str, BatchState] = {
    "JOB_STATE_UNSPECIFIED": "validating",
    "JOB_STATE_QUEUED": "validating",
    "JOB_STATE_PENDING": "validating",
    "JOB_STATE_RUNNING": "in_progress",
    "JOB_STATE_UPDATING": "in_progress",
    "JOB_STATE_PAUSED": "in_progress",
    "JOB_STATE_CANCELLING": "cancelling",
    "JOB_STATE_SUCCEEDED": "completed",
    "JOB_STATE_PARTIALLY_SUCCEEDED": "completed",
    "JOB_STATE_FAILED": "failed",
    "JOB_STATE_CANCELLED": "cancelled",
    "JOB_STATE_EXPIRED": "expired",
}


def _transport_errors() -> tuple[type[BaseException], ...]:
    """The HTTP stacks' own errors (connection refused, timeouts), which the SDK lets through.

    google-genai runs on httpx or httpx2, whichever is installed; neither is our dependency.
    """
    found: list[type[BaseException]] = []
    for name in ("httpx2", "httpx"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        found.append(module.HTTPError)
    return tuple(found)


_TRANSPORT_ERRORS = _transport_errors()


def neutral_state(state: Any) -> BatchState:
    """A ``JOB_STATE_*`` / ``BATCH_STATE_*`` value in neutral terms (unknown: ``in_progress``)."""
    name = str(getattr(state, "value", state) or "JOB_STATE_UNSPECIFIED")
    name = name.replace("BATCH_STATE_", "JOB_STATE_")
    return _STATES.get(name, "in_progress")


class GeminiProvider(BatchProvider):
    """Provider ``gemini``: Gemini Developer API batch mode, inline or file input.

    Settings: ``inline_max_bytes`` / ``inline_max_requests`` (ints, defaults above) choose between
    inline and file input; ``api_version`` (``v1`` or ``v1beta``, default the SDK's ``v1``);
    ``max_retries`` (int, default 0: the SDK's default of no retries, the runner retries whole
    steps) makes the SDK retry 408/429/5xx and connection errors; ``timeout`` (seconds).
    """

    name: ClassVar[str] = "gemini"
    credential_env: ClassVar[tuple[str, ...]] = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
    #: Sources: the batch-mode docs (ai.google.dev/gemini-api/docs/batch-mode): inline requests
    #: must total < 20 MB, an input file may be up to 2 GB (the Files API limit). The docs state
    #: no per-job request count; 100,000 matches Anthropic's cap and keeps one job's responses file
    #: and its enqueued-token quota (the real limit, per model and tier) within reason.
    limits: ClassVar[Limits] = Limits(
        max_requests=100_000,
        max_bytes=2 * 1024 * 1024 * 1024,
        completion_windows=("48h",),
        custom_id_pattern=None,
    )
    sandbox_prefix: ClassVar[str] = "/gemini"

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(api_key=api_key, base_url=base_url, settings=settings)
        self._client: genai.Client | None = None

    # -- the client -------------------------------------------------------------------------
    @property
    def client(self) -> genai.Client:
        """The SDK client, built on first use (so listing providers needs no key)."""
        if self._client is None:
            retries = int(self.settings.get("max_retries", 0))
            timeout = self.settings.get("timeout")
            options = types.HttpOptions(
                base_url=self.base_url or os.environ.get("GOOGLE_GEMINI_BASE_URL") or None,
                api_version=str(self.settings.get("api_version", DEFAULT_API_VERSION)),
                retry_options=types.HttpRetryOptions(attempts=retries + 1) if retries else None,
                # the SDK takes milliseconds
                timeout=int(float(timeout) * 1000) if timeout is not None else None,
            )
            try:
                self._client = genai.Client(api_key=self.require_api_key(), http_options=options)
            except ValueError as exc:
                raise ProviderError(f"client setup failed: {exc}", provider=self.name) from exc
        return self._client

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        """Run one SDK call, translating its exceptions into ProviderError."""
        try:
            return fn()
        except genai_errors.APIError as exc:
            # the server's message and status name; the key never appears in either
            detail = exc.message or str(exc.status or "") or type(exc).__name__
            status = f"{exc.status}: " if exc.status else ""
            self._raise(
                f"{what} failed: {status}{detail}", exc, int(exc.code) if exc.code else None
            )
        except _TRANSPORT_ERRORS as exc:
            self._raise(f"{what} failed: {type(exc).__name__}: {exc}", exc, None)
        except (ValueError, KeyError, pydantic.ValidationError) as exc:
            # the SDK's own checks (bad names, a missing upload URL, an unparsable reply)
            self._raise(f"{what} failed: {exc}", exc, 502 if isinstance(exc, KeyError) else 400)

    def _raise(self, message: str, exc: BaseException, status: int | None) -> NoReturn:
        raise ProviderError(message, provider=self.name, status_code=status) from exc

    @property
    def inline_max_bytes(self) -> int:
        """Lines files up to this size are sent inline."""
        return int(self.settings.get("inline_max_bytes", INLINE_MAX_BYTES))

    @property
    def inline_max_requests(self) -> int:
        """Lines files with up to this many requests are sent inline."""
        return int(self.settings.get("inline_max_requests", INLINE_MAX_REQUESTS))

    # -- items ------------------------------------------------------------------------------
    def validate_item(self, item: BatchItem, model: str) -> None:
        """Raise ItemValidationError if the item cannot be expressed for Gemini (either input)."""
        line = codec.encode_line(item)
        try:
            codec.to_inlined(line)
        except pydantic.ValidationError as exc:
            raise ItemValidationError(
                f"item {item.custom_id!r}: the google-genai SDK rejects the request: "
                f"{exc.errors()[0].get('msg', exc)}",
                field="extra",
            ) from exc

    def encode(self, item: BatchItem, model: str) -> bytes:
        """One ``{"key", "request"}`` input-file line as compact JSON."""
        return wire.dumps(codec.encode_line(item))

    # -- the batch lifecycle ----------------------------------------------------------------
    def submit(
        self, lines_path: Path, *, model: str, metadata: Mapping[str, str]
    ) -> SubmittedBatch:
        """Create one batch job: inline for small files, else from an uploaded input file."""
        path = Path(lines_path)
        size = path.stat().st_size
        config = types.CreateBatchJobConfig(display_name=codec.display_name(metadata))
        if size <= self.inline_max_bytes:
            with path.open("rb") as f:
                lines = [json.loads(raw) for raw in f if raw.strip()]
            if len(lines) <= self.inline_max_requests:
                try:
                    inlined = [codec.to_inlined(line) for line in lines]
                except pydantic.ValidationError as exc:
                    raise ProviderError(
                        f"create batch failed: the SDK rejects a request: {exc}",
                        provider=self.name,
                        status_code=400,
                    ) from exc
                job = self._call(
                    "create batch",
                    lambda: self.client.batches.create(model=model, src=inlined, config=config),
                )
                return SubmittedBatch(batch_id=self._name(job))
        uploaded = self._call(
            "upload input file",
            lambda: self.client.files.upload(
                file=str(path),
                config=types.UploadFileConfig(
                    display_name=codec.display_name(metadata) or path.name, mime_type="jsonl"
                ),
            ),
        )
        file_name = uploaded.name
        if not file_name:
            raise ProviderError("upload input file failed: no file name", provider=self.name)
        try:
            job = self._call(
                "create batch",
                lambda: self.client.batches.create(model=model, src=file_name, config=config),
            )
        except ProviderError:
            self._delete_file(file_name)  # best effort: nothing will use the input any more
            raise
        return SubmittedBatch(batch_id=self._name(job), input_file_id=file_name)

    def _name(self, job: types.BatchJob) -> str:
        if not job.name:
            raise ProviderError("create batch failed: the reply has no name", provider=self.name)
        return job.name

    def _get(self, batch_id: str) -> types.BatchJob:
        return self._call(
            f"retrieve batch {batch_id}", lambda: self.client.batches.get(name=batch_id)
        )

    def poll(self, batch_id: str) -> BatchStatus:
        """The job's state, request counts and (for a failed job) the reason.

        Read as a raw operation (``operations.get``): ``batches.get`` drops ``batchStats`` and
        ``error`` for the Developer API.
        """
        if not batch_id.startswith("batches/"):
            raise ProviderError(
                f"retrieve batch {batch_id} failed: Gemini batch names look like batches/<id>",
                provider=self.name,
                status_code=404,
            )
        op = self._call(
            f"retrieve batch {batch_id}",
            lambda: self.client.operations.get(RawBatchOperation(name=batch_id)),
        )
        meta: Mapping[str, Any] = op.metadata or {}
        state = neutral_state(meta.get("state"))
        stats: Mapping[str, Any] = meta.get("batchStats") or {}
        message = None
        if state in ("failed", "expired"):
            detail = (op.error or {}).get("message")
            message = str(detail) if detail else f"the batch job ended {state}"
        return BatchStatus(
            batch_id=batch_id,
            state=state,
            total=_count(stats.get("requestCount")),
            completed=_count(stats.get("successfulRequestCount")),
            failed=_count(stats.get("failedRequestCount")),
            message=message,
        )

    def results(self, batch_id: str) -> Iterator[BatchResult]:
        """Stream the ended job's results: inline responses, or the responses file's lines."""
        job = self._get(batch_id)
        model = codec.strip_model(job.model)
        expired = neutral_state(job.state) == "expired"
        dest = job.dest
        if dest is None:
            return
        if dest.inlined_responses is not None:
            for i, entry in enumerate(dest.inlined_responses):
                yield codec.decode_result(
                    inline_line(entry, i), batch_id=batch_id, model=model, expired=expired
                )
        elif dest.file_name:
            yield from self._file_results(batch_id, dest.file_name, model, expired)

    def _file_results(
        self, batch_id: str, file_name: str, model: str | None, expired: bool
    ) -> Iterator[BatchResult]:
        # the SDK streams a download to a destination in chunks: a temporary file keeps memory
        # flat whatever the size, and lines are read back one at a time
        with tempfile.TemporaryFile() as tmp:
            self._call(
                f"download results of {batch_id}",
                lambda: self.client.files.download(file=file_name, destination=tmp),
            )
            tmp.seek(0)
            for n, raw in enumerate(tmp, 1):
                if not raw.strip():
                    continue
                try:
                    result = codec.decode_result(
                        raw, batch_id=batch_id, model=model, expired=expired
                    )
                except ValueError as exc:
                    # a cut or garbled download: retryable (status None), the file is fetched again
                    raise ProviderError(
                        f"results of {batch_id}: line {n} of {file_name} is not valid JSON",
                        provider=self.name,
                    ) from exc
                yield result

    def cancel(self, batch_id: str) -> None:
        """Ask Gemini to cancel; the job goes from RUNNING to CANCELLED."""
        self._call(f"cancel batch {batch_id}", lambda: self.client.batches.cancel(name=batch_id))

    def delete(self, batch_id: str) -> None:
        """Delete the job resource (it does not cancel a running job)."""
        self._call(f"delete batch {batch_id}", lambda: self.client.batches.delete(name=batch_id))

    def find_batch(self, metadata: Mapping[str, str]) -> str | None:
        """The newest job whose display name carries all of ``metadata``, or None."""
        wanted = dict(metadata)
        best: types.BatchJob | None = None
        pager = self._call(
            "list batches", lambda: self.client.batches.list(config={"page_size": 100})
        )
        iterator = iter(pager)
        while True:
            job = self._call("list batches", lambda: next(iterator, None))
            if job is None:
                break
            tags = codec.parse_display_name(job.display_name)
            if tags is None or any(tags.get(k) != v for k, v in wanted.items()):
                continue
            if best is None or _created(job) > _created(best):
                best = job
        return best.name if best is not None else None

    def cleanup(self, submitted: SubmittedBatch) -> None:
        """Delete the uploaded input file (inline jobs leave nothing behind)."""
        if submitted.input_file_id:
            self._call(
                f"delete file {submitted.input_file_id}",
                lambda: self.client.files.delete(name=str(submitted.input_file_id)),
            )

    def _delete_file(self, name: str) -> None:
        # best effort, on an error path that is already being reported
        with contextlib.suppress(Exception):
            self.client.files.delete(name=name)

    # -- the sandbox ------------------------------------------------------------------------
    @classmethod
    def sandbox_routes(cls, engine: SandboxEngine) -> list[BaseRoute]:
        """The emulated batch API (see :mod:`polybatch_gemini.sandbox`)."""
        from .sandbox import routes

        return routes(engine)

    @classmethod
    def sandbox_env(cls, server_url: str, api_key: str) -> dict[str, str]:
        """GOOGLE_GEMINI_BASE_URL and GEMINI_API_KEY pointing any google-genai client at it."""
        return {
            "GOOGLE_GEMINI_BASE_URL": server_url + cls.sandbox_prefix,
            "GEMINI_API_KEY": api_key,
        }


class RawBatchOperation(types.Operation):
    """A batch read through ``operations.get``, which hands back the raw resource.

    ``batches.get`` converts the resource to a ``BatchJob`` and drops ``metadata.batchStats`` and
    the operation's ``error`` on the way; the SDK's generic operation read keeps them.
    """

    def __init__(
        self,
        *,
        name: str | None,
        metadata: dict[str, Any] | None = None,
        done: bool | None = None,
        error: dict[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.metadata = metadata
        self.done = done
        self.error = error

    @classmethod
    def from_api_response(cls, api_response: Any, is_vertex_ai: bool = False) -> Self:
        """Keep the resource's fields as they came."""
        raw: Mapping[str, Any] = api_response if isinstance(api_response, Mapping) else {}
        return cls(
            name=raw.get("name"),
            metadata=dict(raw.get("metadata") or {}),
            done=bool(raw.get("done")),
            error=dict(raw["error"]) if isinstance(raw.get("error"), Mapping) else None,
        )


def _count(value: Any) -> int:
    """An int64 count as JSON carries it (a string), or 0."""
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _created(job: types.BatchJob) -> float:
    return job.create_time.timestamp() if job.create_time is not None else 0.0


def inline_line(entry: types.InlinedResponse, index: int) -> dict[str, Any]:
    """An SDK inline response as a responses-file line (camelCase REST JSON).

    The key comes from the request's ``metadata``; inline responses keep input order, so one
    without metadata gets a positional placeholder the runner reports as unexpected.
    """
    key = (entry.metadata or {}).get("key", f"<inline response {index}>")
    line: dict[str, Any] = {"key": key}
    if entry.error is not None:
        line["error"] = entry.error.model_dump(mode="json", by_alias=True, exclude_none=True)
    if entry.response is not None:
        line["response"] = entry.response.model_dump(mode="json", by_alias=True, exclude_none=True)
    return line
