"""Provider ``acme``: Acme's OpenAI-compatible Files + Batches API, through the ``openai`` SDK."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import openai

from polybatch import formats, wire
from polybatch.items import BatchItem, BatchResult
from polybatch.providers import BatchStatus, Limits, SubmittedBatch
from polybatch.sdk import SDKProvider, connection, failure, http

from . import codec

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from polybatch.sandbox import SandboxEngine


class AcmeProvider(SDKProvider[openai.AsyncOpenAI]):
    """Acme's batch API: upload a JSONL file, create a batch of it, poll, download the results."""

    name = "acme"
    credential_env = ("ACME_API_KEY",)
    limits = Limits(max_requests=10_000, max_bytes=100 * 1024 * 1024)
    base_url_env = "ACME_BASE_URL"
    default_base_url = "https://api.acme.example/v1"
    key_patterns = (re.compile(r"\b(acme-)[A-Za-z0-9]{8,}"),)
    errors = {
        openai.APIStatusError: http(lambda e: e.status_code, lambda e: str(e.message)),
        openai.APIConnectionError: connection(),
        openai.OpenAIError: failure(),
    }
    sandbox_prefix = "/acme"

    def make_client(self) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(api_key=self.require_api_key(), base_url=self.resolved_base_url())

    def validate_item(self, item: BatchItem, model: str) -> None:
        """Refuse what Acme would refuse, by the rules its sandbox answers with."""
        try:
            codec.check_body(codec.chat_body(item, model))
        except wire.WireError as exc:
            raise formats.item_error(exc, item) from None

    def encode(self, item: BatchItem, model: str) -> bytes:
        return formats.encode_line(item, codec.chat_body(item, model), url=formats.CHAT_URL)

    async def asubmit(
        self, lines_path: Path, *, model: str, metadata: Mapping[str, str]
    ) -> SubmittedBatch:
        with self.sdk_errors("uploading the batch file"), lines_path.open("rb") as fh:
            uploaded = await self.client.files.create(file=fh, purpose="batch")  # streamed
        # no SDK retry of the create (a lost answer would make two batches): the runner retries
        # it, once afind_batch has not found the first
        with self.sdk_errors("creating the batch"):
            batch = await self.client.with_options(max_retries=0).batches.create(
                input_file_id=uploaded.id,
                endpoint="/v1/chat/completions",
                completion_window="24h",
                metadata=dict(metadata),
            )
        return SubmittedBatch(batch_id=batch.id, input_file_id=uploaded.id)  # the kit's acleanup

    async def apoll(self, batch_id: str) -> BatchStatus:
        with self.sdk_errors(f"polling batch {batch_id}"):
            batch = await self.client.batches.retrieve(batch_id)
        state = codec.STATES.get(batch.status, "in_progress")  # a status newer than the table
        n = batch.request_counts or openai.types.BatchRequestCounts(completed=0, failed=0, total=0)
        return BatchStatus(
            batch_id=batch.id, state=state, total=n.total, completed=n.completed, failed=n.failed
        )

    async def aresults(self, batch_id: str) -> AsyncIterator[BatchResult]:
        """The output file's lines, then the error file's: one result per request."""
        decode = partial(codec.decode_line, provider=self.name, batch_id=batch_id)
        with self.sdk_errors(f"downloading the results of {batch_id}"):
            batch = await self.client.batches.retrieve(batch_id)
            for file_id in filter(None, (batch.output_file_id, batch.error_file_id)):
                async with self.client.files.with_streaming_response.content(file_id) as got:
                    async for result in self.decode_results(got.iter_bytes(), decode, file=file_id):
                        yield result

    async def acancel(self, batch_id: str) -> None:
        with self.sdk_errors(f"cancelling batch {batch_id}"):
            await self.client.batches.cancel(batch_id)

    async def afind_batch(self, metadata: Mapping[str, str]) -> str | None:
        """The newest batch tagged with all of ``metadata`` (the runner's crash recovery)."""
        with self.sdk_errors("listing batches"):
            async for batch in self.client.batches.list(limit=100):
                if all((batch.metadata or {}).get(k) == v for k, v in metadata.items()):
                    return batch.id
        return None

    async def sdk_delete_file(self, client: openai.AsyncOpenAI, file_id: str) -> None:
        await client.files.delete(file_id)

    @classmethod
    def sandbox_routes(cls, engine: SandboxEngine) -> list[BaseRoute]:
        from .sandbox import AcmeApi  # starlette is imported only when a sandbox starts

        return AcmeApi(engine).routes()
