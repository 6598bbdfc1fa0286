"""The Anthropic Message Batches adapter, through the official ``anthropic`` SDK.

State mapping (Anthropic ``processing_status`` -> neutral :data:`~polybatch.providers.BatchState`):

- ``in_progress`` -> ``in_progress`` (Anthropic has no validating or finalizing phase);
- ``canceling`` -> ``cancelling``;
- ``ended`` -> ``cancelled`` when a cancel was initiated, else ``expired`` when any request
  expired (the 24 h window passed, as OpenAI reports it), else ``completed``.

Whatever the ended state, every request has a result (succeeded, errored, canceled or expired), so
the runner collects results for each of them and retries the retryable ones.

Anthropic batches carry no metadata: the ``metadata`` passed to :meth:`asubmit` is not sent, and
a batch whose create answer was lost is found again from the listing instead
(:meth:`alist_batches_since`: by its request count, its creation time and, once it has ended, its
results' ids; see :mod:`polybatch.jobs.adopt`).

The adapter is async-first, on the SDK's ``AsyncAnthropic`` (one client per event loop); the
blocking lifecycle methods are derived by :class:`~polybatch.providers.BatchProvider`.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, cast

import anthropic

from polybatch import portal, wire
from polybatch.errors import ItemValidationError, ProviderHTTPError
from polybatch.items import BatchItem, BatchResult
from polybatch.providers import BatchStatus, Limits, RecentBatch, SubmittedBatch
from polybatch.sdk import SDKProvider, connection, failure, http

from . import codec, output300k

if TYPE_CHECKING:
    from anthropic.types.messages import MessageBatch, batch_create_params
    from starlette.routing import BaseRoute

    from polybatch.sandbox.engine import SandboxEngine


def _queue_full(exc: anthropic.APIStatusError) -> bool:
    """Whether a create's error is the processing queue's limit (429 naming the queue)."""
    return exc.status_code == 429 and "queue" in str(exc.message).lower()


class AnthropicProvider(SDKProvider[anthropic.AsyncAnthropic]):
    """Provider ``anthropic``: Message Batches with inline requests, results as JSONL.

    Async-first on ``anthropic.AsyncAnthropic``: it implements ``asubmit``, ``apoll``,
    ``aresults``, ``acancel`` and ``afind_batch``; the blocking ``submit``, ``poll`` ... are the
    base class's, run on polybatch's portal loop.

    Settings: ``default_max_tokens`` (int, default :data:`codec.DEFAULT_MAX_TOKENS`) is sent for
    items without ``max_tokens``, which Anthropic requires; ``max_retries`` (int, the SDK's default
    2) bounds the SDK's own retries of 408/409/429/5xx and connection errors;
    ``output_300k_models`` (list of model names) adds models to those that get the batch-only
    ``output-300k-2026-03-24`` beta (:mod:`.output300k`: max_tokens up to 300,000).
    """

    name: ClassVar[str] = "anthropic"
    credential_env: ClassVar[tuple[str, ...]] = ("ANTHROPIC_API_KEY",)
    limits: ClassVar[Limits] = Limits(
        max_requests=100_000,
        max_bytes=256 * 1024 * 1024,
        custom_id_pattern=r"^[a-zA-Z0-9_-]{1,64}$",
    )
    sandbox_prefix: ClassVar[str] = "/anthropic"

    base_url_env: ClassVar[str | None] = "ANTHROPIC_BASE_URL"
    key_patterns = (re.compile(r"\b(sk-ant-)[A-Za-z0-9_\-*]{4,}"),)
    errors = {
        # a create answered 429 (``rate_limit_error``) that names the queue: the organisation's
        # processing queue of batch requests is full (the Message Batches rate limits). Any
        # other 429 is an ordinary rate limit, retried as a transient failure.
        anthropic.APIStatusError: http(lambda e: e.status_code, queue_full=_queue_full),
        # connection, timeout and response-validation errors: the server's words, if any
        anthropic.APIConnectionError: connection(),
        anthropic.AnthropicError: failure(),
        # the SDK's own argument checks are the kit's ValueError entry (a cut results line is
        # the core's transport entry)
    }

    # -- the client -------------------------------------------------------------------------
    def make_client(self) -> anthropic.AsyncAnthropic:
        """The SDK's async client (one per event loop, built on first use)."""
        return anthropic.AsyncAnthropic(
            api_key=self.require_api_key(),
            base_url=self.resolved_base_url(),
            max_retries=int(self.settings.get("max_retries", anthropic.DEFAULT_MAX_RETRIES)),
        )

    @property
    def default_max_tokens(self) -> int:
        """max_tokens sent for items without one."""
        return int(self.settings.get("default_max_tokens", codec.DEFAULT_MAX_TOKENS))

    # -- items ------------------------------------------------------------------------------
    def wire_custom_id(self, custom_id: str) -> str:
        """See :func:`codec.wire_custom_id`: fitting ids unchanged, others ``pb-<sha256>``."""
        return codec.wire_custom_id(custom_id)

    def validate_item(self, item: BatchItem, model: str) -> None:
        """Raise ItemValidationError if the item cannot be expressed for Anthropic."""
        if item.kind == "embedding":
            # checked first, and without the codec's "item ...:" prefix (the planner adds it)
            raise ItemValidationError(codec.NO_EMBEDDINGS, field="kind")
        params = codec.build_params(item, model, default_max_tokens=self.default_max_tokens)
        # with the 300k beta (sent for the models that take it), its ceiling applies
        problem = output300k.max_tokens_problem(
            params["model"], params["max_tokens"], [output300k.BETA], self.output_300k_models
        )
        if problem is not None:
            raise ItemValidationError(problem, field="max_tokens")

    @property
    def output_300k_models(self) -> tuple[str, ...]:
        """Models beyond :data:`output300k.CEILINGS` that take the 300k beta (a setting)."""
        return tuple(str(m) for m in self.settings.get("output_300k_models") or ())

    def encode(self, item: BatchItem, model: str) -> bytes:
        """One ``{"custom_id", "params"}`` request as compact JSON."""
        return wire.dumps(
            codec.encode_request(item, model, default_max_tokens=self.default_max_tokens)
        )

    # -- the batch lifecycle ----------------------------------------------------------------
    async def asubmit(
        self, lines_path: Path, *, model: str, metadata: Mapping[str, str]
    ) -> SubmittedBatch:
        """Create a batch with the lines' requests inline (``metadata`` is unused: see module)."""
        client = self.client  # first: a missing key fails before the file is read
        # reading and parsing up to 256 MiB would stall every other call on the loop
        requests = await asyncio.to_thread(_read_requests, Path(lines_path))
        with self.sdk_errors("create batch", create=True):
            # no SDK-level retry of the create: without an idempotency key a retry after a lost
            # answer creates a second batch (Anthropic batches carry no metadata to find it by)
            batch = await client.with_options(max_retries=0).messages.batches.create(
                requests=requests,
                # the batch-only 300k-output beta, for the models that take it (one model a chunk)
                extra_headers=output300k.headers(model, self.output_300k_models) or None,
            )
        return SubmittedBatch(batch_id=batch.id)

    async def apoll(self, batch_id: str) -> BatchStatus:
        """The batch's state and counts (counts other than processing are 0 until it ends)."""
        client = self.client
        with self.sdk_errors(f"retrieve batch {batch_id}"):
            batch = await client.messages.batches.retrieve(batch_id)
        return status_of(batch)

    async def aresults(self, batch_id: str) -> AsyncIterator[BatchResult]:
        """Stream the ended batch's results (custom ids are wire ids), chunk by chunk."""
        what = f"results of batch {batch_id}"
        client = self.client
        with self.sdk_errors(what):
            # the SDK retrieves the batch, then opens a streamed GET of its results_url; the
            # AsyncJSONLDecoder it returns has read nothing of the body yet
            stream = await client.messages.batches.results(batch_id)
        # the body is split here, on "\n" only (the JSONL rule), as it arrives: the decoder's own
        # iteration re-chunks it into 64-byte pieces and builds an SDK model per line that would
        # only be turned back into a dict (about 3.5x slower, measured against the sandbox)
        chunks = stream.http_response.aiter_bytes()
        splitter = wire.LineSplitter()
        try:
            while True:
                # only the download and parsing are translated, not the consumer's code between
                # items; a line cut by a dropped connection fails json.loads: transient
                with self.sdk_errors(what):
                    chunk = await anext(chunks, None)
                    lines = splitter.end() if chunk is None else splitter.feed(chunk)
                    entries = [json.loads(line) for line in lines]
                for entry in entries:
                    yield codec.decode_result(entry, batch_id=batch_id)
                if chunk is None:
                    return
        finally:
            # the response is released by itself only once read to the end; a consumer that
            # stops early (or a cut stream) must not leave the connection checked out
            with self.sdk_errors(what):
                await chunks.aclose()
                await stream.close()

    async def acancel(self, batch_id: str) -> None:
        """Ask Anthropic to cancel; the batch goes through ``canceling`` to ``ended``.

        Anthropic refuses to cancel a batch that has ended (400 ``invalid_request_error``):
        that is no failure (the batch is checked to have ended), so cancelling is harmless.
        """
        client = self.client
        try:
            with self.sdk_errors(f"cancel batch {batch_id}"):
                await client.messages.batches.cancel(batch_id)
        except ProviderHTTPError as exc:
            if exc.status_code != 400 or not (await self.apoll(batch_id)).terminal:
                raise

    async def adelete(self, batch_id: str) -> None:
        """Delete an ended batch and its results (Anthropic refuses while it is processing)."""
        client = self.client
        with self.sdk_errors(f"delete batch {batch_id}"):
            await client.messages.batches.delete(batch_id)

    def delete(self, batch_id: str) -> None:
        """Blocking :meth:`adelete`."""
        portal.run(self.adelete(batch_id))

    async def alist_batches_since(self, since: float) -> list[RecentBatch]:
        """Batches created since ``since``, newest first (Anthropic lists newest first): the
        runner adopts one whose create answer was lost by its count, time and ids (see
        :mod:`polybatch.jobs.adopt`), as batches carry no metadata to find them by."""
        client = self.client
        found: list[RecentBatch] = []
        with self.sdk_errors("listing batches"):
            async for batch in client.messages.batches.list(limit=100):
                created = batch.created_at.timestamp()
                if created < since:
                    break
                n = batch.request_counts
                found.append(
                    RecentBatch(
                        batch_id=batch.id,
                        created_at=created,
                        request_count=n.processing
                        + n.succeeded
                        + n.errored
                        + n.canceled
                        + n.expired,
                        ended=batch.processing_status == "ended",
                    )
                )
        return found

    # -- the sandbox ------------------------------------------------------------------------
    @classmethod
    def sandbox_routes(cls, engine: SandboxEngine) -> list[BaseRoute]:
        """The emulated ``/v1/messages/batches`` API (see :mod:`polybatch_anthropic.sandbox`)."""
        from .sandbox import routes

        return routes(engine)


def status_of(batch: MessageBatch) -> BatchStatus:
    """A MessageBatch in neutral terms (mapping in the module docstring)."""
    counts = batch.request_counts
    state = codec.batch_state(
        batch.processing_status,
        cancel_initiated=batch.cancel_initiated_at is not None,
        expired=counts.expired,
    )
    message = None
    if state == "expired":
        message = f"{counts.expired} request(s) expired before they were processed"
    total = counts.processing + counts.succeeded + counts.errored + counts.canceled + counts.expired
    return BatchStatus(
        batch_id=batch.id,
        state=state,
        total=total,
        completed=counts.succeeded,
        failed=counts.errored,
        message=message,
    )


def _read_requests(lines_path: Path) -> list[batch_create_params.Request]:
    """The ``{"custom_id", "params"}`` requests of a lines file (the create call takes them all)."""
    with lines_path.open("rb") as f:
        requests = [json.loads(line) for line in f if line.strip()]
    return cast("list[batch_create_params.Request]", requests)
