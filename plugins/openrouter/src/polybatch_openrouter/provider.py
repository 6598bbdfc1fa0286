"""Provider ``openrouter``: OpenRouter's Batch API through the official ``openrouter`` SDK.

One create carries a chunk's requests inline (at most 5,000 requests and 200 MB, one model and
one endpoint: the planner cuts chunks so), a poll reads the status and counts, and a terminal
batch's object holds its results. Settings (``[providers.openrouter]`` or a profile's):

- ``only`` (upstream provider names) and ``allow_fallbacks``: the batch's routing preferences;
- ``callback_url``: passed through; OpenRouter posts ``batch.completed|failed|cancelled|expired``
  to it when the batch ends;
- ``delete_after_collect``: delete the batch (its stored requests and results) once collected;
- ``base_url`` (or ``OPENROUTER_BASE_URL``).

The SDK (1.3.84) has create, get, list and delete, but no cancel: :meth:`acancel` posts
``/batches/{id}/cancel`` through the SDK's own httpx client [route unverified]. Batches carry no
metadata: the create is sent once per attempt (no SDK retry), and a batch whose create answer was
lost is adopted from the listing (:meth:`alist_batches_since`), as with Anthropic.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import openrouter
from openrouter import errors, utils

from polybatch import formats, wire
from polybatch.items import BatchItem, BatchResult
from polybatch.providers import (
    TERMINAL_STATES,
    BatchStatus,
    Limits,
    RecentBatch,
    SubmittedBatch,
)
from polybatch.sdk import SDKProvider, connection, http

from . import codec

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from polybatch.sandbox import SandboxEngine

#: no retries (the create: a retry after a lost answer would be a second, untracked batch)
NO_RETRY = utils.RetryConfig("none", utils.BackoffStrategy(500, 60000, 1.5, 3600000), False)


def _error_status(exc: errors.OpenRouterError) -> int | None:
    return exc.status_code if exc.status_code >= 400 else None


def _default_detail(exc: errors.OpenRouterDefaultError) -> str:
    """The default error's message ("API error occurred") with the body's own words."""
    return f"{exc.message}: {exc.body[:300]}" if exc.body else str(exc.message)


def _read_requests(path: Path) -> list[dict[str, Any]]:
    return [wire.load_object(line) for line in path.read_bytes().splitlines() if line.strip()]


class OpenRouterProvider(SDKProvider[openrouter.OpenRouter]):
    """OpenRouter's Batch API (see the module docstring for its settings)."""

    name = "openrouter"
    credential_env = ("OPENROUTER_API_KEY",)
    # [docs] 5,000 requests and 200 MB per batch; the bytes bound leaves room for the envelope
    limits = Limits(max_requests=5000, max_bytes=200_000_000 - 65536)
    base_url_env = "OPENROUTER_BASE_URL"
    default_base_url = "https://openrouter.ai/api/v1"
    key_patterns = (re.compile(r"\b(sk-or-(?:v1-)?)[A-Za-z0-9]{8,}"),)
    errors = {
        # an error status whose body the SDK's models do not read (ResponseValidationError) is
        # still that HTTP error; a 2xx it cannot read has no status: a plain ProviderError
        errors.OpenRouterError: http(_error_status, lambda e: str(e.message)),
        errors.NoResponseError: connection(),
        errors.OpenRouterDefaultError: http(_error_status, _default_detail),
    }
    sandbox_prefix = "/openrouter/api/v1"

    def make_client(self) -> openrouter.OpenRouter:
        # The SDK's own default retries 5xx and connection errors with backoff for up to an
        # hour; polybatch's job driver has its own transient-failure policy, so the SDK's is
        # bounded (``retry_max_elapsed_ms``, default 30 s) or off (``retries = false``). The
        # create never retries (NO_RETRY, passed per call).
        retry = NO_RETRY
        if self.settings.get("retries", True):
            max_elapsed = int(self.settings.get("retry_max_elapsed_ms", 30_000))
            retry = utils.RetryConfig(
                "backoff", utils.BackoffStrategy(500, 8_000, 2.0, max_elapsed), True
            )
        return openrouter.OpenRouter(
            api_key=self.require_api_key(),
            server_url=self.resolved_base_url(),
            async_client=httpx.AsyncClient(follow_redirects=True),
            retry_config=retry,
        )

    @staticmethod
    async def close_client(client: openrouter.OpenRouter) -> None:
        config = client.sdk_configuration
        if config.client is not None:
            config.client.close()
        if config.async_client is not None:
            await config.async_client.aclose()

    # -- requests ------------------------------------------------------------------------------
    def validate_item(self, item: BatchItem, model: str) -> None:
        """Refuse what OpenRouter would refuse, by the rules its sandbox answers with."""
        try:
            codec.check_body(codec.chat_body(item), item.model or model)
        except wire.WireError as exc:
            raise formats.item_error(exc, item) from None

    def encode(self, item: BatchItem, model: str) -> bytes:
        return formats.encode_line(item, codec.chat_body(item))  # {"custom_id", "body"}

    def preflight(self) -> None:
        super().preflight()
        codec.routing(self.settings)  # a bad 'only' fails before planning

    # -- the lifecycle -------------------------------------------------------------------------
    async def asubmit(
        self, lines_path: Path, *, model: str, metadata: Mapping[str, str]
    ) -> SubmittedBatch:
        """One create with every request inline (``metadata`` is unused: batches have none)."""
        client = self.client  # first: a missing key fails before the file is read
        requests = await asyncio.to_thread(_read_requests, lines_path)
        options: dict[str, Any] = {}
        routing = codec.routing(self.settings)
        if routing is not None:
            options["provider"] = routing
        if self.settings.get("callback_url"):
            options["callback_url"] = str(self.settings["callback_url"])
        with self.sdk_errors("creating the batch"):
            batch = await client.batch.create_batches_async(
                endpoint="/v1/chat/completions",  # formats.CHAT_URL, as the SDK types it
                model=model,
                requests=requests,  # type: ignore[arg-type]  # the SDK's TypedDict shape
                retries=NO_RETRY,
                **options,
            )
        return SubmittedBatch(batch_id=batch.id)

    async def apoll(self, batch_id: str) -> BatchStatus:
        with self.sdk_errors(f"polling batch {batch_id}"):
            batch = await self.client.batch.get_batches_async(id=batch_id)
        n = batch.request_counts
        return BatchStatus(
            batch_id=batch.id,
            state=codec.STATES.get(str(batch.status), "in_progress"),  # a newer status word
            total=n.total,
            completed=n.completed,
            failed=n.failed,
            message=batch.error.message if batch.error else None,
        )

    async def aresults(self, batch_id: str) -> AsyncIterator[BatchResult]:
        """The ``results`` a terminal batch's object holds, one per request."""
        with self.sdk_errors(f"downloading the results of {batch_id}"):
            batch = await self.client.batch.get_batches_async(id=batch_id)
        for result in batch.results or []:
            row = result.model_dump(mode="json", by_alias=True)
            yield codec.decode_result(row, provider=self.name, batch_id=batch_id)

    async def acancel(self, batch_id: str) -> None:
        """``POST /batches/{id}/cancel`` on the SDK's httpx client (the SDK has no cancel)."""
        client = self.client
        http_client = client.sdk_configuration.async_client
        assert http_client is not None
        url = f"{(self.resolved_base_url() or '').rstrip('/')}/batches/{batch_id}/cancel"
        headers = {"Authorization": f"Bearer {self.require_api_key()}"}
        with self.sdk_errors(f"cancelling batch {batch_id}"):
            response = await http_client.send(httpx.Request("POST", url, headers=headers))
            response.raise_for_status()

    async def adelete(self, batch_id: str) -> None:
        """Delete a terminal batch with its stored requests and results (gone already: fine)."""
        try:
            with self.sdk_errors(f"deleting batch {batch_id}"):
                await self.client.batch.delete_async(id=batch_id)
        except Exception as exc:
            if getattr(exc, "status_code", None) != 404:
                raise

    async def alist_batches_since(self, since: float) -> list[RecentBatch]:
        """Batches created since ``since``, newest first: batches carry no metadata, so the runner
        adopts one whose create answer was lost by its model, request count, time and results'
        ids (:mod:`polybatch.jobs.adopt`)."""
        found: list[RecentBatch] = []
        after: str | None = None
        with self.sdk_errors("listing batches"):
            while True:
                page = await self.client.batch.list_async(limit=100, after=after)
                rows = page.result.data if page is not None else []
                for b in rows:
                    if b.created_at < since:
                        return found
                    found.append(
                        RecentBatch(
                            batch_id=b.id,
                            created_at=float(b.created_at),
                            request_count=b.request_counts.total,
                            model=b.model,
                            ended=codec.STATES.get(str(b.status)) in TERMINAL_STATES,
                        )
                    )
                if page is None or not page.result.has_more or not page.result.last_id:
                    return found
                after = page.result.last_id

    async def acleanup(self, submitted: SubmittedBatch) -> None:
        """With the setting ``delete_after_collect``, delete the collected batch."""
        if self.settings.get("delete_after_collect"):
            await self.adelete(submitted.batch_id)

    # -- the sandbox ---------------------------------------------------------------------------
    @classmethod
    def sandbox_routes(cls, engine: SandboxEngine) -> list[BaseRoute]:
        from .sandbox import OpenRouterApi  # starlette is imported only when a sandbox starts

        return OpenRouterApi(engine).routes()
