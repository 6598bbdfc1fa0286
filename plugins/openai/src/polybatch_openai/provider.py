"""The OpenAI batch adapter: the official ``openai`` SDK behind polybatch's BatchProvider seam."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, cast

import openai
import openai.types.webhooks as webhook_types

from polybatch import wire
from polybatch.errors import (
    ConfigError,
    ProviderError,
    ProviderHTTPError,
    QueueFullError,
    WebhookRejectedError,
)
from polybatch.items import BatchItem, BatchResult
from polybatch.kinds import ITEM_KINDS
from polybatch.providers import (
    TERMINAL_STATES,
    BatchState,
    BatchStatus,
    Limits,
    SubmittedBatch,
    WebhookEvent,
)
from polybatch.sdk import SDKProvider, connection, failure, http

from . import codec, endpoints

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from polybatch.sandbox.engine import SandboxEngine


#: OpenAI's batch event types -> the neutral end state each announces
WEBHOOK_STATES: dict[str, BatchState] = {
    "batch.completed": "completed",
    "batch.failed": "failed",
    "batch.expired": "expired",
    "batch.cancelled": "cancelled",
}
BATCH_EVENT_TYPES = (
    webhook_types.BatchCompletedWebhookEvent,
    webhook_types.BatchFailedWebhookEvent,
    webhook_types.BatchExpiredWebhookEvent,
    webhook_types.BatchCancelledWebhookEvent,
)
WEBHOOK_EVENTS: tuple[
    Literal["batch.completed", "batch.failed", "batch.expired", "batch.cancelled"], ...
] = ("batch.completed", "batch.failed", "batch.expired", "batch.cancelled")


class OpenAILimits(Limits):
    """OpenAI's batch limits, plus the cap on embedding inputs per batch.

    ``max_embedding_inputs`` is read by the planner (once the core Limits has the field) to cut
    embedding chunks smaller than ``max_requests``: one item is one input.
    """

    max_embedding_inputs: int | None = codec.MAX_EMBEDDING_INPUTS


class OpenAIProvider(SDKProvider[openai.AsyncOpenAI]):
    """OpenAI's Batch API (chat completions, embeddings, Responses, legacy completions and
    moderations) through the ``openai`` SDK.

    Async-first: the lifecycle is written on ``AsyncOpenAI`` (one client per event loop); the
    blocking methods (``submit``, ``poll`` ...) are derived by the base class.

    Settings: ``completion_window`` (default ``"24h"``), ``max_retries`` (SDK retries, default 2),
    ``timeout`` (seconds), ``organization``, ``project``, ``find_batch_limit`` (how many recent batches
    ``find_batch`` scans, default 2000), ``output_expires_after`` (seconds the output and error files
    are kept, from their creation: 3600 to 2592000; unset, OpenAI's default of 30 days).
    """

    name = "openai"
    credential_env: ClassVar[tuple[str, ...]] = ("OPENAI_API_KEY",)
    limits = OpenAILimits(
        max_requests=50_000, max_bytes=200 * 1024 * 1024, completion_windows=("24h",)
    )
    sandbox_prefix = "/openai"

    #: the ``endpoint`` of created chat batches (an embeddings batch takes its lines' url)
    endpoint: ClassVar[str] = codec.CHAT_URL
    #: the ``url`` written on every chat input line (Azure: ``/chat/completions``)
    line_url: ClassVar[str] = codec.CHAT_URL
    #: the ``url`` written on every embedding input line (Azure: ``/embeddings``)
    embeddings_url: ClassVar[str] = codec.EMBEDDINGS_URL
    #: bounds of the ``output_expires_after`` setting, seconds (OpenAI: 1 hour to 30 days)
    output_expiry_range: ClassVar[tuple[int, int]] = (3600, 30 * 24 * 3600)
    #: every kind of item: chat completions, embeddings, Responses, completions, moderations
    kinds: ClassVar[frozenset[str]] = frozenset(ITEM_KINDS)
    #: ``kind="embedding"`` items are accepted (the 0.2 flag; ``kinds`` says it too)
    supports_embeddings: ClassVar[bool] = True
    base_url_env: ClassVar[str | None] = "OPENAI_BASE_URL"
    #: anything shaped like an OpenAI secret key, masked in error messages we pass on
    key_patterns = (re.compile(r"\b(sk-)[A-Za-z0-9_\-*]{4,}"),)
    errors = {
        # Azure's fail-fast regions refuse a create over the enqueued-token quota outright
        openai.APIStatusError: http(
            lambda e: e.status_code,
            lambda e: str(e.message),
            queue_full=lambda e: e.code == codec.TOKEN_LIMIT_EXCEEDED,
        ),
        openai.APIResponseValidationError: failure(lambda e: f"unexpected response: {e.message}"),
        openai.APIConnectionError: connection(lambda e: str(e.message)),
        openai.OpenAIError: failure(),
    }

    #: webhooks (``batch.*`` events, Standard Webhooks signatures): OpenAI itself only
    webhook_secret_env: ClassVar[str | None] = "OPENAI_WEBHOOK_SECRET"

    # -- the client ------------------------------------------------------------------------
    def make_client(self) -> openai.AsyncOpenAI:
        """Build the SDK's async client. Subclasses (Azure) override this."""
        key = self.require_api_key()
        options: dict[str, Any] = {"max_retries": int(self.settings.get("max_retries", 2))}
        if "timeout" in self.settings:
            options["timeout"] = float(self.settings["timeout"])
        for name in ("organization", "project"):
            if self.settings.get(name):
                options[name] = str(self.settings[name])
        return openai.AsyncOpenAI(api_key=key, base_url=self.resolved_base_url(), **options)

    # -- items -----------------------------------------------------------------------------
    def validate_item(self, item: BatchItem, model: str) -> None:
        """Reject what the API would refuse for every model: :func:`codec.check_item`, the rules
        the sandbox answers with."""
        codec.check_item(item, model)

    def url_for(self, item: BatchItem) -> str:
        """The line ``url`` of ``item``: chat completions, embeddings, or the endpoint of the
        other kinds (:data:`.endpoints.KIND_URLS`)."""
        if item.kind == "embedding":
            return self.embeddings_url
        return endpoints.KIND_URLS.get(item.kind, self.line_url)

    def encode(self, item: BatchItem, model: str) -> bytes:
        """One JSONL input line for ``item``."""
        cid = item.custom_id
        return codec.encode_line(
            item,
            model,
            url=self.url_for(item),
            custom_id=self.wire_custom_id(cid) if cid else None,
        )

    def endpoint_for(self, lines_path: Path) -> str:
        """The batch ``endpoint`` of a lines file: the ``url`` of its first line.

        A batch has one endpoint and every line must use it; the planner never mixes chat and
        embedding items in one chunk, so the first line speaks for all (the API fails a file
        that mixes them, naming the line). An empty file gets the chat endpoint.
        """
        with lines_path.open("rb") as fh:
            for raw in fh:
                if raw.strip():
                    try:
                        url = json.loads(raw).get("url")
                    except (ValueError, AttributeError):
                        break  # not our line format: let the API say what is wrong
                    if isinstance(url, str) and url:
                        return url
                    break
        return self.endpoint

    # -- lifecycle -------------------------------------------------------------------------
    async def asubmit(
        self, lines_path: Path, *, model: str, metadata: Mapping[str, str]
    ) -> SubmittedBatch:
        """Upload the lines file (streamed from disk) and create a batch from it."""
        client = self.client
        # OpenAI only takes .jsonl batch files; the name is all that is checked
        filename = lines_path.name if lines_path.suffix == ".jsonl" else f"{lines_path.stem}.jsonl"
        with self.sdk_errors("uploading the batch file"), lines_path.open("rb") as fh:
            # an open file handle goes to httpx as is, which streams the multipart body in chunks
            uploaded = await client.files.create(
                file=(filename, fh, "application/jsonl"), purpose="batch", **self.upload_options()
            )
        try:
            # no SDK-level retry of the create: it sends no idempotency key, so a retry after a
            # lost answer makes a second batch. The runner retries instead, after looking the
            # batch up by its metadata (find_batch).
            with self.sdk_errors("creating the batch", create=True):
                batch = await client.with_options(max_retries=0).batches.create(
                    input_file_id=uploaded.id,
                    # the SDK types endpoint as a Literal but sends any string (Azure relies on it)
                    endpoint=cast(Any, self.endpoint_for(lines_path)),
                    completion_window=cast(Any, self.settings.get("completion_window", "24h")),
                    metadata=dict(metadata) or None,
                    **self.batch_options(),
                )
        except ProviderError as exc:
            await self.drop_refused_upload(exc, uploaded.id)
            raise
        return SubmittedBatch(batch_id=batch.id, input_file_id=uploaded.id)

    def upload_options(self) -> dict[str, Any]:
        """Extra arguments for ``files.create`` (Azure sets a file expiry here)."""
        return {}

    def output_expiry(self) -> int | None:
        """Seconds the output and error files are kept (``output_expires_after``, anchored at
        their ``created_at``), or None for the provider's default; ConfigError out of range."""
        raw = self.settings.get("output_expires_after")
        if raw in (None, 0, False, ""):
            return None
        lo, hi = self.output_expiry_range
        try:
            seconds = int(raw)
        except (TypeError, ValueError):
            seconds = -1
        if isinstance(raw, bool) or not lo <= seconds <= hi:
            raise ConfigError(
                f"{self.name}: output_expires_after must be seconds from {lo} to {hi}, got {raw!r}"
            )
        return seconds

    def batch_options(self) -> dict[str, Any]:
        """Extra arguments for ``batches.create``: the output files' expiry, when set."""
        seconds = self.output_expiry()
        if not seconds:
            return {}
        return {"output_expires_after": {"anchor": "created_at", "seconds": seconds}}

    def preflight(self) -> None:
        """Check the settings before anything is planned (a bad expiry names the setting)."""
        super().preflight()
        self.output_expiry()

    async def apoll(self, batch_id: str) -> BatchStatus:
        """The batch's state and counts; validation errors become the message."""
        with self.sdk_errors(f"polling batch {batch_id}"):
            raw = await self.client.batches.with_raw_response.retrieve(batch_id)
            batch = raw.parse()
        errors = batch.errors.data if batch.errors else None
        if batch.status == "failed" and codec.TOKEN_LIMIT_EXCEEDED in codec.batch_error_codes(
            errors
        ):
            # accepted, then failed in validation: the organisation's enqueued-token limit for
            # the model was reached. Not this chunk's failure: the runner queues it again
            raise QueueFullError(
                f"batch {batch_id} refused, the queue is full: "
                f"{codec.batch_errors_message(errors)}",
                provider=self.name,
            )
        return self._status(batch, retry_after=_retry_after(raw.headers.get("retry-after")))

    @staticmethod
    def _status(batch: openai.types.Batch, *, retry_after: float | None = None) -> BatchStatus:
        counts = batch.request_counts
        # OpenAI's list of errors, or Azure's single object (its 2024-10-21 spec)
        message = codec.batch_errors_message(batch.errors.data if batch.errors else None)
        if message is None and batch.status == "failed":
            message = "batch failed (no reason given)"
        # a status newer than this SDK (non-strict parsing lets it through) reads as in progress
        return BatchStatus(
            batch_id=batch.id,
            state=codec.batch_state(batch.status),
            total=counts.total if counts else 0,
            completed=(counts.completed or 0) if counts else 0,
            failed=(counts.failed or 0) if counts else 0,
            message=message,
            retry_after=retry_after,
            output_file_id=batch.output_file_id,
            error_file_id=batch.error_file_id,
        )

    async def aresults(self, batch_id: str) -> AsyncIterator[BatchResult]:
        """Stream the output file, then the error file, line by line."""
        with self.sdk_errors(f"retrieving batch {batch_id}"):
            batch = await self.client.batches.retrieve(batch_id)
        if self.batch_state(batch.status) not in TERMINAL_STATES:
            raise ProviderError(
                f"batch {batch_id} is {batch.status}; results exist only once it has ended",
                provider=self.name,
            )
        # Azure reports missing files as "" rather than null
        for file_id in (batch.output_file_id, batch.error_file_id):
            if file_id:
                async for result in self._file_results(file_id, batch_id):
                    yield result

    def batch_state(self, status: str) -> BatchState:
        """A batch ``status`` in neutral terms (the compatible family reads its preset's words)."""
        return codec.batch_state(status)

    async def _file_results(self, file_id: str, batch_id: str) -> AsyncIterator[BatchResult]:
        with self.sdk_errors(f"downloading file {file_id} of batch {batch_id}"):
            async with self.client.files.with_streaming_response.content(file_id) as response:
                results = wire.adecode_lines(
                    wire.aiter_jsonl(response.iter_bytes()),
                    lambda line: codec.decode_result(line, provider=self.name, batch_id=batch_id),
                    file=file_id,
                    provider=self.name,
                )
                async for result in results:
                    yield result

    async def acancel(self, batch_id: str) -> None:
        """Ask OpenAI to cancel; the batch moves through cancelling to cancelled.

        OpenAI refuses to cancel a batch that has ended (409): that is no failure (the batch is
        checked to have ended), so cancelling is harmless.
        """
        try:
            with self.sdk_errors(f"cancelling batch {batch_id}"):
                await self.client.batches.cancel(batch_id)
        except ProviderHTTPError as exc:
            if exc.status_code != 409 or not (await self.apoll(batch_id)).terminal:
                raise

    async def afind_batch(self, metadata: Mapping[str, str]) -> str | None:
        """The newest batch whose metadata holds all of ``metadata`` (crash recovery)."""
        wanted = dict(metadata)
        limit = int(self.settings.get("find_batch_limit", 2000))
        with self.sdk_errors("listing batches"):
            seen = 0
            async for batch in self.client.batches.list(limit=100):
                if seen >= limit:
                    break
                seen += 1
                have = batch.metadata or {}
                if all(have.get(k) == v for k, v in wanted.items()):
                    return batch.id
        return None

    async def output_file_ids(self, batch_id: str) -> list[str]:
        """The batch's ``output_file_id`` and ``error_file_id`` (Azure's "" is none)."""
        with self.sdk_errors(f"retrieving batch {batch_id}"):
            batch = await self.client.batches.retrieve(batch_id)
        return [f for f in (batch.output_file_id, batch.error_file_id) if f]

    async def sdk_delete_file(self, client: openai.AsyncOpenAI, file_id: str) -> None:
        """Delete an uploaded file (results stay until OpenAI expires them)."""
        await client.files.delete(file_id)

    # -- the sandbox -----------------------------------------------------------------------
    # -- webhooks --------------------------------------------------------------------------
    def verify_webhook(
        self, headers: Mapping[str, str], body: bytes, secret: str
    ) -> WebhookEvent | None:
        """Verify with the SDK's ``webhooks.unwrap`` (signature, and a timestamp within its
        5-minute tolerance); a ``batch.*`` event, None for the other event types."""
        verifier = openai.OpenAI(api_key="unused: verifies webhooks only", webhook_secret=secret)
        try:
            event = verifier.webhooks.unwrap(body, dict(headers))
        except (openai.InvalidWebhookSignatureError, ValueError) as exc:  # ValueError: a
            # missing header or a body that is not JSON
            raise WebhookRejectedError(f"openai webhook rejected: {exc}") from None
        finally:
            verifier.close()
        state = WEBHOOK_STATES.get(event.type)
        if state is None or not isinstance(event, BATCH_EVENT_TYPES):
            return None
        return WebhookEvent(
            webhook_id=headers.get("webhook-id", ""),
            type=event.type,
            batch_id=event.data.id,
            state=state,
        )

    async def aregister_webhook(self, url: str) -> tuple[str, str]:
        """``client.webhooks.create`` for the four batch events: (endpoint id, signing secret)."""
        with self.sdk_errors("registering the webhook endpoint"):
            endpoint = await self.client.webhooks.create(
                event_types=list(WEBHOOK_EVENTS), name="polybatch", url=url
            )
        return endpoint.id, self.remember_secret(endpoint.signing_secret)

    @classmethod
    def sandbox_routes(cls, engine: SandboxEngine) -> list[BaseRoute]:
        """The emulated Files and Batches API (see :mod:`polybatch_openai.sandbox`)."""
        from .sandbox import openai_routes

        return openai_routes(engine)

    @classmethod
    def sandbox_settings(cls, server_url: str, api_key: str) -> dict[str, Any]:
        """Point the SDK at the sandbox's ``/openai/v1``."""
        return {"api_key": api_key, "base_url": f"{server_url}{cls.sandbox_prefix}/v1"}


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        return None  # an HTTP date: rare on this API, not worth parsing
