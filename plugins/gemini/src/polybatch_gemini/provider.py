"""The Gemini Developer API batch-mode adapter, through the official ``google-genai`` SDK.

Async-first: the lifecycle is written as coroutines on the SDK's async client (``client.aio``),
one client per event loop (:class:`~polybatch.sdk.PerLoop`: its connection pool is bound to
the loop that opened it). The blocking ``submit``/``poll``/``results``/... come from the base
class, which runs these coroutines on polybatch's portal loop.

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

Results: per-request status objects become ``errored`` results (``CANCELLED`` -> ``cancelled``;
``DEADLINE_EXCEEDED`` in an expired job -> ``expired``). The docs say an expired job (48 h pending
or running) has no results: then nothing is yielded and the runner fills the requests in as
retryable ``missing_result`` errors. A responses file is streamed: the SDK's async download
writes its chunks into a destination and awaits an async ``write``, so the chunks go through a
small bounded queue (:func:`stream_download`) and are split into lines as they arrive.
``batches.get`` drops ``batchStats`` and the job's ``error`` for the Developer API, so
:meth:`apoll` reads the job through the SDK's generic
``operations.get`` instead (:class:`RawBatchOperation`), which keeps them.

Gemini batches carry no metadata, only a ``display_name``: :meth:`asubmit` writes the polybatch
job/chunk tags into it (:func:`codec.display_name`) and :meth:`afind_batch` searches
``batches.list`` for it.

Batch ids are the resource names (``batches/<id>``): the SDK accepts nothing else for the
Developer API.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import warnings
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Self

import pydantic
from google import genai
from google.genai import _common as genai_common
from google.genai import errors as genai_errors
from google.genai import types
from google.genai.client import AsyncClient

try:  # the webhooks client's errors: a private module of google-genai 3.6, perhaps not later
    from google.genai import _interactions_errors as nextgen_errors
except ImportError:  # pragma: no cover - an SDK without it: its base errors still map
    nextgen_errors = None  # type: ignore[assignment]

from polybatch import portal, wire
from polybatch.batches import WebhookEvent
from polybatch.errors import ItemValidationError, ProviderConnectionError, ProviderError
from polybatch.items import BatchItem, BatchResult
from polybatch.providers import BatchStatus, Limits, SubmittedBatch
from polybatch.sdk import SDKProvider, connection, failure, http

from . import codec, embeddings, webhooks
from .download import DOWNLOAD_BUFFER as DOWNLOAD_BUFFER
from .download import _ChunkSink as _ChunkSink
from .download import stream_download

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from polybatch.sandbox.engine import SandboxEngine

#: default inline threshold: well under the 20 MB request limit, since inline responses are
#: returned inside the batch resource and a big one makes every final ``batches.get`` heavy
INLINE_MAX_BYTES = 5 * 1024 * 1024
#: default inline request-count threshold (same reason: the responses travel in the resource)
INLINE_MAX_REQUESTS = 1000
#: the SDK's default API version for the Developer API is v1 (google-genai 3.4.0)
DEFAULT_API_VERSION = "v1"


#: a ``JOB_STATE_*`` / ``BATCH_STATE_*`` value in neutral terms (the table is the codec's)
neutral_state = codec.batch_state


class GeminiProvider(SDKProvider[AsyncClient]):
    """Provider ``gemini``: Gemini Developer API batch mode, inline or file input.

    Async-first: the lifecycle (``asubmit``, ``apoll``, ``aresults``, ...) runs on the SDK's
    async client (``client.aio``), one per event loop; the blocking methods are derived by the
    base class.

    Settings: ``inline_max_bytes`` / ``inline_max_requests`` (ints, defaults above) choose between
    inline and file input; ``api_version`` (``v1`` or ``v1beta``, default the SDK's ``v1``);
    ``max_retries`` (int, default 0: the SDK's default of no retries, the runner retries whole
    steps) makes the SDK retry 408/429/5xx and connection errors, except on batch creation;
    ``timeout`` (seconds).
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
    #: ``kind="embedding"`` items are accepted on embedding models (``batches.create_embeddings``)
    supports_embeddings: ClassVar[bool] = True

    base_url_env: ClassVar[str | None] = "GOOGLE_GEMINI_BASE_URL"
    #: project webhooks (``batch.succeeded|failed|expired``, Standard Webhooks signatures)
    webhook_secret_env: ClassVar[str | None] = webhooks.SECRET_ENV
    #: Google API keys
    key_patterns = (re.compile(r"\b(AIza)[0-9A-Za-z_\-]{20,}"),)
    errors = {
        # the server's message and status name; the key never appears in either
        genai_errors.APIError: http(
            lambda e: int(e.code) if e.code else None,
            lambda e: (
                (f"{e.status}: " if e.status else "")
                + (e.message or str(e.status or "") or type(e).__name__)
            ),
            # a create answered 429 RESOURCE_EXHAUSTED: the project's batch queue is full
            queue_full=lambda e: e.code == 429 and e.status == "RESOURCE_EXHAUSTED",
        ),
        # the NextGen surface (``client.aio.webhooks``) raises its own errors (a private module:
        # google-genai 3.6.1 exports them nowhere else); its message never holds the key
        **(
            {
                nextgen_errors.APIConnectionError: connection(lambda e: str(e.message)),
                nextgen_errors.APIError: http(lambda e: e.status_code, lambda e: str(e.message)),
            }
            if nextgen_errors is not None
            else {}
        ),
        # the SDK's own checks (bad names, options or requests, an unparsable reply) are the
        # kit's ValueError entry: permanent
        # a reply missing what the SDK expects (an upload URL): the server's fault, try again
        KeyError: failure(retryable=True),
    }

    # -- the client -------------------------------------------------------------------------
    def make_client(self) -> AsyncClient:
        """A new async SDK client for the running loop."""
        key = self.require_api_key()
        retries = int(self.settings.get("max_retries", 0))
        timeout = self.settings.get("timeout")
        options = types.HttpOptions(
            base_url=self.resolved_base_url(),
            api_version=str(self.settings.get("api_version", DEFAULT_API_VERSION)),
            retry_options=types.HttpRetryOptions(attempts=retries + 1) if retries else None,
            # the SDK takes milliseconds
            timeout=int(float(timeout) * 1000) if timeout is not None else None,
        )
        # only ``.aio`` is kept: nothing here can reach the SDK's blocking request path
        return genai.Client(api_key=key, http_options=options).aio

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
        """Raise ItemValidationError if the item cannot be expressed for Gemini (either input);
        an embedding item needs an embedding model (:func:`embeddings.check_item`)."""
        if item.kind == "embedding":
            embeddings.check_item(item, item.model or model)
            return
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
        """One ``{"key", "request"}`` input-file line as compact JSON (an embed request for an
        embedding item)."""
        if item.kind == "embedding":
            return wire.dumps(embeddings.encode_line(item))
        return wire.dumps(codec.encode_line(item))

    # -- the batch lifecycle ----------------------------------------------------------------
    async def asubmit(
        self, lines_path: Path, *, model: str, metadata: Mapping[str, str]
    ) -> SubmittedBatch:
        """Create one batch job: inline for small files, else from an uploaded input file."""
        path = Path(lines_path)
        client = self.client
        display_name = codec.display_name(metadata)
        # no SDK-level retry of the create, whatever max_retries says: it carries no idempotency
        # key, so a retry after a lost answer makes a second job. The runner retries instead,
        # after looking the job up with find_batch. (Setting retry options also turns off the
        # SDK's own unconditional retry of connection errors on its aiohttp transport.)
        config = types.CreateBatchJobConfig(
            display_name=display_name,
            http_options=types.HttpOptions(retry_options=types.HttpRetryOptions(attempts=1)),
        )
        # the planner never mixes kinds in one chunk: the first line says
        first = wire.first_line(path)
        embedding = first is not None and embeddings.is_embedding_line(first)
        if not embedding and path.stat().st_size <= self.inline_max_bytes:
            # reading, parsing and validating up to inline_max_bytes is CPU work: off the loop
            inlined = await asyncio.to_thread(self._inline_requests, path)
            if inlined is not None:
                with self.sdk_errors("create batch", create=True):
                    job = await client.batches.create(model=model, src=inlined, config=config)
                return SubmittedBatch(batch_id=self._name(job))
        with self.sdk_errors("upload input file"):
            uploaded = await client.files.upload(
                file=str(path),
                config=types.UploadFileConfig(
                    display_name=display_name or path.name, mime_type="jsonl"
                ),
            )
        file_name = uploaded.name
        if not file_name:
            raise ProviderError("upload input file failed: no file name", provider=self.name)
        try:
            with self.sdk_errors("create batch", create=True):
                if embedding:
                    # inline embed requests carry no keys: embedding batches always use a file
                    job = await self._create_embeddings(model, file_name, config)
                else:
                    job = await client.batches.create(model=model, src=file_name, config=config)
        except ProviderError as exc:
            await self.drop_refused_upload(exc, file_name)
            raise
        return SubmittedBatch(batch_id=self._name(job), input_file_id=file_name)

    async def _create_embeddings(
        self, model: str, file_name: str, config: types.CreateBatchJobConfig
    ) -> types.BatchJob:
        """``batches.create_embeddings`` from an uploaded file, its "experimental" warning kept
        off the user's terminal (the docs say it once). The SDK warns synchronously on the
        coroutine's first step, before any await gives way to another task."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", genai_common.ExperimentalWarning)
            return await self.client.batches.create_embeddings(
                model=model,
                src=types.EmbeddingsBatchJobSource(file_name=file_name),
                config=types.CreateEmbeddingsBatchJobConfig(
                    display_name=config.display_name, http_options=config.http_options
                ),
            )

    def _inline_requests(self, path: Path) -> list[types.InlinedRequest] | None:
        """The file's requests as the SDK's inline requests, or None if there are too many."""
        with path.open("rb") as f:
            lines = [json.loads(raw) for raw in f if raw.strip()]
        if len(lines) > self.inline_max_requests:
            return None
        try:
            return [codec.to_inlined(line) for line in lines]
        except pydantic.ValidationError as exc:
            raise ProviderError(
                f"create batch failed: the SDK rejects a request: {exc}", provider=self.name
            ) from exc

    def _name(self, job: types.BatchJob) -> str:
        if not job.name:
            raise ProviderError("create batch failed: the reply has no name", provider=self.name)
        return job.name

    async def apoll(self, batch_id: str) -> BatchStatus:
        """The job's state, request counts and (for a failed job) the reason.

        Read as a raw operation (``operations.get``): ``batches.get`` drops ``batchStats`` and
        ``error`` for the Developer API.
        """
        if not batch_id.startswith("batches/"):
            raise ProviderError(
                f"retrieve batch {batch_id} failed: Gemini batch names look like batches/<id>",
                provider=self.name,
            )
        with self.sdk_errors(f"retrieve batch {batch_id}"):
            op = await self.client.operations.get(RawBatchOperation(name=batch_id))
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

    async def aresults(self, batch_id: str) -> AsyncIterator[BatchResult]:
        """Stream the ended job's results: inline responses, or the responses file's lines."""
        with self.sdk_errors(f"retrieve batch {batch_id}"):
            job = await self.client.batches.get(name=batch_id)
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
            async for result in self._file_results(batch_id, dest.file_name, model, expired):
                yield result

    async def _file_results(
        self, batch_id: str, file_name: str, model: str | None, expired: bool
    ) -> AsyncIterator[BatchResult]:
        # the download is streamed (see stream_download): memory stays flat whatever the size
        client = self.client
        what = f"download results of {batch_id}"
        download = stream_download(
            lambda sink: client.files.download(file=file_name, destination=sink)
        )
        # closing the chunk stream ends the download when the reader stops early; the line
        # splitter over it holds no resource of its own
        async with contextlib.aclosing(download) as chunks:
            lines = wire.aiter_jsonl(chunks)
            n = 0
            while True:
                # a cut connection surfaces here, as a ProviderConnectionError
                with self.sdk_errors(what):
                    raw = await anext(lines, None)
                if raw is None:
                    return
                n += 1
                try:
                    result = codec.decode_result(
                        raw, batch_id=batch_id, model=model, expired=expired
                    )
                except ValueError as exc:
                    # a cut or garbled download: transient, the file is fetched again
                    raise ProviderConnectionError(
                        f"results of {batch_id}: line {n} of {file_name} is not valid JSON",
                        provider=self.name,
                    ) from exc
                yield result

    async def acancel(self, batch_id: str) -> None:
        """Ask Gemini to cancel; the job goes from RUNNING to CANCELLED."""
        with self.sdk_errors(f"cancel batch {batch_id}"):
            await self.client.batches.cancel(name=batch_id)

    async def adelete(self, batch_id: str) -> None:
        """Delete the job resource (it does not cancel a running job)."""
        with self.sdk_errors(f"delete batch {batch_id}"):
            await self.client.batches.delete(name=batch_id)

    def delete(self, batch_id: str) -> None:
        """Blocking :meth:`adelete`."""
        portal.run(self.adelete(batch_id))

    async def afind_batch(self, metadata: Mapping[str, str]) -> str | None:
        """The newest job whose display name carries all of ``metadata``, or None."""
        wanted = dict(metadata)
        best: types.BatchJob | None = None
        with self.sdk_errors("list batches"):
            # the pager fetches the next page as iteration reaches it
            async for job in await self.client.batches.list(config={"page_size": 100}):
                tags = codec.parse_display_name(job.display_name)
                if tags is None or any(tags.get(k) != v for k, v in wanted.items()):
                    continue
                if best is None or _created(job) > _created(best):
                    best = job
        return best.name if best is not None else None

    async def output_file_ids(self, batch_id: str) -> list[str]:
        """The ended job's responses file (``dest.file_name``); inline responses have none."""
        with self.sdk_errors(f"retrieve batch {batch_id}"):
            job = await self.client.batches.get(name=batch_id)
        return [job.dest.file_name] if job.dest is not None and job.dest.file_name else []

    async def sdk_delete_file(self, client: AsyncClient, file_id: str) -> None:
        """Delete an uploaded input file (inline jobs leave nothing behind)."""
        await client.files.delete(name=file_id)

    # -- webhooks --------------------------------------------------------------------------
    def verify_webhook(
        self, headers: Mapping[str, str], body: bytes, secret: str
    ) -> WebhookEvent | None:
        """Standard Webhooks HMAC (the SDK has no verifier): see :mod:`.webhooks`."""
        return webhooks.verify(headers, body, secret)

    async def aregister_webhook(self, url: str) -> tuple[str, str]:
        """``client.aio.webhooks.create`` for the three batch events: (id, signing secret)."""
        with self.sdk_errors("registering the webhook"):
            hook = await self.client.webhooks.create(
                subscribed_events=list(webhooks.BATCH_EVENTS), uri=url, name="polybatch"
            )
        secret = hook.new_signing_secret
        if not secret:
            raise ProviderError("gemini: the created webhook carries no new_signing_secret")
        return str(hook.id or hook.name), self.remember_secret(secret)

    # -- the sandbox ------------------------------------------------------------------------
    @classmethod
    def sandbox_routes(cls, engine: SandboxEngine) -> list[BaseRoute]:
        """The emulated batch API (see :mod:`polybatch_gemini.sandbox`)."""
        from .sandbox import routes

        return routes(engine)


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
