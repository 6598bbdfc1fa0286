"""The Anthropic Message Batches adapter, through the official ``anthropic`` SDK.

State mapping (Anthropic ``processing_status`` -> neutral :data:`~polybatch.providers.BatchState`):

- ``in_progress`` -> ``in_progress`` (Anthropic has no validating or finalizing phase);
- ``canceling`` -> ``cancelling``;
- ``ended`` -> ``cancelled`` when a cancel was initiated, else ``expired`` when any request
  expired (the 24 h window passed, as OpenAI reports it), else ``completed``.

Whatever the ended state, every request has a result (succeeded, errored, canceled or expired), so
the runner collects results for each of them and retries the retryable ones.

Anthropic batches carry no metadata: the ``metadata`` passed to :meth:`asubmit` is not sent, and
:meth:`afind_batch` cannot find a batch again (it returns None).

The adapter is async-first, on the SDK's ``AsyncAnthropic`` (one client per event loop); the
blocking lifecycle methods are derived by :class:`~polybatch.providers.BatchProvider`.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn, cast

import anthropic
import httpx2

from polybatch import portal, wire
from polybatch.errors import ItemValidationError, ProviderError
from polybatch.items import BatchItem, BatchResult
from polybatch.portal import PerLoop
from polybatch.providers import BatchProvider, BatchStatus, Limits, SubmittedBatch

from . import codec

if TYPE_CHECKING:
    from anthropic.types.messages import MessageBatch, batch_create_params
    from starlette.routing import BaseRoute

    from polybatch.sandbox.engine import SandboxEngine


class AnthropicProvider(BatchProvider):
    """Provider ``anthropic``: Message Batches with inline requests, results as JSONL.

    Async-first on ``anthropic.AsyncAnthropic``: it implements ``asubmit``, ``apoll``,
    ``aresults``, ``acancel`` and ``afind_batch``; the blocking ``submit``, ``poll`` ... are the
    base class's, run on polybatch's portal loop.

    Settings: ``default_max_tokens`` (int, default :data:`codec.DEFAULT_MAX_TOKENS`) is sent for
    items without ``max_tokens``, which Anthropic requires; ``max_retries`` (int, the SDK's default
    2) bounds the SDK's own retries of 408/409/429/5xx and connection errors.
    """

    name: ClassVar[str] = "anthropic"
    credential_env: ClassVar[tuple[str, ...]] = ("ANTHROPIC_API_KEY",)
    limits: ClassVar[Limits] = Limits(
        max_requests=100_000,
        max_bytes=256 * 1024 * 1024,
        custom_id_pattern=r"^[a-zA-Z0-9_-]{1,64}$",
    )
    sandbox_prefix: ClassVar[str] = "/anthropic"

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(api_key=api_key, base_url=base_url, settings=settings)
        # one client per event loop: an async client's connection pool is bound to the loop it
        # was first used on, and this object serves both the portal loop (blocking API) and
        # users' loops (async API)
        self._aclients: PerLoop[anthropic.AsyncAnthropic] = PerLoop(
            self._make_client, close=lambda client: client.close()
        )

    # -- the client -------------------------------------------------------------------------
    def _make_client(self) -> anthropic.AsyncAnthropic:
        return anthropic.AsyncAnthropic(
            api_key=self.require_api_key(),
            base_url=self.base_url or os.environ.get("ANTHROPIC_BASE_URL") or None,
            max_retries=int(self.settings.get("max_retries", anthropic.DEFAULT_MAX_RETRIES)),
        )

    @property
    def aclient(self) -> anthropic.AsyncAnthropic:
        """The running loop's SDK client, built on first use (so listing providers needs no key).

        Call it from async code: the client belongs to the running event loop.
        """
        return self._aclients.get()

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        """Translate the SDK's exceptions raised inside the block into ProviderError.

        A plain context manager: it wraps ``await`` expressions in coroutines just as well.
        """
        try:
            yield
        except (anthropic.AnthropicError, httpx2.HTTPError, ValueError) as exc:
            self._translate(what, exc)

    def _translate(self, what: str, exc: Exception) -> NoReturn:
        status: int | None = None
        if isinstance(exc, anthropic.APIStatusError):
            status = exc.status_code
        if isinstance(exc, anthropic.AnthropicError):  # status, connection, timeout errors ...
            detail = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        else:
            # a dropped connection or a results stream cut mid-line (JSONDecodeError is a
            # ValueError) is transient: no status, so the runner downloads again
            detail = f"{type(exc).__name__}: {exc}"
        raise ProviderError(
            # the SDK's messages carry the server's words; a gateway may echo the key back in them
            f"{what} failed: {self.scrub(detail)}",
            provider=self.name,
            status_code=status,
        ) from exc

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
        codec.build_params(item, model, default_max_tokens=self.default_max_tokens)

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
        client = self.aclient  # first: a missing key fails before the file is read
        # reading and parsing up to 256 MiB would stall every other call on the loop
        requests = await asyncio.to_thread(_read_requests, Path(lines_path))
        with self._errors("create batch"):
            # no SDK-level retry of the create: without an idempotency key a retry after a lost
            # answer creates a second batch (Anthropic batches carry no metadata to find it by)
            batch = await client.with_options(max_retries=0).messages.batches.create(
                requests=requests
            )
        return SubmittedBatch(batch_id=batch.id)

    async def apoll(self, batch_id: str) -> BatchStatus:
        """The batch's state and counts (counts other than processing are 0 until it ends)."""
        client = self.aclient
        with self._errors(f"retrieve batch {batch_id}"):
            batch = await client.messages.batches.retrieve(batch_id)
        return status_of(batch)

    async def aresults(self, batch_id: str) -> AsyncIterator[BatchResult]:
        """Stream the ended batch's results (custom ids are wire ids), chunk by chunk."""
        what = f"results of batch {batch_id}"
        client = self.aclient
        with self._errors(what):
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
                with self._errors(what):
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
            with self._errors(what):
                await chunks.aclose()
                await stream.close()

    async def acancel(self, batch_id: str) -> None:
        """Ask Anthropic to cancel; the batch goes through ``canceling`` to ``ended``."""
        client = self.aclient
        with self._errors(f"cancel batch {batch_id}"):
            await client.messages.batches.cancel(batch_id)

    async def adelete(self, batch_id: str) -> None:
        """Delete an ended batch and its results (Anthropic refuses while it is processing)."""
        client = self.aclient
        with self._errors(f"delete batch {batch_id}"):
            await client.messages.batches.delete(batch_id)

    def delete(self, batch_id: str) -> None:
        """Blocking :meth:`adelete`."""
        portal.run(self.adelete(batch_id))

    async def afind_batch(self, metadata: Mapping[str, str]) -> str | None:
        """Always None: Anthropic batches carry no metadata to search by."""
        return None

    async def aclose(self) -> None:
        """Close the running loop's client, if one was built (a later call builds another)."""
        await self._aclients.aclose()

    # -- the sandbox ------------------------------------------------------------------------
    @classmethod
    def sandbox_routes(cls, engine: SandboxEngine) -> list[BaseRoute]:
        """The emulated ``/v1/messages/batches`` API (see :mod:`polybatch_anthropic.sandbox`)."""
        from .sandbox import routes

        return routes(engine)

    @classmethod
    def sandbox_env(cls, server_url: str, api_key: str) -> dict[str, str]:
        """ANTHROPIC_BASE_URL and ANTHROPIC_API_KEY pointing any client at the sandbox."""
        return {"ANTHROPIC_BASE_URL": server_url + cls.sandbox_prefix, "ANTHROPIC_API_KEY": api_key}


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
