"""The Anthropic Message Batches adapter, through the official ``anthropic`` SDK.

State mapping (Anthropic ``processing_status`` -> neutral :data:`~polybatch.providers.BatchState`):

- ``in_progress`` -> ``in_progress`` (Anthropic has no validating or finalizing phase);
- ``canceling`` -> ``cancelling``;
- ``ended`` -> ``cancelled`` when a cancel was initiated, else ``expired`` when any request
  expired (the 24 h window passed, as OpenAI reports it), else ``completed``.

Whatever the ended state, every request has a result (succeeded, errored, canceled or expired), so
the runner collects results for each of them and retries the retryable ones.

Anthropic batches carry no metadata: the ``metadata`` passed to :meth:`submit` is not sent, and
:meth:`find_batch` cannot find a batch again (it returns None).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn, TypeVar, cast

import anthropic
import httpx2

from polybatch import wire
from polybatch.errors import ItemValidationError, ProviderError
from polybatch.items import BatchItem, BatchResult
from polybatch.providers import BatchProvider, BatchState, BatchStatus, Limits, SubmittedBatch

from . import codec

if TYPE_CHECKING:
    from anthropic.types.messages import MessageBatch, batch_create_params
    from starlette.routing import BaseRoute

    from polybatch.sandbox.engine import SandboxEngine

T = TypeVar("T")


class AnthropicProvider(BatchProvider):
    """Provider ``anthropic``: Message Batches with inline requests, results as JSONL.

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
        self._client: anthropic.Anthropic | None = None

    # -- the client -------------------------------------------------------------------------
    @property
    def client(self) -> anthropic.Anthropic:
        """The SDK client, built on first use (so listing providers needs no key)."""
        if self._client is None:
            self._client = anthropic.Anthropic(
                api_key=self.require_api_key(),
                base_url=self.base_url or os.environ.get("ANTHROPIC_BASE_URL") or None,
                max_retries=int(self.settings.get("max_retries", anthropic.DEFAULT_MAX_RETRIES)),
            )
        return self._client

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        """Run one SDK call, translating its exceptions into ProviderError."""
        try:
            return fn()
        except anthropic.APIStatusError as exc:
            self._raise(what, exc, exc.status_code)
        except anthropic.APIConnectionError as exc:
            self._raise(what, exc, None)
        except anthropic.AnthropicError as exc:
            self._raise(what, exc, None)
        except (httpx2.HTTPError, ValueError) as exc:
            # a dropped connection or a results stream cut mid-line (JSONDecodeError is a
            # ValueError) is transient: no status, so the runner downloads again
            raise ProviderError(
                f"{what} failed: {type(exc).__name__}: {exc}", provider=self.name
            ) from exc

    def _raise(self, what: str, exc: anthropic.AnthropicError, status: int | None) -> NoReturn:
        # the SDK's messages carry the server's words; a gateway may echo the key back in them
        detail = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        client = self._client
        for key in (self.api_key, getattr(client, "api_key", None) if client is not None else None):
            if isinstance(key, str) and key:
                detail = detail.replace(key, "***")
        raise ProviderError(
            f"{what} failed: {detail}", provider=self.name, status_code=status
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
    def submit(
        self, lines_path: Path, *, model: str, metadata: Mapping[str, str]
    ) -> SubmittedBatch:
        """Create a batch with the lines' requests inline (``metadata`` is unused: see module)."""
        with Path(lines_path).open("rb") as f:
            requests = [json.loads(line) for line in f if line.strip()]
        typed = cast("list[batch_create_params.Request]", requests)
        # no SDK-level retry of the create: without an idempotency key a retry after a lost
        # answer creates a second batch (Anthropic batches carry no metadata to find it by)
        batch = self._call(
            "create batch",
            lambda: self.client.with_options(max_retries=0).messages.batches.create(requests=typed),
        )
        return SubmittedBatch(batch_id=batch.id)

    def poll(self, batch_id: str) -> BatchStatus:
        """The batch's state and counts (counts other than processing are 0 until it ends)."""
        batch = self._call(
            f"retrieve batch {batch_id}", lambda: self.client.messages.batches.retrieve(batch_id)
        )
        return status_of(batch)

    def results(self, batch_id: str) -> Iterator[BatchResult]:
        """Stream the ended batch's results (custom ids are wire ids)."""
        stream = self._call(
            f"results of batch {batch_id}", lambda: self.client.messages.batches.results(batch_id)
        )
        iterator = iter(stream)
        while True:
            entry = self._call(f"results of batch {batch_id}", lambda: next(iterator, None))
            if entry is None:
                return
            yield codec.decode_result(entry.to_dict(), batch_id=batch_id)

    def cancel(self, batch_id: str) -> None:
        """Ask Anthropic to cancel; the batch goes through ``canceling`` to ``ended``."""
        self._call(
            f"cancel batch {batch_id}", lambda: self.client.messages.batches.cancel(batch_id)
        )

    def delete(self, batch_id: str) -> None:
        """Delete an ended batch and its results (Anthropic refuses while it is processing)."""
        self._call(
            f"delete batch {batch_id}", lambda: self.client.messages.batches.delete(batch_id)
        )

    def find_batch(self, metadata: Mapping[str, str]) -> str | None:
        """Always None: Anthropic batches carry no metadata to search by."""
        return None

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
    state: BatchState
    message = None
    if batch.processing_status == "in_progress":
        state = "in_progress"
    elif batch.processing_status == "canceling":
        state = "cancelling"
    elif batch.cancel_initiated_at is not None:
        state = "cancelled"
    elif counts.expired:
        state = "expired"
        message = f"{counts.expired} request(s) expired before they were processed"
    else:
        state = "completed"
    total = counts.processing + counts.succeeded + counts.errored + counts.canceled + counts.expired
    return BatchStatus(
        batch_id=batch.id,
        state=state,
        total=total,
        completed=counts.succeeded,
        failed=counts.errored,
        message=message,
    )
